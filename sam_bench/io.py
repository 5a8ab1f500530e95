"""Atomic file writes: a reader never sees a half-written result file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON: NaN and infinities (undefined metrics) are written as null."""
    atomic_write(path, lambda f: json.dump(finite(obj), f, indent=2, sort_keys=False, default=jsonable,
                                           allow_nan=False))


def finite(obj: Any) -> Any:
    """`obj` with every NaN / infinite float (also numpy's) replaced by None, recursively."""
    import math

    if isinstance(obj, float) or type(obj).__name__ in ("float32", "float64", "float16"):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def jsonable(obj: Any) -> Any:
    """The one json `default`: numpy scalars and arrays, paths (run.json, metrics, progress records)."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_json_record(path: str | Path, what: str) -> dict[str, Any]:
    """A json object file sam-bench wrote (run.json, suite.json, a task's record); {} when absent.
    A damaged one (cut by a full disk, edited by hand) is a DataError naming it, never a traceback."""
    from .errors import DataError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: damaged {what} ({exc}); restore it or move it away") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: damaged {what} (not a json object); restore it or move it away")
    return data
