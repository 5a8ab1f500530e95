"""A task's two stages as separate steps: one shard's per-image records, and scoring what is stored.

`run_shard` is what one element of a launched run does (launch/): the runner's per-image loop over
one shard (engine/shards.py), with no metrics. `score_stored` is the scoring stage (`sam-bench
score`, or the last element of a launched task): it merges every shard's records exactly as the
runner merges torchrun's ranks, computes the metrics on the CPU and swaps the results into place.
Neither needs the other's machine: shards need the model's device, scoring only CPUs.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from .config import RunConfig, with_absolute_paths
from .core.preflight import ensure_writable
from .engine.inputs import InputFiles, redo_changed
from .engine.lock import BusyError, TaskLock
from .engine.progress import ProgressStore
from .engine.shards import Shard, shard_records, write_shard_record
from .engine.speed import measured, merge_measured
from .engine.staging import Staging
from .errors import DataError
from .metadata import locked, now
from .plugins import load_plugins
from .runner import evaluate_images, open_run, publish_record, run_record, score_and_commit

log = logging.getLogger(__name__)


def run_shard(cfg: RunConfig, shard: Shard) -> None:
    """Evaluate the images of `shard` not yet recorded by any part, then write the shard's record.

    Holds the task lock shared (shards of one task run together; a whole-task run or the scoring
    step, which take it exclusively, cannot run meanwhile) and the shard's own lock exclusively (a
    second submission into the same --out stops at once on a shard that is running)."""
    load_plugins()
    cfg = with_absolute_paths(cfg)
    task_dir = Path(cfg.out) / cfg.result_name / cfg.dataset
    ensure_writable(Path(cfg.out), "--out")
    with TaskLock(task_dir, shared=True):
        shard_lock = _acquire(TaskLock(task_dir, part=shard.name))
        try:
            _evaluate_shard(cfg, shard)
        finally:
            shard_lock.release()


def _evaluate_shard(cfg: RunConfig, shard: Shard) -> None:
    started, t0 = now(), time.perf_counter()
    r = open_run(cfg)
    with locked(Path(cfg.out)):  # the first shard to start creates the staging folder, the others join it
        action = r.staging.prepare(r.fingerprint, fresh=False)
    store, inputs = ProgressStore(r.staging.work, shard.name), InputFiles()
    store.load()
    own = {r.ids[i] for i in shard.positions(len(r.ids))}
    store.drop(redo_changed(inputs, {i: files for i, files in store.inputs.items() if i in own}))
    r.task.setup(r.ctx)
    done = set(store.load())
    mine = [i for i in shard.positions(len(r.ids)) if r.ids[i] not in done]
    log.info("%s/%s shard %s: %s; %d of its images to do, %d done in all", cfg.task, cfg.dataset, shard.label,
             action, len(mine), len(done))
    evaluate_images(r, store, inputs, mine, show=True)
    record = run_record(r, started, len(shard.positions(len(r.ids))) - len(mine), action, 1)
    record["wall_seconds"] = {"total": time.perf_counter() - t0, **dict(r.ctx.timed.seconds)}
    record["measured"] = measured(r.peak)  # the device and peak memory of this shard's process
    write_shard_record(r.staging.work, shard, {**record, "finished": now(), "fingerprint": r.fingerprint})


def _acquire(lock: TaskLock, tries: int = 5) -> TaskLock:
    """A shard lock, tried a few times: `sam-bench status` probes it for a moment."""
    for _ in range(tries - 1):
        try:
            return lock.acquire()
        except BusyError:
            time.sleep(0.2)
    return lock.acquire()


def score_stored(task_dir: Path, device: str = "cpu") -> dict[str, float]:
    """Score the records stored by `run --score later` or by a launched task's shards; returns the metrics."""
    load_plugins()
    task_dir = Path(task_dir)
    with TaskLock(task_dir):
        t0 = time.perf_counter()
        staging = Staging(task_dir)
        records = latest_complete(shard_records(staging.work))
        if not records:
            raise DataError(f"{task_dir}: nothing stored to score (no finished shard in {staging.work})")
        fingerprint = staging.fingerprint()
        stale = [s.label for s, rec in records.items() if rec.get("fingerprint") != fingerprint]
        if stale:
            raise DataError(f"{staging.work}: shard records {', '.join(stale)} belong to other settings; "
                            "rerun the task")
        first = records[min(records, key=lambda s: (s.count, s.index))]
        # Scoring neither encodes nor decodes: the model is built on the CPU only for the task's setup.
        cfg = dataclasses.replace(RunConfig(**first["config"]), device=device, cache_dir=None, compile=False,
                                  workers=0)
        publish_record(Path(cfg.out), f"{cfg.result_name}/{cfg.dataset}", task_dir, only_if_stale=True)
        r = open_run(cfg)
        r.task.setup(r.ctx)
        return score_and_commit(r, merged_record(list(records.values())), t0)


def latest_complete(records: dict[Shard, dict]) -> dict[Shard, dict]:
    """The records of one submission's shards: of the shard counts whose every shard finished, the
    one that finished last (a task resubmitted with another --shards keeps the first one's records
    too); all records when no count is complete (scoring then names the images without a result)."""
    complete = [n for n in {s.count for s in records} if all(Shard(k, n) in records for k in range(n))]
    if not complete:
        return records
    count = max(complete, key=lambda n: max(records[Shard(k, n)]["finished"] for k in range(n)))
    return {s: rec for s, rec in records.items() if s.count == count}


def merged_record(records: list[dict]) -> dict:
    """One run.json record from the shards' records: the first one's settings, summed counts and
    seconds (CPU-side totals over all shards), the earliest start."""
    merged = {k: v for k, v in records[0].items() if k not in ("shard", "fingerprint", "finished", "measured")}
    merged["images_resumed"] = sum(rec["images_resumed"] for rec in records)
    merged["started"] = min(rec["started"] for rec in records)
    merged["shards"] = len(records)
    seconds: dict[str, float] = {}
    for rec in records:
        for stage, value in rec.get("wall_seconds", {}).items():
            seconds[stage] = seconds.get(stage, 0.0) + value
    merged["wall_seconds"] = seconds
    parts = [rec["measured"] for rec in records if "measured" in rec]
    if parts:  # records written before shards measured: the scoring process measures instead
        merged["measured"] = merge_measured(parts)
    return merged


def pending_scores(out: Path) -> list[Path]:
    """Task folders under `out` whose staging folder holds stored records to score."""
    found = []
    for work in sorted(Path(out).rglob(".*.staging")):
        if work.is_dir() and shard_records(work):
            found.append(work.parent / work.name[1:-len(".staging")])
    return found
