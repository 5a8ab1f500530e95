"""`--model-args k=v,...` arrive as strings; factories convert them here and reject unknown keys."""
from __future__ import annotations

from typing import Callable, Mapping

from ..errors import ConfigError


def to_bool(value: object) -> bool:
    """'true'/'false' (also 1/0, yes/no) as given on the command line, or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def convert_model_args(model: str, given: Mapping[str, object],
                     schema: Mapping[str, tuple[Callable[[object], object], object]]) -> dict[str, object]:
    """schema: key -> (converter, default). ConfigError naming unknown keys or a bad value."""
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise ConfigError(f"model '{model}' has no argument(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(schema)) or '(none)'}")
    out = {}
    for key, (convert, default) in schema.items():
        try:
            out[key] = convert(given[key]) if key in given else default
        except ValueError as exc:
            raise ConfigError(f"model '{model}' argument {key}: {exc}") from None
    return out
