"""`sam-bench status OUT`: each task x dataset x shard as planned / queued / running / done / failed /
scored, from files alone (launch.json, the elements' state files, locks, shard records, results).

A job that said it was running but no longer holds its shard's lock died without a word (killed,
pre-empted, node lost): it is failed, with the last line of its log. A run without a launcher
(plain `run --suite`, `--score later`) shows one row per task from OUT/suite.json.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.lock import TaskLock
from ..engine.shards import Shard, record_path, shard_records
from ..engine.staging import Staging
from ..stages import pending_scores
from ..suite_runner import STATE_FILE, read_state as read_suite_state
from .plan import last_log_line, read_plan, read_state

STATES = ("planned", "queued", "running", "done", "failed", "scored")


@dataclass
class Row:
    task: str  # definition/dataset [model]
    part: str  # shard k/N | scoring | whole task
    state: str
    detail: str = ""


def status_rows(out: Path) -> list[Row]:
    out = Path(out)
    rows, seen = [], set()
    for key, element in read_plan(out).get("elements", {}).items():
        rows.append(_element_row(out, key, element))
        seen.add((Path(element["run_dir"]) / element["definition"] / element["dataset"]).resolve())
    for run_dir in [out, *sorted(p.parent for p in out.glob(f"*/{STATE_FILE}"))]:
        for task_key, entry in read_suite_state(run_dir).items():
            task_dir = run_dir / task_key
            if task_dir.resolve() not in seen:
                seen.add(task_dir.resolve())
                rows.append(_suite_row(task_dir, entry))
    for task_dir in pending_scores(out):
        if task_dir.resolve() not in seen:
            rows.append(Row(f"{task_dir.parent.name}/{task_dir.name}", "whole task", "done",
                            "stored; score with: sam-bench score OUT"))
    return rows


def _scored(task_dir: Path, stamp: str) -> bool:
    if not (task_dir / "metrics.json").exists() or shard_records(Staging(task_dir).work):
        return False
    entry = read_suite_state(task_dir.parent.parent).get(f"{task_dir.parent.name}/{task_dir.name}", {})
    return not stamp or (entry.get("stamp") == stamp and entry.get("status") == "ran")


def _element_row(out: Path, key: str, element: dict[str, Any]) -> Row:
    task_dir = Path(element["run_dir"]) / element["definition"] / element["dataset"]
    shard = Shard(*element["shard"]) if element["shard"] else None
    task = f"{element['definition']}/{element['dataset']} [{element['model']}]"
    row = Row(task, f"shard {shard.label}" if shard else "scoring", "planned")
    attempts = element["attempts"]
    last = attempts[-1] if attempts else None
    said = read_state(out, key)
    said = said if last and said.get("job_id") == last["job_id"] else {}
    job = f"job {last['job_id']}" if last else ""
    lock = TaskLock(task_dir, part=shard.name) if shard else TaskLock(task_dir)
    if _scored(task_dir, element["stamp"]):
        row.state = "scored"
    elif said.get("state") == "running" and lock.held_elsewhere():
        row.state, row.detail = "running", f"{job} (pid {said['pid']} on {said['host']}): {last_log_line(last['stderr'])}"
    elif said.get("state") in ("failed", "busy"):
        row.state, row.detail = "failed", f"{job}: {said['error']}; log: {last['stderr']}"
    elif said.get("state") == "running":
        row.state, row.detail = "failed", (f"{job} died without a word (killed or pre-empted): "
                                           f"{last_log_line(last['stderr'])}; log: {last['stderr']}")
    elif shard and record_path(Staging(task_dir).work, shard).exists() or said.get("state") == "done":
        row.state = "done"
    elif last:
        row.state, row.detail = "queued", job
    return row


def _suite_row(task_dir: Path, entry: dict[str, Any]) -> Row:
    """A task of a suite run in one process: scored, done (stored for scoring), failed or skipped."""
    state = {"ran": "scored", "stored": "done"}.get(entry.get("status", ""), entry.get("status", "planned"))
    if state == "scored" and not _scored(task_dir, ""):
        state = "done"
    return Row(f"{task_dir.parent.name}/{task_dir.name} [{entry.get('model', '?')}]", "whole task", state,
               entry.get("detail", "") if state in ("failed", "skipped") else "")


def print_status(out: Path) -> int:
    """Print the table; 0 only when every planned part is done and scored (skips aside)."""
    rows = status_rows(out)
    if not rows:
        print(f"{out}: nothing planned or run here")
        return 1
    width = max(len(r.task) for r in rows)
    for r in rows:
        print(f"{r.task:<{width}}  {r.part:<12} {r.state:<8} {r.detail}".rstrip())
    counts = Counter(r.state for r in rows)
    print(f"{out}: " + ", ".join(f"{counts[s]} {s}" for s in (*STATES, "skipped") if counts[s]))
    return 0 if all(r.state in ("scored", "skipped") for r in rows) else 1
