"""The runner: dataset -> per-image task evaluation (resumable, sharded) -> metrics -> files.

Under `torchrun`, each rank takes a disjoint shard of the images still to do, and rank 0 merges
every rank's per-image records before computing metrics, so the numbers do not depend on the
number of processes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from tqdm import tqdm

from .config import RunConfig, build_options, with_absolute_paths
from .core.cache import EmbeddingCache
from .core.device import resolve_device
from .core.workers import die_with_parent
from .core.preflight import disk_full, ensure_writable, missing_folders, remove_if_empty
from .engine.prefetch import prefetch
from .data.registry import open_dataset
from .data.types import Dataset
from .engine.context import ImageResult, RunContext
from .engine.eta import EtaLog
from .engine.inputs import INPUTS_FILE, InputFiles, redo_changed, write_inputs
from .engine.lock import TaskLock
from .engine.progress import ProgressStore
from .engine.speed import PeakMemory, measured, speed_record
from .engine.shards import WHOLE, write_shard_record
from .engine.staging import RECORD_FILE, Staging
from .errors import ConfigError, DataError, SamBenchError
from .io import atomic_write, read_json_record, write_json
from .metrics.bootstrap import UNITS_FILE
from .metadata import locked, now, read_run_json, record_task_run
from .models.base import EdgeDetector, Model, PromptableSegmenter, require
from .models.cached import CachedSegmenter
from .models.checked import FiniteOutputs
from .plugins import load_plugins
from .registry import MODELS, TASKS
from .reporting.writer import write_report
from .tasks.base import Task

log = logging.getLogger(__name__)


class Distributed:
    """torchrun's environment (RANK / WORLD_SIZE), or a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun: a rank must not outlive a killed launcher
            die_with_parent(os.getppid())
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            # Ranks wait for each other at the end of a long run: allow a day, not the default 30 min.
            dist.init_process_group(backend=backend, timeout=timedelta(hours=24))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group: exiting with it alive aborts rank 0 at interpreter exit."""
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def broadcast(self, value: Any) -> Any:
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def build_model(cfg: RunConfig, device: torch.device, cache: EmbeddingCache | None = None) -> Model:
    """The registered factory, called with the run's settings and `--model-args`; wrapped by the
    embedding cache when one is configured and the model can be cached."""
    model = MODELS.get(cfg.model)(checkpoint=cfg.checkpoint, device=device, precision=cfg.precision,
                                  batch_size=cfg.batch_size, **cfg.model_args)
    if cfg.compile:
        model.enable_compile()
    if isinstance(model, PromptableSegmenter) and not isinstance(model, EdgeDetector):
        model = FiniteOutputs(model)  # NaN weights must fail, not score 0 (edge detectors: weight-free, keep their type)
    if cache is not None and isinstance(model, PromptableSegmenter) and model.cache_fingerprint is not None:
        return CachedSegmenter(model, cache)
    return model


# Run settings that cannot change a number, or that enter the identity in resolved form below.
# batch_size stays in: prompts are decoded independently, but the matrix kernels round differently
# for another batch shape (predicted IoUs move in the 7th digit, measured), which can flip a
# near-tie between masks; a resumed run must not mix the two.
# workers only read images ahead in other processes.
NOT_IN_IDENTITY = frozenset({"out", "label", "fresh", "cache_dir", "device", "checkpoint", "workers", "name",
                             "data_root", "split", "limit", "options", "model_args"})


def run_fingerprint(cfg: RunConfig, task_desc: dict, model_info: dict, dataset_meta: dict,
                    fp16_embeddings: bool, device: torch.device) -> str:
    """Identity of a run's results: resuming is only allowed when this is unchanged. It holds every
    setting that changes numbers (any RunConfig field not listed in NOT_IN_IDENTITY, so new ones are
    included by default), the resolved task options, model (weights hash, --model-args), dataset
    (root, split, limit), whether embeddings pass through the fp16 cache, and the device type."""
    ident = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_IDENTITY}
    ident.update(options=task_desc, model=model_info, dataset=dataset_meta, fp16_embeddings=fp16_embeddings,
                 device_type=device.type)
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def run(cfg: RunConfig, score: bool = True) -> dict[str, float]:
    """Run one task on one dataset with one model; returns the metrics (on every rank).

    Rank 0 owns the task folder for the whole run (engine/lock.py); a second run into it fails at
    once. Work happens in a staging folder that replaces the previous results only when complete.
    `score=False` (`--score later`) stops after the per-image records: `sam-bench score` scores them
    (stages.py) and the metrics returned are empty."""
    load_plugins()
    cfg = with_absolute_paths(cfg)
    world = Distributed()
    try:
        task_dir = Path(cfg.out) / cfg.result_name / cfg.dataset
        problem, lock = None, TaskLock(task_dir)
        new_folders = missing_folders(task_dir.parent)
        if world.rank == 0:
            try:
                ensure_writable(Path(cfg.out), "--out")
                read_run_json(Path(cfg.out))  # a damaged run.json stops the run now, not after its last image
                lock.acquire()
            except SamBenchError as exc:
                problem = exc
        problem = world.broadcast(problem)  # every rank stops, none waits for rank 0 forever
        if problem is not None:
            raise problem
        try:
            if world.rank == 0:  # a run killed between its swap and run.json: the folder on disk wins
                publish_record(Path(cfg.out), f"{cfg.result_name}/{cfg.dataset}", task_dir, only_if_stale=True)
            return _run(cfg, world, score)
        except OSError as exc:
            raise disk_full(exc, Path(cfg.out)) or exc
        finally:
            lock.release()
            if world.rank == 0:  # a run that stopped before any work (a bad flag) leaves no empty folders
                remove_if_empty(new_folders, lock.path)
    finally:
        world.close()


@dataclass
class OpenRun:
    """Everything a run builds before its first image."""

    cfg: RunConfig
    task: Task
    model: Model | None  # None: a task that scores given predictions
    dataset: Dataset
    ctx: RunContext
    staging: Staging
    fingerprint: str
    model_record: dict[str, Any]
    cache: EmbeddingCache | None
    ids: list[str]
    peak: PeakMemory  # reset before the model is built: this task's peak, not an earlier one's

    @property
    def task_dir(self) -> Path:
        return Path(self.cfg.out) / self.cfg.result_name / self.cfg.dataset


def open_run(cfg: RunConfig) -> OpenRun:
    """Task, model, dataset, the run's identity and its context (working in the staging folder)."""
    device = resolve_device(cfg.device)
    peak = PeakMemory(device)
    task_cls = TASKS.get(cfg.task)
    task = task_cls(build_options(task_cls.Options, cfg.options, cfg.task))
    cache = EmbeddingCache(cfg.cache_dir) if cfg.cache_dir else None
    model_free = task.scores_predictions()
    if model_free and cfg.model:
        raise ConfigError(f"task '{cfg.task}' scores the given predictions: drop --model {cfg.model}")
    model = None if model_free else build_model(cfg, device, cache)
    if model is not None:
        require(model, task_cls.requires, cfg.task)
    dataset = open_dataset(cfg.dataset, cfg.data_root, cfg.split, cfg.limit, cfg.seed)
    model_record = _model_record(model, task, cfg)
    staging = Staging(Path(cfg.out) / cfg.result_name / cfg.dataset)
    fingerprint = run_fingerprint(cfg, task.describe(), model_record, dataset.metadata,
                                  isinstance(model, CachedSegmenter), device)
    ctx = RunContext(model=model, dataset=dataset, out_dir=staging.work, device=device, config=cfg)
    ids = dataset.image_ids()
    if len(set(ids)) != len(ids):
        repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
        raise DataError(f"dataset '{cfg.dataset}' ({cfg.data_root}): {len(repeated)} image ids are not unique: "
                        + ", ".join(repeated[:10]))
    return OpenRun(cfg, task, model, dataset, ctx, staging, fingerprint, model_record, cache, ids, peak)


def evaluate_images(r: OpenRun, store: ProgressStore, inputs: InputFiles, positions: list[int], show: bool) -> None:
    """Evaluate the images at `positions` of the dataset, appending each record (with the identity of
    the files it was computed from) to `store`."""
    cfg, label = r.cfg, f"{r.cfg.task}/{r.cfg.dataset}"
    appender = store.open_for_append()
    try:
        samples = ((r.dataset.get(i) for i in positions) if r.model is None or not r.task.loads_images()
                   else prefetch(r.dataset, positions, r.model, cfg.workers, cfg.encode_batch))
        bar = tqdm(samples, total=len(positions), desc=f"{label} [{r.model_record['label']}]", unit="img",
                   disable=not show or None, dynamic_ncols=True)
        eta = EtaLog(label, len(positions), enabled=show)
        for index, sample in zip(positions, bar):
            computed_from = inputs.identity(r.task.input_files(r.dataset, index))
            with r.ctx.timed("evaluate"):
                result = r.task.evaluate_image(r.ctx, sample)
            appender.append(result, computed_from)
            eta.step()
    finally:
        appender.close()


def run_record(r: OpenRun, started: str, images_resumed: int, action: str, world_size: int) -> dict[str, Any]:
    """run.json's record of a run, less its inputs, end time and wall seconds (score_and_commit adds them)."""
    cache = r.cache
    return {
        "config": r.cfg.to_dict(), "task_options": r.task.describe(), "model": r.model_record,
        "device": str(r.ctx.device), "world_size": world_size, "dataset": r.dataset.metadata,
        "images": len(r.ids), "images_available": getattr(r.dataset, "available", len(r.ids)),
        "images_resumed": images_resumed, "action": action, "started": started,
        "embedding_cache": None if cache is None else {"dir": str(cache.root), "hits": cache.hits,
                                                       "misses": cache.misses},
    }


def _run(cfg: RunConfig, world: Distributed, score: bool) -> dict[str, float]:
    started, t0 = now(), time.perf_counter()
    r = open_run(cfg)
    store, inputs = ProgressStore(r.staging.work, world.rank), InputFiles()
    action = None
    if world.rank == 0:
        action = r.staging.prepare(r.fingerprint, cfg.fresh)
        store.load()
        store.drop(redo_changed(inputs, store.inputs))  # an image whose files changed is redone
    action = world.broadcast(action)
    r.task.setup(r.ctx)

    done = set(store.load())
    todo = [i for i, image_id in enumerate(r.ids) if image_id not in done]
    if world.rank == 0:
        log.info("%s/%s: %s; %d images, %d already done", cfg.task, cfg.dataset, action, len(r.ids), len(done))
    evaluate_images(r, store, inputs, todo[world.rank::world.world], show=world.rank == 0)
    world.barrier()

    metrics: dict[str, float] = {}
    if world.rank == 0:
        record = run_record(r, started, len(done), action, world.world)
        if score:
            metrics = score_and_commit(r, record, t0)
        else:  # --score later: the records wait in the staging folder for `sam-bench score`
            record["wall_seconds"] = {"total": time.perf_counter() - t0, **dict(r.ctx.timed.seconds)}
            record["measured"] = measured(r.peak)  # this process's device and peak, not the scoring one's
            write_shard_record(r.staging.work, WHOLE, {**record, "finished": now(), "fingerprint": r.fingerprint})
    return world.broadcast(metrics)


def score_and_commit(r: OpenRun, record: dict[str, Any], t0: float) -> dict[str, float]:
    """Merge every part's records, compute the metrics, write the results and swap them into place.
    `record`'s wall seconds (of stored shards, if any) are added to this process's since `t0`."""
    store = ProgressStore(r.staging.work)
    by_id = store.load()
    missing = [i for i in r.ids if i not in by_id]
    if missing:
        raise SamBenchError(f"{r.staging.work / 'progress'}: {len(missing)} images have no result (e.g. "
                            f"{', '.join(map(str, missing[:3]))}; their records were damaged during the run, or "
                            "their shard has not finished); rerun the same command to redo them")
    results = [by_id[i] for i in r.ids]
    inputs_digest = write_inputs(r.staging.work / INPUTS_FILE, (store.inputs[i] for i in r.ids))
    with r.ctx.timed("metrics"):
        metrics = r.task.compute_metrics(r.ctx, results)
        write_items(r.staging.work / "items.csv", results)
        r.task.finalize(r.ctx, results, metrics)
    units = r.task.bootstrap_units(r.ctx, results)
    if units is not None:  # intervals of the headline metrics; units.json for paired comparisons
        if r.cfg.ci:
            with r.ctx.timed("bootstrap"):
                units.keep_replicates(r.cfg.ci, r.cfg.seed)
                metrics.update(units.intervals(r.cfg.ci, r.cfg.seed))
        write_json(r.staging.work / UNITS_FILE, units.to_json())
    write_json(r.staging.work / "metrics.json", metrics)
    seconds = {"total": time.perf_counter() - t0, **dict(r.ctx.timed.seconds)}
    for stage, value in record.get("wall_seconds", {}).items():
        seconds[stage] = seconds.get(stage, 0.0) + value
    evaluated = len(r.ids) - record["images_resumed"]  # images whose stage times the seconds hold
    measurement = record.pop("measured", None) or measured(r.peak)  # stored by the shards that evaluated
    speed = speed_record(measurement, r.cfg.precision, r.cfg.compile,
                         getattr(r.model, "batch_size", r.cfg.batch_size), r.cfg.encode_batch, seconds, evaluated)
    write_json(r.staging.work / RECORD_FILE, {**record, "inputs_digest": inputs_digest, "finished": now(),
                                              "wall_seconds": seconds, "speed": speed})
    out_dir = Path(r.cfg.out)
    with locked(out_dir):
        r.staging.commit()
    publish_record(out_dir, f"{r.cfg.result_name}/{r.cfg.dataset}", r.task_dir)
    return metrics


def _model_record(model: Model | None, task: Task, cfg: RunConfig) -> dict[str, Any]:
    """What run.json and the report say about the model, as the task runs it (a model-free run
    scores given predictions)."""
    if model is None:
        source = cfg.options.get("predictions")
        return {"name": "predictions", "label": f"predictions ({Path(str(source)).name})", "untrained": False,
                "model_args": {}, "predictions": str(Path(str(source)).resolve())}
    info = task.model_info(model)
    return {"name": info.name, "label": info.label, "untrained": info.untrained,
            "model_args": dict(cfg.model_args), **info.details}


def write_items(path: Path, results: list[ImageResult]) -> None:
    rows = [{"image_id": r.image_id, **row} for r in results for row in r.rows]
    frame = pd.DataFrame(rows)
    atomic_write(path, lambda f: frame.to_csv(f, index=False))


def publish_record(out_dir: Path, key: str, task_dir: Path, only_if_stale: bool = False) -> None:
    """Copy the task folder's record into run.json and rebuild report.md, so both describe the
    results on disk (`only_if_stale`: skip when run.json already agrees)."""
    path = task_dir / RECORD_FILE
    if not path.exists():
        return
    record = read_json_record(path, "task record")
    with locked(out_dir):
        if only_if_stale and read_run_json(out_dir).get("tasks", {}).get(key) == record:
            return
        record_task_run(out_dir, key, record)
        write_report([out_dir], out_dir / "report.md")
