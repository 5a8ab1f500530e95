"""Shards of a task's images, for runs split over separate jobs (`run --launcher`, `run --score later`).

Shard k of N takes the images at positions k, k+N, k+2N, ... of the dataset's order: the same
interleaving as torchrun's ranks (runner.py), but fixed by position, not by what is left to do,
because shards start at different times in different processes and must never overlap. Each
shard appends its records to its own progress part (`progress/part-shard-k-of-N.jsonl`), so the
scoring step merges them exactly as rank 0 merges the ranks' parts, and a shard that is rerun
(retried, resubmitted, or with another N) skips every image any part already holds.

A shard that has evaluated all its images writes `progress/shard-k-of-N.json`: its run record
(settings, model, device, timings) and the staging folder's fingerprint. The scoring step reads
these records; `sam-bench status` reads them to tell done shards from running ones.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import write_json

_RECORD = re.compile(r"shard-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index} of {self.count}: need 0 <= index < count and count >= 1")

    @property
    def name(self) -> str:
        """`shard-0-of-3`: its progress part, its record and its lock are named after it."""
        return f"shard-{self.index}-of-{self.count}"

    @property
    def label(self) -> str:
        """`1/3`, for people (1-based)."""
        return f"{self.index + 1}/{self.count}"

    def positions(self, total: int) -> range:
        """Positions of this shard's images in a dataset of `total` images."""
        return range(self.index, total, self.count)


WHOLE = Shard(0, 1)  # a run that evaluated every image in one process (or under torchrun)


def record_path(work_dir: Path, shard: Shard) -> Path:
    return Path(work_dir) / "progress" / f"{shard.name}.json"


def write_shard_record(work_dir: Path, shard: Shard, record: dict[str, Any]) -> None:
    write_json(record_path(work_dir, shard), {"shard": [shard.index, shard.count], **record})


def shard_records(work_dir: Path) -> dict[Shard, dict[str, Any]]:
    """Every finished shard's record in a staging folder (none when the folder is absent)."""
    found: dict[Shard, dict[str, Any]] = {}
    for path in sorted((Path(work_dir) / "progress").glob("shard-*-of-*.json")):
        match = _RECORD.fullmatch(path.name)
        if match:
            found[Shard(int(match[1]), int(match[2]))] = json.loads(path.read_text())
    return found
