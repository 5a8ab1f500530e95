"""Task definitions and suites: the YAML files of the top-level `tasks/` folder.

A task definition (`tasks/**/<name>.yaml`, name = file stem) fixes one protocol run: which
registered task class (`protocol:`), which dataset config (`dataset:`) and split, every protocol
choice (`options:`, checked against the task's Options dataclass), where its published numbers
live (`reference:`) and a `version:` that enters the run fingerprint. `include:` merges shared
templates (files starting with `_`, e.g. `_point.yaml`); the including file wins, `options:` merge
key by key. A suite (`tasks/suites/<name>.yaml`) lists task definitions or other suites.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError
from .resources import resource_dir
from .suggest import did_you_mean, unknown_name

DEFINITION_KEYS = {"include", "protocol", "dataset", "split", "options", "reference", "version", "variant",
                   "description"}
SUITE_KEYS = {"title", "description", "tasks", "groups", "groups_source"}


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    path: Path
    protocol: str  # a task registered in TASKS
    dataset: str  # a config in datasets/
    split: Optional[str]
    options: dict[str, Any]  # validated against the protocol's Options; may hold ${data_root}
    version: str
    reference: dict[str, Any] = field(default_factory=dict)
    variant: Optional[str] = None  # tells rows apart when one protocol runs twice on a dataset
    description: str = ""

    def identity(self) -> dict[str, Any]:
        """What the run fingerprint and run.json record of the definition."""
        return {"name": self.name, "version": self.version, "variant": self.variant,
                "reference": self.reference, "file": self.path.name}

    def resolved_options(self, data_root: Path, data_dir: Optional[Path] = None) -> dict[str, Any]:
        """Options with `${data_root}` (this dataset's folder) and `${data_dir}` filled in."""
        subs = {"${data_root}": str(data_root), "${data_dir}": str(data_dir or data_root.parent)}

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                for key, sub in subs.items():
                    value = value.replace(key, sub)
            return value

        return {k: fill(v) for k, v in self.options.items()}


@dataclass(frozen=True)
class SuiteItem:
    definition: TaskDefinition
    models: tuple[str, ...] = ()  # the models a suite names for this task (the demo); () = the user's


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    title: str
    entries: tuple[Any, ...]  # names, or {task: name, models: [...]}
    groups: dict[str, list[str]] = field(default_factory=dict)  # e.g. SA-23 image / video datasets
    groups_source: str = ""
    description: str = ""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _merged(path: Path, root: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's keys over those of its includes (looked up beside it, then in tasks/)."""
    if path in seen:
        raise ConfigError(f"{path}: include cycle through {' -> '.join(p.name for p in seen)}")
    data = _read_yaml(path)
    unknown = sorted(set(data) - DEFINITION_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'; known: {', '.join(sorted(DEFINITION_KEYS))}")
    includes = data.pop("include", None) or []
    includes = [includes] if isinstance(includes, str) else includes
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for name in includes:
        target = next((p for p in (path.parent / name, root / name) if p.is_file()), None)
        if target is None:
            raise ConfigError(f"{path}: included file '{name}' not found beside it or in {root}")
        base = _merged(target, root, seen + (path,))
        merged = {**merged, **base, "options": {**merged.get("options", {}), **base.get("options", {})}}
    options = data.get("options", {})
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"{path}: options must be a mapping of option: value")
    return {**merged, **data, "options": {**merged.get("options", {}), **(options or {})}}


def check_value(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits an Options field's type hint (int is a float, not a bool)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(check_value(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        return isinstance(value, list) and (not args or all(check_value(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def validate_options(options_cls: type, options: dict[str, Any], where: str) -> Any:
    """The Options instance for `options`; unknown keys and wrong types name `where` and the key."""
    hints = typing.get_type_hints(options_cls)
    names = {f.name for f in fields(options_cls)}
    for key, value in options.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown option '{key}'; options: {', '.join(sorted(names))}")
        if isinstance(value, str) and "${" in value:
            continue  # filled in at run time
        if not check_value(value, hints[key]):
            raise ConfigError(f"{where}: option '{key}' must be {_type_name(hints[key])}, "
                              f"got {type(value).__name__} {value!r}")
    concrete = {k: v for k, v in options.items() if not (isinstance(v, str) and "${" in v)}
    try:
        return options_cls(**concrete)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_definition(path: Path, root: Optional[Path] = None) -> TaskDefinition:
    """Read, merge and validate one task definition file."""
    from .data.registry import dataset_names
    from .plugins import load_plugins
    from .registry import TASKS

    load_plugins()
    root = root or path.parent
    data = _merged(path, root)
    for key in ("protocol", "dataset"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"{path}: '{key}:' is required (a name)")
    if data["protocol"] not in TASKS:
        raise ConfigError(f"{path}: protocol '{data['protocol']}' is not a registered task; "
                          f"known: {', '.join(TASKS.names())}")
    if data["dataset"] not in dataset_names():
        raise ConfigError(f"{path}: dataset '{data['dataset']}' has no config in datasets/")
    for key, kinds in (("split", (str, type(None))), ("version", (int, str)), ("variant", (str, type(None))),
                       ("reference", (dict, str, type(None))), ("description", (str, type(None)))):
        if not isinstance(data.get(key), kinds):
            raise ConfigError(f"{path}: '{key}' must be {' or '.join(k.__name__ for k in kinds)}, "
                              f"got {type(data.get(key)).__name__}")
    validate_options(TASKS.get(data["protocol"]).Options, data["options"], str(path))
    reference = data.get("reference") or {}
    return TaskDefinition(
        name=path.stem, path=path, protocol=data["protocol"], dataset=data["dataset"], split=data.get("split"),
        options=dict(data["options"]), version=str(data["version"]),
        reference=reference if isinstance(reference, dict) else {"label": reference},
        variant=data.get("variant"), description=data.get("description") or "")


def load_suite(path: Path) -> Suite:
    data = _read_yaml(path)
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'; known: {', '.join(sorted(SUITE_KEYS))}")
    entries = data.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'tasks:' must be a non-empty list of task definitions or suites")
    for entry in entries:
        ok = isinstance(entry, str) or (isinstance(entry, dict) and set(entry) <= {"task", "models"}
                                        and isinstance(entry.get("task"), str))
        if not ok:
            raise ConfigError(f"{path}: tasks entry {entry!r} must be a name or {{task: NAME, models: [...]}}")
    groups = data.get("groups") or {}
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise ConfigError(f"{path}: 'groups:' must map a group name to a list of dataset names")
    return Suite(name=path.stem, path=path, title=str(data.get("title") or path.stem), entries=tuple(entries),
                 groups=groups, groups_source=str(data.get("groups_source") or ""),
                 description=str(data.get("description") or ""))


@lru_cache(maxsize=8)
def _catalog(root: Path, signature: tuple) -> tuple[dict[str, TaskDefinition], dict[str, Suite]]:
    definitions: dict[str, TaskDefinition] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.name.startswith("_") or path.parent.name == "suites":
            continue
        if path.stem in definitions:
            raise ConfigError(f"{path}: task definition '{path.stem}' also defined in {definitions[path.stem].path}")
        definitions[path.stem] = load_definition(path, root)
    suites = {p.stem: load_suite(p) for p in sorted((root / "suites").glob("*.yaml"))}
    clash = sorted(set(definitions) & set(suites))
    if clash:
        raise ConfigError(f"{suites[clash[0]].path}: suite name '{clash[0]}' is also a task definition")
    return definitions, suites


def catalog(root: Optional[Path] = None) -> tuple[dict[str, TaskDefinition], dict[str, Suite]]:
    """All task definitions and suites under `root` (default: the shipped `tasks/` folder)."""
    root = (root or resource_dir("tasks")).resolve()
    # Keyed by every file's mtime and size: an edited file is read again, an unchanged tree is not.
    signature = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*.yaml")))
    return _catalog(root, signature)


def get_suite(name: str, root: Optional[Path] = None) -> Suite:
    suites = catalog(root)[1]
    if name not in suites:
        raise ConfigError(unknown_name("suite", name, suites))
    return suites[name]


def expand(name: str, root: Optional[Path] = None, _seen: tuple[str, ...] = ()) -> list[SuiteItem]:
    """The task definitions of a suite (or one definition), nested suites flattened, first wins."""
    definitions, suites = catalog(root)
    if name in definitions:
        return [SuiteItem(definitions[name])]
    if name not in suites:
        raise ConfigError(f"unknown suite or task definition '{name}'{did_you_mean(name, [*suites, *definitions])} "
                          f"(suites: {', '.join(sorted(suites))}; `list definitions` for the others)")
    if name in _seen:
        raise ConfigError(f"{suites[name].path}: suite '{name}' includes itself")
    items: list[SuiteItem] = []
    for entry in suites[name].entries:
        target, models = (entry, ()) if isinstance(entry, str) else (entry["task"], tuple(entry.get("models") or ()))
        if target not in definitions and target not in suites:
            raise ConfigError(f"{suites[name].path}: '{target}' is neither a task definition nor a suite")
        for item in expand(target, root, _seen + (name,)):
            items.append(SuiteItem(item.definition, models or item.models))
    unique: dict[str, SuiteItem] = {}
    for item in items:
        unique.setdefault(item.definition.name, item)
    return list(unique.values())


def paper_label(dataset: str, root: Optional[Path] = None) -> Optional[str]:
    """The paper's name for a dataset (Fig. 9a labels), from the definitions' `reference.label`."""
    for definition in catalog(root)[0].values():
        if definition.dataset == dataset and definition.reference.get("label"):
            return str(definition.reference["label"])
    return None
