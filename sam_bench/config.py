"""Run configuration: a YAML file, overridden by command-line flags, overridden by Python kwargs."""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError
from .suggest import did_you_mean


@dataclass
class RunConfig:
    task: str = ""
    model: str = ""
    dataset: str = ""
    out: str = "results/run"
    checkpoint: Optional[str] = None
    data_root: Optional[str] = None
    split: Optional[str] = None
    limit: Optional[int] = None
    cache_dir: Optional[str] = None
    device: str = "auto"
    precision: str = "fp32"
    batch_size: Optional[int] = None  # prompts per decoder call; default 4 on CPU, 64 on GPU
    compile: bool = False  # torch.compile the model's encoder and decoder (part of the run identity)
    encode_batch: int = 1  # images per encoder call (helps on GPUs; results equal one at a time)
    workers: int = 1  # background processes reading, decoding and resizing the next images (0: none)
    seed: int = 0
    ci: int = 1000  # bootstrap resamples for the 95% intervals; 0 (`--ci off`): none
    label: Optional[str] = None  # column name in reports; default: the model's label
    fresh: bool = False  # ignore an interrupted run's progress instead of resuming it
    options: dict[str, Any] = field(default_factory=dict)  # task options (see `list tasks`)
    model_args: dict[str, str] = field(default_factory=dict)  # handed to the model factory
    name: Optional[str] = None  # results folder / run.json key (a task definition's name); default: task
    definition: dict[str, Any] = field(default_factory=dict)  # task definition identity, in the fingerprint

    @property
    def result_name(self) -> str:
        return self.name or self.task

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_run_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Merge a YAML run config with overrides (None values do not override)."""
    data: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: run config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of run settings at the top level")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {unknown}; known: {sorted(known)}")
    source = str(path) if path else "run settings"
    options = dict(_mapping(data.pop("options", None), f"{source}: 'options'"))
    options.update(overrides.pop("options", None) or {})
    model_args = {str(k): str(v) for k, v in _mapping(data.pop("model_args", None), f"{source}: 'model_args'").items()}
    model_args.update(overrides.pop("model_args", None) or {})
    for name, value in data.items():
        check_setting(name, value, f"{source}: '{name}'")
    overrides = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in overrides.items()}
    data.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in overrides.items():
        if value is not None:
            check_setting(name, value, f"--{name.replace('_', '-')}")
    cfg = RunConfig(**data, options=options, model_args=model_args)
    # A run that scores predictions made elsewhere (`--predictions`) needs no model.
    required = ("task", "dataset") if cfg.options.get("predictions") else ("task", "model", "dataset")
    for required in required:
        if not getattr(cfg, required):
            raise ConfigError(f"no {required} given (--{required} or '{required}:' in the run config)")
    return cfg


PATH_SETTINGS = ("out", "data_root", "checkpoint", "cache_dir")


def absolute(path: str) -> str:
    """`path` made absolute against the working directory (`~` expanded); symlinks are kept."""
    return os.path.abspath(os.path.expanduser(path))


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """The same run with every path setting absolute: a relative path names another folder from
    another working directory, so it never enters the run identity or a record as typed."""
    return dataclasses.replace(cfg, **{k: absolute(getattr(cfg, k)) for k in PATH_SETTINGS if getattr(cfg, k)})


_HINTS = typing.get_type_hints(RunConfig)
_POSITIVE = ("limit", "batch_size")  # counts for which 0 or less is meaningless


def check_setting(name: str, value: Any, where: str) -> None:
    """Type-check one run setting (YAML gives ints, floats, lists... for any key); ConfigError if wrong."""
    hint = _HINTS.get(name)
    if hint is None or value is None:
        return
    expected = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    expected = typing.get_origin(expected) or expected
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where}: expected {getattr(expected, '__name__', expected)}, got {value!r}")
    if name == "ci" and value < 0:
        raise ConfigError(f"{where}: the number of bootstrap resamples is 0 (off) or more, got {value}")
    if name in _POSITIVE and value < 1:
        what = "the number of images to run" if name == "limit" else "the number of prompts per decoder call"
        raise ConfigError(f"{where}: must be at least 1 (it is {what}), got {value}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of name: value, got {value!r}")
    return value


def build_options(options_cls: type, values: dict[str, Any], task: str) -> Any:
    """Instantiate a task's options dataclass, converting strings from the command line."""
    hints = typing.get_type_hints(options_cls)
    names = {f.name for f in fields(options_cls)}
    renamed: dict[str, str] = getattr(options_cls, "renamed", {})
    kwargs = {}
    for raw_name, value in values.items():
        name = raw_name.replace("-", "_")
        if name in renamed:
            raise ConfigError(f"option {_flag(name)} of task '{task}' is now {_flag(renamed[name])}")
        if name not in names:
            raise ConfigError(unknown_option(name, task, names))
        kwargs[name] = coerce(value, hints[name], f"option '{raw_name}' of task '{task}'")
        if name in getattr(options_cls, "path_options", ()) and isinstance(kwargs[name], str):
            kwargs[name] = absolute(kwargs[name])  # a file the task reads: absolute, as the run settings
    return options_cls(**kwargs)


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def unknown_option(name: str, task: str, options: set[str]) -> str:
    """`unknown option --limt; did you mean --limit?`: task options come after the run's own flags on
    the command line, so a mistyped run flag lands here too; both are candidates."""
    candidates = [_flag(n) for n in {*options, *(f.name for f in fields(RunConfig))}]
    hint = did_you_mean(_flag(name), candidates)
    listing = ", ".join(_flag(n) for n in sorted(options))
    return f"unknown option {_flag(name)}" + (hint or f" for task '{task}'; its options: {listing}")


def coerce(value: Any, hint: Any, what: str) -> Any:
    """A command-line string converted to `hint`; a YAML value (already typed) checked against it."""
    if not isinstance(value, str):
        return _checked(value, hint, what)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value.lower() in ("none", "null"):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint in (int, float, str):
            return hint(value)
        if origin is typing.Literal:
            return _checked(value, hint, what)
        if origin in (list, tuple):
            parsed = yaml.safe_load(value) if value.startswith("[") else value.split(",")
            return origin(coerce(str(v), args[0], what) for v in parsed) if args else origin(parsed)
        return yaml.safe_load(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: cannot read {value!r} as {hint}: {exc}") from None


def _checked(value: Any, hint: Any, what: str) -> Any:
    """`value` if it is a `hint` (an int is a fine float; a bool is not an int); ConfigError if not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{what}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    base = origin or hint
    if not isinstance(base, type):
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{what}: expected {base.__name__}, got {value!r}")
    if base in (list, tuple) and args:
        return base(_checked(v, args[0], what) for v in value)
    return value


def parse_model_args(text: str | None) -> dict[str, str]:
    """`key=value,key2=value2` (from --model-args) -> {"key": "value", ...}; values stay strings."""
    args: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--model-args: expected key=value, got {part!r}")
        args[key.strip()] = value.strip()
    return args
