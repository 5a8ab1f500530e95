"""Per-image progress records: what makes a run resumable and shardable.

Each rank appends one JSON line per finished image to `progress/part-<rank>.jsonl` and fsyncs it.
A run killed mid-line leaves at most one partial last line, which is cut off on the next start, so
that image is redone and every other finished image is kept. Rank 0 merges all parts (of any
earlier world size) before computing metrics.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..io import jsonable, write_json
from .context import ImageResult

log = logging.getLogger(__name__)


class ProgressStore:
    def __init__(self, task_dir: Path, fingerprint: str, rank: int = 0) -> None:
        self.task_dir = task_dir
        self.dir = task_dir / "progress"
        self.fingerprint = fingerprint
        self.rank = rank

    def prepare(self, fresh: bool) -> str:
        """Rank 0, before any work: decide between a new run, a rerun and a resume."""
        state = self.dir / "state.json"
        if (self.task_dir / "metrics.json").exists():
            action = "rerun: replacing the finished results"
        elif fresh and self.dir.exists():
            action = "fresh: discarding the interrupted run's progress"
        elif state.exists() and json.loads(state.read_text()).get("fingerprint") != self.fingerprint:
            action = "settings changed since the interrupted run: starting over"
        elif state.exists():
            return "resume"
        else:
            action = "new"
        if self.task_dir.exists():
            shutil.rmtree(self.task_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(state, {"fingerprint": self.fingerprint})
        return action

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.jsonl"))

    def load(self) -> dict[str, ImageResult]:
        results: dict[str, ImageResult] = {}
        for part in self._parts():
            with open(part) as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # partial line of a killed writer
                    rec = json.loads(line)
                    results[rec["image_id"]] = ImageResult(rec["image_id"], rec["rows"], rec["payload"])
        return results

    def open_for_append(self):
        path = self.dir / f"part-{self.rank}.jsonl"
        if path.exists():
            data = path.read_bytes()
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                log.warning("%s: dropping a partial record left by an interrupted run", path)
                with open(path, "r+b") as f:
                    f.truncate(complete)
        return _Appender(path)


class _Appender:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "a")

    def append(self, result: ImageResult) -> None:
        self.file.write(json.dumps({"image_id": result.image_id, "rows": result.rows,
                                    "payload": result.payload}, default=jsonable) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()
