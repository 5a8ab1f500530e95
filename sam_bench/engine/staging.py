"""A run works in a staging folder and replaces the task's results only once it is complete.

`OUT/<task>/.<dataset>.staging/` holds the progress records and every file the task writes. When
metrics and items are written, the staging folder is exchanged with `OUT/<task>/<dataset>/` in one
atomic `renameat2(RENAME_EXCHANGE)`, so a rerun that is killed, or fails on a bad model or image,
leaves the previous complete results (and the run.json / report.md describing them) untouched.
Where the kernel lacks the exchange, two renames with a recovery step on the next start are used.
"""
from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
from pathlib import Path

from ..io import write_json

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class Staging:
    """The work folder of one task folder and its atomic swap into place."""

    def __init__(self, task_dir: Path) -> None:
        self.task_dir = Path(task_dir)
        self.work = self.task_dir.parent / f".{self.task_dir.name}.staging"
        self.old = self.task_dir.parent / f".{self.task_dir.name}.old"  # only for the two-rename fallback
        self.state = self.work / "progress" / "state.json"

    def prepare(self, fingerprint: str, fresh: bool) -> str:
        """Before any work (rank 0, holding the task lock): resume the staging folder or start a new one."""
        self._recover()
        leftover = (self.work / "metrics.json").exists()  # old results swapped out by a killed commit
        previous = _fingerprint(self.state) if self.state.exists() and not leftover else None
        if previous == fingerprint and not fresh:
            return "resume"
        if previous is not None:
            action = ("fresh: discarding the interrupted run's progress" if fresh
                      else "settings changed since the interrupted run: starting over")
        elif (self.task_dir / "metrics.json").exists():
            action = "rerun: the previous results stay until this run completes"
        else:
            action = "new"
        if self.work.exists():
            shutil.rmtree(self.work)
        self.state.parent.mkdir(parents=True)
        write_json(self.state, {"fingerprint": fingerprint})
        return action

    def fingerprint(self) -> str | None:
        """The identity of the work in the staging folder (None when there is none)."""
        return _fingerprint(self.state) if self.state.exists() else None

    def commit(self) -> None:
        """Put the complete staging folder in place of the task folder, atomically."""
        if not self.task_dir.exists():
            os.rename(self.work, self.task_dir)
        elif _exchange(self.work, self.task_dir):
            shutil.rmtree(self.work)  # now holds the previous results
        else:
            os.rename(self.task_dir, self.old)
            os.rename(self.work, self.task_dir)
            shutil.rmtree(self.old)
        _fsync_dir(self.task_dir.parent)

    def _recover(self) -> None:
        """Finish a fallback swap that was killed between its two renames."""
        if self.old.exists():
            if self.task_dir.exists():
                shutil.rmtree(self.old)
            else:
                os.rename(self.old, self.task_dir)


def _fingerprint(state: Path) -> str | None:
    try:
        return json.loads(state.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        log.warning("%s: unreadable progress state; starting over", state)
        return ""


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


RECORD_FILE = "run_record.json"  # the task's run.json record, kept with the results it describes
