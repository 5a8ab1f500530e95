"""run.json: versions, git commit, and one record per (task, dataset) run into the directory."""
from __future__ import annotations

import contextlib
import fcntl
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterator

from .io import read_json_record, write_json

PACKAGE_DIR = Path(__file__).resolve().parent


def package_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def git_commit() -> dict[str, Any] | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    import torch

    from . import __version__

    return {
        "sam_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "segment_anything": package_version("segment-anything"),
        "platform": platform.platform(),
        "git": git_commit(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of run.json/report.md between runs sharing a directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record_task_run(out_dir: Path, key: str, record: dict[str, Any]) -> None:
    path = out_dir / "run.json"
    data = read_run_json(out_dir)
    data.update(environment())
    data.setdefault("tasks", {})[key] = record
    write_json(path, data)


def read_run_json(out_dir: Path) -> dict[str, Any]:
    return read_json_record(Path(out_dir) / "run.json", "run.json (the record of this results folder)")
