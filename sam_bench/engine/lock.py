"""One run per task folder: an exclusive `flock` on `OUT/<task>/.<dataset>.lock`.

The kernel drops an flock when its holder dies (even by SIGKILL), so a killed run never leaves the
folder stuck; a second run into the same folder fails at once with one line naming the holder.
The lock file sits beside the task folder, not in it, because a finished run swaps that folder.

A shard of a launched run (engine/shards.py) holds the task lock shared, so the shards of a task
run side by side while a whole-task run or the scoring step (exclusive) waits for none of them,
and its own shard lock exclusively, so no two submissions run one shard.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import SamBenchError


_held: set[int] = set()  # lock fds of this process


def _close_in_child() -> None:
    # A forked child (DataLoader or scoring worker) shares the flock; closing its copy keeps the
    # lock owned by the run alone, so it is free as soon as the run ends, whatever its children do.
    for fd in _held:
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


class BusyError(SamBenchError):
    """Another live process holds the task folder."""


class TaskLock:
    """Exclusive, non-blocking ownership of one task folder for the lifetime of a run."""

    def __init__(self, task_dir: Path, part: str | None = None, shared: bool = False) -> None:
        """`part`: a shard's name (its own lock beside the task's); `shared`: many holders at once."""
        self.task_dir = Path(task_dir)
        suffix = f".{part}" if part else ""
        self.path = self.task_dir.parent / f".{self.task_dir.name}{suffix}.lock"
        self.what = f"{self.task_dir} ({part})" if part else str(self.task_dir)
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> "TaskLock":
        """Take the lock or raise BusyError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BusyError(f"busy: another run (pid {holder}) is writing {self.what}; "
                            "wait for it to finish or use another --out") from None
        if not self.shared:
            os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _held.add(fd)
        return self

    def held_elsewhere(self) -> bool:
        """Whether a live process holds this lock exclusively (a probe that takes nothing for long)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's shared lock

    def release(self) -> None:
        if self._fd is not None:
            _held.discard(self._fd)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "TaskLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
