"""The task interface: what a protocol implements to plug into the runner, the CLI and the report.

Data flow: the runner hands each ImageSample to `evaluate_image`, which embeds the image through
`ctx.embed` (cached), builds prompts, decodes them with the model and returns an ImageResult
(per-item rows for items.csv plus a JSON payload). When every image is done, `compute_metrics`
turns the results into a flat name -> number dict and `finalize` writes extra artifacts.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch

from ..config import RunConfig
from ..core.cache import EmbeddingCache
from ..core.types import ImageEmbedding
from ..data.types import Dataset, ImageSample
from ..models.base import Model, PromptableSegmenter, require


@dataclass
class ImageResult:
    image_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per evaluated item -> items.csv
    payload: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable, for compute_metrics


@dataclass
class NoOptions:
    pass


class StageTimers:
    """Wall time per stage (encode, decode, metric, ...), summed over the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class RunContext:
    model: Model
    dataset: Dataset
    out_dir: Path  # OUT/<task>/<dataset>
    device: torch.device
    config: RunConfig
    cache: EmbeddingCache | None = None
    timed: StageTimers = field(default_factory=StageTimers)

    def embed(self, image: np.ndarray, task: str = "") -> ImageEmbedding:
        """Encode once per image, through the embedding cache when one is configured."""
        model = require(self.model, PromptableSegmenter, task or "this task")
        fingerprint = model.cache_fingerprint
        if self.cache is None or fingerprint is None:
            with self.timed("encode"):
                return model.encode(image)
        key = self.cache.key(fingerprint, image)
        arrays = self.cache.load(key)
        if arrays is not None:
            return model.embedding_from_cache(arrays)
        with self.timed("encode"):
            embedding = model.round_embedding(model.encode(image))
        self.cache.store(key, model.embedding_to_cache(embedding))
        return embedding

    def rng(self, image_id: str, purpose: str = "") -> np.random.Generator:
        """Per-image generator: results do not depend on image order, sharding or resuming."""
        digest = hashlib.sha256(f"{self.config.seed}|{image_id}|{purpose}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass
class ReportEntry:
    """One finished (task, dataset) result of one run directory, as the report sees it."""

    run_label: str
    run_dir: Path
    dataset: str
    metrics: dict[str, float]
    record: dict[str, Any]  # this task's entry in run.json
    task_dir: Path


class Task(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: Dataset the demo runs this task on, and the demo models that can run it.
    demo_dataset: ClassVar[str] = "demo"
    demo_models: ClassVar[tuple[str, ...]] = ("tiny",)

    @classmethod
    def demo_options(cls, data_root: Path) -> dict[str, Any]:
        """Task options for the demo run on the synthetic data under `data_root`."""
        return {}

    def __init__(self, options: Any) -> None:
        self.options = options

    def describe(self) -> dict[str, Any]:
        """Every protocol choice, recorded in run.json and quoted in the report."""
        return asdict(self.options)

    def setup(self, ctx: RunContext) -> None:
        """Once per run, before the first image (load detections, text encoders, ...)."""

    @abstractmethod
    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult: ...

    @abstractmethod
    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]: ...

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        """Write artifacts beyond metrics.json and items.csv (plots, prediction files)."""

    @classmethod
    @abstractmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        """Markdown for report.md: tables in the paper's layout, one column or row per run."""
