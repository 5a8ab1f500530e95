"""Small helpers shared by the adapters of other SAM families (optional packages, --model-args)."""
from __future__ import annotations

import importlib
from types import ModuleType

import torch

from ..errors import ConfigError


def import_backend(module: str, model: str, install: str) -> ModuleType:
    """Import an optional backend package, or fail with one line naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"model '{model}' needs the '{module}' package ({exc}); install it with: {install}") from None


def check_model_args(model: str, model_args: dict[str, object], known: tuple[str, ...]) -> None:
    unknown = sorted(set(model_args) - set(known))
    if unknown:
        raise ConfigError(f"model '{model}': unknown --model-args {', '.join(unknown)}; "
                          f"valid: {', '.join(known) or '(none)'}")


def bool_arg(model: str, name: str, value: object) -> bool:
    """--model-args values arrive as strings; accept the usual spellings of a boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"model '{model}': --model-args {name}={value!r} is not a boolean (true/false)")


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
