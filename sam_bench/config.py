"""Run configuration: a YAML file, overridden by command-line flags, overridden by Python kwargs."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError


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
    options = dict(data.pop("options", None) or {})
    options.update(overrides.pop("options", None) or {})
    model_args = {str(k): str(v) for k, v in (data.pop("model_args", None) or {}).items()}
    model_args.update(overrides.pop("model_args", None) or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    cfg = RunConfig(**data, options=options, model_args=model_args)
    for required in ("task", "model", "dataset"):
        if not getattr(cfg, required):
            raise ConfigError(f"no {required} given (--{required} or '{required}:' in the run config)")
    return cfg


def build_options(options_cls: type, values: dict[str, Any], task: str) -> Any:
    """Instantiate a task's options dataclass, converting strings from the command line."""
    hints = typing.get_type_hints(options_cls)
    names = {f.name for f in fields(options_cls)}
    kwargs = {}
    for raw_name, value in values.items():
        name = raw_name.replace("-", "_")
        if name not in names:
            raise ConfigError(f"task '{task}' has no option '{raw_name}'; options: {sorted(names)}")
        kwargs[name] = coerce(value, hints[name], f"option '{raw_name}' of task '{task}'")
    return options_cls(**kwargs)


def coerce(value: Any, hint: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
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
        if origin in (list, tuple):
            parsed = yaml.safe_load(value) if value.startswith("[") else value.split(",")
            return origin(coerce(str(v), args[0], what) for v in parsed) if args else origin(parsed)
        return yaml.safe_load(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: cannot read {value!r} as {hint}: {exc}") from None


def parse_model_args(text: str | None) -> dict[str, str]:
    """`key=value,key2=value2` (from --model-args) -> {"key": "value", ...}; values stay strings."""
    args: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--model-args: expected key=value, got {part!r}")
        args[key.strip()] = value.strip()
    return args
