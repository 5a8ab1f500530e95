"""What the runner hands a task: the run context (model, dataset, timers, seeded rngs) and the
per-image result a task returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..core.timing import StageTimers
from ..core.types import ImageEmbedding
from ..data.types import Dataset
from ..models.base import Model


@dataclass
class ImageResult:
    image_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per evaluated item -> items.csv
    payload: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable, for compute_metrics


@dataclass
class RunContext:
    model: Model | None  # wrapped by the embedding cache when one is configured; None: scoring given predictions
    dataset: Dataset
    out_dir: Path  # OUT/<task>/<dataset>
    device: torch.device
    config: RunConfig
    timed: StageTimers = field(default_factory=StageTimers)

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        """Encode once per image (the model's cache wrapper, if any, serves repeats)."""
        with self.timed("encode"):
            return self.model.encode(image)  # type: ignore[attr-defined]

    def rng(self, image_id: str, purpose: str = "") -> np.random.Generator:
        """Per-image generator: results do not depend on image order, sharding or resuming."""
        digest = hashlib.sha256(f"{self.config.seed}|{image_id}|{purpose}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))
