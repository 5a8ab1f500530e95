"""`toy_disk`: the mask of a click prompt is a disk around the mean of its positive clicks.

Weight-free, so it shows only the plugin mechanics: a PromptableSegmenter registered in MODELS by
a module that sam-bench imports through the `sam_bench.models` entry point group.
"""
from __future__ import annotations

import numpy as np
import torch

from sam_bench.core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from sam_bench.errors import ConfigError
from sam_bench.models.base import PromptableSegmenter
from sam_bench.models.args import convert_model_args
from sam_bench.registry import MODELS


class DiskSegmenter(PromptableSegmenter):
    masks_per_multimask_output = 1  # one disk per prompt: the point task reports no oracle
    cache_fingerprint = None  # nothing worth caching

    def __init__(self, radius: float) -> None:
        self.radius = radius
        self.info = ModelInfo("toy_disk", untrained=False, details={"family": "toy disk", "radius": radius})

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        size = (int(image.shape[0]), int(image.shape[1]))
        return ImageEmbedding(features={}, original_size=size, input_size=size)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        if prompts.points is None:
            raise ConfigError("model 'toy_disk' takes click prompts only")
        h, w = embedding.original_size
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        logits = torch.full((len(prompts), 1, h, w), -1.0)
        for i, (points, labels) in enumerate(zip(prompts.points, prompts.labels)):
            positive = points[labels == 1]
            if len(positive):
                cx, cy = positive.mean(axis=0)
                logits[i, 0][(xs - cx) ** 2 + (ys - cy) ** 2 <= self.radius ** 2] = 1.0
        return Decoded(logits, torch.ones(len(prompts), 1))

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return low_res_logits  # already at image size


@MODELS.register("toy_disk", help="example plugin: disk around the positive clicks (--model-args radius=R)")
def build(checkpoint: str | None = None, device: torch.device = torch.device("cpu"), precision: str = "fp32",
          batch_size: int | None = None, **model_args: str) -> DiskSegmenter:
    if checkpoint:
        raise ConfigError(f"model 'toy_disk' has no weights; got --checkpoint {checkpoint}")
    radius = convert_model_args("toy_disk", model_args, {"radius": (float, 20.0)})["radius"]
    return DiskSegmenter(radius)
