"""Model capabilities. A task names the capabilities it needs in `Task.requires`;
the runner checks them once per run with `require`.

A registered model is any object with an `info`; SAM-like models are PromptableSegmenters,
weight-free edge baselines are EdgeDetectors. A task that gets a model without the capability it
needs fails with a message naming both, not an AttributeError.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..errors import ConfigError


class Model(ABC):
    info: ModelInfo

    def enable_compile(self) -> None:
        """torch.compile the model's networks (--compile); models without one refuse."""
        raise ConfigError(f"model '{self.info.name}' has no compiled path (--compile)")


class PromptableSegmenter(Model):
    """Encode an image once, then decode any number of prompt batches against it."""

    mask_threshold: float = 0.0
    #: Masks a multimask decode returns per prompt. HQ-SAM's predictor returns 1 (its best SAM token
    #: plus the HQ token), so there is no best-of-3 oracle to report for it.
    masks_per_multimask_output: int = 3
    #: Identity of weights + preprocessing + precision for the embedding cache (models/cached.py);
    #: None disables caching. Cacheable segmenters keep their features as a dict of tensors.
    cache_fingerprint: str | None = None

    @abstractmethod
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        """image: (H, W, 3) uint8 RGB."""

    @abstractmethod
    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        """Decode a homogeneous prompt batch (chunked internally by the model's batch size)."""

    @abstractmethod
    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, h, w) low-res logits -> (B, M, H, W) logits at the original image size."""


class SegmenterWrapper(PromptableSegmenter):
    """A segmenter around another (cache, output checks): every stage and attribute is the inner
    one's unless a subclass overrides it."""

    def __init__(self, inner: PromptableSegmenter) -> None:
        self.inner = inner
        self.info = inner.info
        # PromptableSegmenter's class-level defaults would shadow __getattr__: take the inner values.
        self.mask_threshold = inner.mask_threshold
        self.masks_per_multimask_output = inner.masks_per_multimask_output
        self.cache_fingerprint = inner.cache_fingerprint

    def __getattr__(self, name: str) -> Any:  # capabilities and settings of the wrapped model
        return getattr(self.inner, name)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        return self.inner.encode(image)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        return self.inner.decode(embedding, prompts, multimask)

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.inner.upsample(embedding, low_res_logits)


class EdgeDetector(Model):
    """Weight-free or learned edge detector: image -> edge strength map in [0, 1]."""

    @abstractmethod
    def detect_edges(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 in [0, 1]."""


def require(model: object, capabilities: tuple[type, ...], task: str) -> None:
    """Once per run (the runner, from `Task.requires`): the model must have one of the capabilities."""
    if not isinstance(model, capabilities):
        name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        kinds = " or ".join(c.__name__ for c in capabilities)
        raise ConfigError(f"model '{name}' cannot run task '{task}': it is not a {kinds}")


def weight_free(name: str, checkpoint: str | None, model_args: dict[str, object]) -> None:
    """Factories of models without weights or settings reject a checkpoint or --model-args
    instead of silently ignoring them."""
    if checkpoint:
        raise ConfigError(f"model '{name}' takes no --checkpoint (it has no weights); got {checkpoint}")
    if model_args:
        raise ConfigError(f"model '{name}' takes no --model-args; got {sorted(model_args)}")
