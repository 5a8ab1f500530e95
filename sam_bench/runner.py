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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from tqdm import tqdm

from .config import RunConfig, build_options
from .core.cache import EmbeddingCache
from .core.device import resolve_device
from .data.prefetch import prefetch
from .data.registry import open_dataset
from .errors import DataError
from .io import atomic_write, write_json
from .metadata import locked, now, record_task_run
from .plugins import load_plugins
from .engine.progress import ProgressStore
from .models.base import Model, PromptableSegmenter, require
from .models.cached import CachedSegmenter
from .registry import MODELS, TASKS
from .engine.context import ImageResult, RunContext

log = logging.getLogger(__name__)


class Distributed:
    """torchrun's environment (RANK / WORLD_SIZE), or a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            # Ranks wait for each other at the end of a long run: allow a day, not the default 30 min.
            dist.init_process_group(backend=backend, timeout=timedelta(hours=24))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

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
    if cache is not None and isinstance(model, PromptableSegmenter) and model.cache_fingerprint is not None:
        return CachedSegmenter(model, cache)
    return model


def run_fingerprint(cfg: RunConfig, task_desc: dict, model_info: dict, dataset_meta: dict) -> str:
    """Identity of a run's results: resuming is only allowed when this is unchanged."""
    ident = {"task": cfg.task, "definition": cfg.definition, "options": task_desc, "model": model_info,
             "dataset": dataset_meta,
             "seed": cfg.seed, "precision": cfg.precision}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def run(cfg: RunConfig) -> dict[str, float]:
    """Run one task on one dataset with one model; returns the metrics (on every rank)."""
    load_plugins()
    started, t0 = now(), time.perf_counter()
    world = Distributed()
    device = resolve_device(cfg.device)
    task_cls = TASKS.get(cfg.task)
    task = task_cls(build_options(task_cls.Options, cfg.options, cfg.task))
    cache = EmbeddingCache(cfg.cache_dir) if cfg.cache_dir else None
    model = build_model(cfg, device, cache)
    require(model, task_cls.requires, cfg.task)
    dataset = open_dataset(cfg.dataset, cfg.data_root, cfg.split, cfg.limit, cfg.seed)
    out_dir = Path(cfg.out)
    task_dir = out_dir / cfg.result_name / cfg.dataset
    model_record = {"name": model.info.name, "label": model.info.label, "untrained": model.info.untrained,
                    "model_args": dict(cfg.model_args), **model.info.details}
    store = ProgressStore(task_dir, run_fingerprint(cfg, task.describe(), model_record, dataset.metadata),
                          world.rank)
    action = store.prepare(cfg.fresh) if world.rank == 0 else None
    action = world.broadcast(action)
    ctx = RunContext(model=model, dataset=dataset, out_dir=task_dir, device=device, config=cfg)
    task.setup(ctx)

    ids = dataset.image_ids()
    if len(set(ids)) != len(ids):
        raise DataError(f"dataset '{cfg.dataset}': image ids are not unique")
    done = set(store.load())
    todo = [i for i, image_id in enumerate(ids) if image_id not in done]
    mine = todo[world.rank::world.world]
    if world.rank == 0:
        log.info("%s/%s: %s; %d images, %d already done", cfg.task, cfg.dataset, action, len(ids), len(done))
    appender = store.open_for_append()
    try:
        samples = prefetch(dataset, mine, model, cfg.workers, cfg.encode_batch)
        bar = tqdm(samples, total=len(mine), desc=f"{cfg.task}/{cfg.dataset} [{model.info.label}]", unit="img",
                   disable=world.rank != 0 or None, dynamic_ncols=True)
        for sample in bar:
            with ctx.timed("evaluate"):
                result = task.evaluate_image(ctx, sample)
            appender.append(result)
    finally:
        appender.close()
    world.barrier()

    metrics: dict[str, float] = {}
    if world.rank == 0:
        by_id = store.load()
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RuntimeError(f"{task_dir}: {len(missing)} images have no result (e.g. {missing[:3]})")
        results = [by_id[i] for i in ids]
        with ctx.timed("metrics"):
            metrics = task.compute_metrics(ctx, results)
            write_items(task_dir / "items.csv", results)
            task.finalize(ctx, results, metrics)
        write_json(task_dir / "metrics.json", metrics)
        record = {
            "config": cfg.to_dict(), "task_options": task.describe(), "model": model_record,
            "device": str(device), "world_size": world.world, "dataset": dataset.metadata,
            "images": len(ids), "images_resumed": len(done), "action": action,
            "started": started, "finished": now(),
            "wall_seconds": {"total": time.perf_counter() - t0, **dict(ctx.timed.seconds)},
            "embedding_cache": None if cache is None else {"dir": str(cache.root), "hits": cache.hits,
                                                           "misses": cache.misses},
        }
        from .reporting.writer import write_report

        with locked(out_dir):
            record_task_run(out_dir, f"{cfg.result_name}/{cfg.dataset}", record)
            write_report([out_dir], out_dir / "report.md")
    return world.broadcast(metrics)


def write_items(path: Path, results: list[ImageResult]) -> None:
    rows = [{"image_id": r.image_id, **row} for r in results for row in r.rows]
    frame = pd.DataFrame(rows)
    atomic_write(path, lambda f: frame.to_csv(f, index=False))
