"""The import graph runs one way: no module of sam_bench imports one from a layer above it.

Layers, bottom to top (a module may import its own layer and those below). A new top-level module
or package must be given a layer here.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sam_bench"

LAYERS = [
    {"errors"},
    {"io", "registry", "resources", "reference", "prompts", "config", "metadata", "plugins", "catalog", "suggest"},
    {"core"},  # tensors, checkpoints, caches, timers, edge maps
    {"data", "models"},  # readers and datasets; model adapters
    {"taskdefs", "metrics", "amg", "engine", "detect"},  # task YAML; scoring; mask generation; run context; boxes
    {"reporting"},  # report building and formats
    {"tasks"},  # the protocols
    {"runner", "stages"},  # one task on one dataset; its shards and its scoring as separate steps
    {"suite_runner", "api", "launch"},  # suites; the Python API; suites as submitit job arrays
    {"demo"},
    {"cli", "__main__", "__init__"},
]
LEVEL = {name: k for k, names in enumerate(LAYERS) for name in names}


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported sam_bench module, line) for every import in the file, function-level ones too."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("sam_bench")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("sam_bench"):
                if target == "sam_bench":  # `from . import x`: x is the module
                    found += [(f"sam_bench.{a.name}", node.lineno) for a in node.names]
                else:
                    found.append((target, node.lineno))
    return found


def test_every_module_has_a_layer():
    groups = {group(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert not groups - set(LEVEL), f"give these a layer in tests/test_layers.py: {sorted(groups - set(LEVEL))}"


def test_no_module_imports_one_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = group(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for target, line in imports(path):
            dst = group(target)
            if dst in LEVEL and src in LEVEL and LEVEL[dst] > LEVEL[src]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not upward, "imports that run up:\n" + "\n".join(upward)


def test_no_task_imports_another_task():
    """Tasks compose stages from the layers below and never reach into another task: what two
    tasks share lives below them (e.g. metrics/ground_truth.py for point and miou)."""
    tasks = PACKAGE / "tasks"
    crossing = []
    for path in sorted(tasks.rglob("*.py")):
        if path.parent == tasks and path.name == "__init__.py":
            continue  # registers every task
        own = path.relative_to(tasks).parts[0].removesuffix(".py")  # the task's module or package
        for target, line in imports(path):
            names = target.split(".")
            if len(names) > 2 and names[1] == "tasks" and names[2] not in ("base", own):
                crossing.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not crossing, "task modules importing another task:\n" + "\n".join(crossing)
