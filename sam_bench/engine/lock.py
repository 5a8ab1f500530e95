"""One run per task folder: an exclusive `flock` on `OUT/<task>/.<dataset>.lock`.

The kernel drops an flock when its holder dies (even by SIGKILL), so a killed run never leaves the
folder stuck; a second run into the same folder fails at once with one line naming the holder.
The lock file sits beside the task folder, not in it, because a finished run swaps that folder.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import SamBenchError


class BusyError(SamBenchError):
    """Another live process holds the task folder."""


class TaskLock:
    """Exclusive, non-blocking ownership of one task folder for the lifetime of a run."""

    def __init__(self, task_dir: Path) -> None:
        self.task_dir = Path(task_dir)
        self.path = self.task_dir.parent / f".{self.task_dir.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "TaskLock":
        """Take the lock or raise BusyError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BusyError(f"busy: another run (pid {holder}) is writing {self.task_dir}; "
                            "wait for it to finish or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "TaskLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
