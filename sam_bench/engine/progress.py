"""Per-image progress records: what makes a run resumable and shardable.

Each rank appends one JSON line per finished image to `progress/part-<rank>.jsonl` and fsyncs it
(a shard of a launched run to `progress/part-shard-<k>-of-<N>.jsonl`, engine/shards.py).
A run killed mid-line leaves at most one partial last line; that line, or any line damaged
otherwise, is dropped with a warning naming the file and line on the next start, so only that
image is redone and every other finished image is kept. Rank 0 merges all parts (of any
earlier world size) before computing metrics. Each record also keeps the identity of the files the
image was computed from (engine/inputs.py), so a changed image is redone on resume.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from ..io import atomic_write, jsonable
from .context import ImageResult

log = logging.getLogger(__name__)


class ProgressStore:
    def __init__(self, work_dir: Path, rank: int | str = 0) -> None:
        self.dir = work_dir / "progress"
        self.rank = rank  # a torchrun rank, or a shard's name
        self.inputs: dict[str, Any] = {}  # image id -> its input files' identities, filled by load()

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.jsonl"))

    def load(self) -> dict[str, ImageResult]:
        """Every readable record of every rank; damaged lines are dropped (that image is redone)."""
        results: dict[str, ImageResult] = {}
        self.inputs = {}
        for part in self._parts():
            for _, rec in _records(part):
                results[rec["image_id"]] = ImageResult(rec["image_id"], rec["rows"], rec["payload"])
                self.inputs[rec["image_id"]] = rec.get("inputs")
        return results

    def drop(self, image_ids: set[str]) -> None:
        """Remove the records of `image_ids` from every part (before any rank appends): they are redone."""
        for part in self._parts():
            records = list(_records(part, warn=False))
            kept = [line for line, rec in records if rec["image_id"] not in image_ids]
            if len(kept) != len(records):
                atomic_write(part, lambda f: f.writelines(kept))

    def open_for_append(self) -> "_Appender":
        """This rank's part file, rewritten without a partial or damaged record if it has one."""
        path = self.dir / f"part-{self.rank}.jsonl"
        if path.exists():
            good = list(_records(path, warn=False))
            if sum(1 for _ in open(path, "rb")) != len(good):
                atomic_write(path, lambda f: f.writelines(line for line, _ in good))
        return _Appender(path)


def _records(path: Path, warn: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """(line, record) for each intact line; a cut last line (killed writer) or a damaged line is
    skipped with a warning naming the file and line, so only that image is redone."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                if warn:
                    log.warning("%s:%d: dropping a partial record left by an interrupted run", path, number)
                break
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec["image_id"], (str, int)):
                    raise ValueError("not a record")
                rec["rows"], rec["payload"]  # noqa: B018  (required keys)
            except (ValueError, KeyError, TypeError) as exc:
                if warn:
                    log.warning("%s:%d: dropping a damaged progress record (%s); that image is redone",
                                path, number, exc)
                continue
            yield line, rec


class _Appender:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "a")

    def append(self, result: ImageResult, inputs: dict[str, Any] | None = None) -> None:
        """One finished image and the identities of the files it was computed from."""
        self.file.write(json.dumps({"image_id": result.image_id, "rows": result.rows, "payload": result.payload,
                                    "inputs": inputs}, default=jsonable) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()
