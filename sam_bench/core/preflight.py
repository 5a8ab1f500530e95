"""Checks made before the first image, so a run fails in its first second, not after hours."""
from __future__ import annotations

import errno
import os
import shutil
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


class StorageError(ConfigError):
    """The disk of an output folder is full."""


def disk_full(exc: OSError, folder: Path) -> StorageError | None:
    """One line naming the folder and its free space when `exc` is a full disk (or quota), else None.
    What was written before stays: finished images are fsynced records, results are swapped in whole."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return StorageError(f"{folder}: disk full ({free}); finished images are kept: free some space and rerun "
                        "the same command to resume")


def missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, outermost first."""
    missing = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing[::-1]


def remove_if_empty(folders: list[Path], lock_file: Path) -> None:
    """Undo `folders` (from missing_folders, made by this run) when nothing but the run's lock file
    is in them: a run that stopped on a bad setting leaves no trace. A folder with anything else in
    it (progress of a started run) stays, with its parents."""
    if not folders or not lock_file.parent.is_relative_to(folders[0]):
        return
    try:
        if set(lock_file.parent.iterdir()) <= {lock_file}:
            lock_file.unlink(missing_ok=True)
        for folder in reversed(folders):
            folder.rmdir()
    except OSError:
        pass  # not empty: kept
