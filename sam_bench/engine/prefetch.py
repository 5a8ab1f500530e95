"""Pipelined input: background workers read, decode and resize the next images while the model runs.

`prefetch` yields the dataset's samples in order. With workers > 0 a torch DataLoader's worker
processes call `dataset.get`, decode the image and run the model's CPU preprocessing
(`model.prepare_image`, e.g. SAM's longest-side resize, for models that have one); each sample comes back
with its decoded image attached and the prepared input handed to the model (`model.preload`), so
the task's `ctx.embed(image)` encodes without decoding or resizing again. With encode_batch > 1
the images of the next `encode_batch` samples are encoded in one encoder call
(`model.encode_many`) before their samples are handed out; the embeddings equal one-at-a-time
encoding (tests). With the embedding cache, a hit simply leaves the handed-over input unused. Which
samples are processed, and in what order, does not change: numbers are those of a plain loop.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..core.workers import die_with_parent
from ..errors import ConfigError, SamBenchError
from ..data.images import check_size
from ..data.types import Dataset, ImageSample
from ..models.base import Model


class Loaded:
    """A sample's `load_image` once the image is decoded: returns the same array every call."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image

    def __call__(self) -> np.ndarray:
        return self.image


class _Loading(TorchDataset):
    """What a worker does per index: the sample, its decoded image, the model's prepared input."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], model: Model) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.prepare_image = getattr(model, "prepare_image", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[ImageSample, Any]:
        try:
            sample = self.dataset.get(self.indices[i])
            image = sample.load_image()
            check_size(image, sample.height, sample.width, sample.path)  # the line `data check` prints
        except SamBenchError as exc:  # handed back, raised in the run: DataLoader would wrap it in a trace
            return exc, None  # type: ignore[return-value]
        prepared = None if self.prepare_image is None else self.prepare_image(image)
        return dataclasses.replace(sample, load_image=Loaded(image)), prepared


def prefetch(dataset: Dataset, indices: Sequence[int], model: Model, workers: int = 1,
             encode_batch: int = 1) -> Iterator[ImageSample]:
    """dataset.get(i) for i in indices, loaded ahead by `workers` processes (0: in this process)."""
    if workers < 0 or encode_batch < 1:
        raise ConfigError(f"--workers {workers} / --encode-batch {encode_batch}: need workers >= 0, encode batch >= 1")
    loading = _Loading(dataset, indices, model)
    if workers > 0:
        # A run killed with SIGKILL cannot stop its loader workers: they must go with it (each holds
        # a copy of the run's memory; left alone they were seen sleeping on for hours).
        items = iter(DataLoader(loading, batch_size=None, shuffle=False, num_workers=workers,
                                prefetch_factor=2, persistent_workers=False,
                                worker_init_fn=functools.partial(_die_with_run, os.getpid())))
    else:
        items = (loading[i] for i in range(len(loading)))
    segmenter = model if getattr(model, "prepare_image", None) is not None else None
    group: list[tuple[ImageSample, Any]] = []
    for item in items:
        if isinstance(item[0], SamBenchError):
            raise item[0]
        group.append(item)
        if len(group) >= max(1, encode_batch):
            yield from _hand_out(segmenter, group, encode_batch)
            group = []
    yield from _hand_out(segmenter, group, encode_batch)


def _hand_out(segmenter: Any, group: list[tuple[ImageSample, Any]],
              encode_batch: int) -> Iterator[ImageSample]:
    if segmenter is None or not group or group[0][1] is None:
        yield from (sample for sample, _ in group)
        return
    images = [sample.load_image() for sample, _ in group]
    prepared = [p for _, p in group]
    if encode_batch > 1:
        with torch.no_grad():
            ready: list[Any] = segmenter.encode_many(images, prepared)
    else:
        ready = prepared
    try:
        for (sample, _), image, item in zip(group, images, ready):
            segmenter.preload(image, item)
            yield sample
    finally:
        segmenter.clear_preloaded()  # a cache hit never asks for them: do not hold them on


def _die_with_run(run_pid: int, worker_id: int) -> None:
    """DataLoader worker initializer: the worker ends as soon as the run process is gone."""
    die_with_parent(run_pid)
