"""What a launched run consists of, and where it keeps track: `OUT/launch.json` and element states.

An element is one job: the per-image stage of one shard of one (task definition, dataset, model),
or the scoring of one such task. The driver writes the plan and every submission (job id, log
files) to `OUT/launch.json`; each element writes its own state (running / done / failed / busy,
with its pid and error line) to `OUT/.launch/state/<element>.json`. `sam-bench status` reads both
and the results on disk, so it needs neither submitit nor the driver to be alive.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from ..engine.shards import Shard
from ..io import write_json
from ..metadata import locked, now

PLAN_FILE = "launch.json"
LAUNCH_DIR = ".launch"


@dataclass(frozen=True)
class Element:
    """One job of a launched run (pickled into the job by submitit)."""

    definition: str  # result folder name (a task definition)
    dataset: str
    model: str
    run_dir: str  # OUT, or OUT/<model> when the suite names several models
    config: dict[str, Any]  # the RunConfig of the task (shards) or {} (scoring reads it from the shards)
    stamp: str  # suite.json's settings stamp of the task ("" outside a suite)
    suite: str
    shard: Optional[tuple[int, int]] = None  # (index, count); None: the scoring element

    @property
    def task_key(self) -> str:
        return f"{self.definition}/{self.dataset}"

    @property
    def key(self) -> str:
        part = Shard(*self.shard).name if self.shard else "score"
        return f"{self.definition}/{self.dataset}/{self.model}/{part}"

    @property
    def task_dir(self) -> Path:
        return Path(self.run_dir) / self.definition / self.dataset

    @property
    def part(self) -> str:
        return f"shard {Shard(*self.shard).label}" if self.shard else "scoring"

    @property
    def label(self) -> str:
        return f"{self.definition}/{self.dataset} [{self.model}] {self.part}"


def launch_dir(out: Path) -> Path:
    return Path(out) / LAUNCH_DIR


def state_path(out: Path, key: str) -> Path:
    return launch_dir(out) / "state" / (key.replace("/", "__") + ".json")


def write_state(out: Path, key: str, state: str, job_id: str, error: str = "") -> None:
    """An element's own word on how it is doing (written from inside the job)."""
    write_json(state_path(out, key), {"state": state, "job_id": job_id, "pid": os.getpid(),
                                      "host": socket.gethostname(), "error": error, "time": now()})


def read_state(out: Path, key: str) -> dict[str, Any]:
    path = state_path(out, key)
    return json.loads(path.read_text()) if path.exists() else {}


def read_plan(out: Path) -> dict[str, Any]:
    path = Path(out) / PLAN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_plan(out: Path, header: dict[str, Any], elements: list[Element]) -> None:
    """A new launch: its settings and its elements, none submitted yet."""
    with locked(Path(out)):
        write_json(Path(out) / PLAN_FILE, {**header, "started": now(),
                                           "elements": {e.key: {**asdict(e), "attempts": []} for e in elements}})


def add_elements(out: Path, elements: list[Element]) -> None:
    """Elements planned after the launch began (a task's scoring, once its shards are done)."""
    with locked(Path(out)):
        plan = read_plan(out)
        for e in elements:
            plan["elements"].setdefault(e.key, {**asdict(e), "attempts": []})
        write_json(Path(out) / PLAN_FILE, plan)


def record_submission(out: Path, key: str, job_id: str, stdout: Path, stderr: Path) -> None:
    with locked(Path(out)):
        plan = read_plan(out)
        plan["elements"][key]["attempts"].append({"job_id": job_id, "stdout": str(stdout), "stderr": str(stderr),
                                                  "submitted": now()})
        write_json(Path(out) / PLAN_FILE, plan)


def last_log_line(path: Optional[str | Path]) -> str:
    """The last non-empty line of a job's log (progress bars' carriage returns split lines too)."""
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        tail = f.read().decode(errors="replace")
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""
