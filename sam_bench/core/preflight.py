"""Checks made before the first image, so a run fails in its first second, not after hours."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigError


def ensure_writable(path: Path, what: str) -> None:
    """Create `path` if needed and prove a file can be written in it; ConfigError naming it if not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the {what} folder: {exc.strerror or exc}") from None
    if not writable(path):
        raise ConfigError(f"{path}: the {what} folder is not writable (read-only file system or no permission)")


def writable(path: Path) -> bool:
    """Whether a file can be created in the existing folder `path` (tried, not guessed from modes)."""
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True
