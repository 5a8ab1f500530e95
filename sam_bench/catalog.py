"""`list tasks` without importing the tasks: their names, titles and options read from the source.

Importing every task pulls in torch, open_clip and torchvision (about 9 s); the listing only needs
what the source already says. Each registered task class gives its name and help
(`@TASKS.register`), `title` and `Options` dataclass; each option its type (a `Literal[...]`
lists the allowed values), default and the comment beside it (which names the allowed values where
the type cannot).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


@dataclass
class OptionDoc:
    name: str
    type: str
    default: str
    help: str


@dataclass
class TaskDoc:
    name: str
    title: str
    help: str
    options: list[OptionDoc] = field(default_factory=list)


def builtin_tasks() -> list[TaskDoc]:
    """Every task registered in sam_bench/tasks, sorted by name."""
    docs = [doc for path in sorted(TASKS_DIR.rglob("*.py")) for doc in _tasks_in(path)]
    return sorted(docs, key=lambda d: d.name)


def _tasks_in(path: Path) -> list[TaskDoc]:
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    docs = []
    for node in classes.values():
        reg = next((d for d in node.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func) == "TASKS.register"),
                   None)
        if reg is None or not reg.args or not isinstance(reg.args[0], ast.Constant):
            continue
        attrs = {t.id: stmt.value for stmt in node.body if isinstance(stmt, ast.Assign)
                 for t in stmt.targets if isinstance(t, ast.Name)}
        title = attrs.get("title")
        help_kw = next((k.value for k in reg.keywords if k.arg == "help"), None)
        options_cls = attrs.get("Options")
        options = (_options(classes[options_cls.id], lines)
                   if isinstance(options_cls, ast.Name) and options_cls.id in classes else [])
        docs.append(TaskDoc(reg.args[0].value, title.value if isinstance(title, ast.Constant) else "",
                            help_kw.value if isinstance(help_kw, ast.Constant) else "", options))
    return docs


def _options(node: ast.ClassDef, lines: list[str]) -> list[OptionDoc]:
    options = []
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if ast.unparse(stmt.annotation).startswith("ClassVar"):  # e.g. `renamed`: not an option
            continue
        default = "" if stmt.value is None else ast.unparse(stmt.value)
        if default.startswith("field(default_factory=lambda: "):
            default = default[len("field(default_factory=lambda: "):-1]
        elif isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            default = stmt.value.value
        options.append(OptionDoc(stmt.target.id, ast.unparse(stmt.annotation), default,
                                 _comment(lines, stmt.lineno - 1, stmt.end_lineno or stmt.lineno)))
    return options


def _comment(lines: list[str], first: int, end: int) -> str:
    """The `# ...` at the end of the option's line plus comment-only lines right below it."""
    line = lines[end - 1]
    if "  # " not in line:
        return ""
    column = line.index("  # ") + 2
    parts = [line[column + 1:].strip()]
    for follow in lines[end:]:  # a wrapped comment: a comment-only line whose text is aligned with it
        lead = follow[:column + 2]
        if lead.strip() != "#" or len(follow) <= column + 2 or follow[column + 2] == " ":
            break
        parts.append(follow[column + 2:].strip())
    return " ".join(parts)
