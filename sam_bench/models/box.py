"""The `box` baseline: the mask of a box prompt is the filled box (a lower bound for §7.4).

The box is rasterised exactly as pycocotools rasterises a box given as a polygon (what `loadRes`
does for box-only results), at the image's own resolution, so no resizing blurs the edges.
"""
from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..errors import ConfigError
from ..registry import MODELS
from .base import PromptableSegmenter, weight_free


class BoxSegmenter(PromptableSegmenter):
    """Box prompts only; one output per prompt (a box has no ambiguity); mask prompts are ignored."""

    mask_threshold = 0.0
    cache_fingerprint = None  # nothing to cache: encoding is free

    def __init__(self) -> None:
        self.info = ModelInfo("box", untrained=False, details={"kind": "baseline: mask = filled prompt box"})

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        size = (int(image.shape[0]), int(image.shape[1]))
        return ImageEmbedding(features=None, original_size=size, input_size=size)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        if prompts.points is not None or prompts.boxes is None:
            raise ConfigError("model 'box' takes box prompts only (its mask is the filled box); "
                              "this task gave point prompts")
        h, w = embedding.original_size
        logits = torch.full((len(prompts), 1, h, w), -1.0)
        if len(prompts):
            polygons = [[x0, y0, x0, y1, x1, y1, x1, y0] for x0, y0, x1, y1 in prompts.boxes.tolist()]
            filled = mask_utils.decode(mask_utils.frPyObjects(polygons, h, w))  # (H, W, B)
            logits[:, 0][torch.from_numpy(np.ascontiguousarray(filled.transpose(2, 0, 1))) > 0] = 1.0
        return Decoded(logits, torch.ones(len(prompts), 1))

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        if tuple(low_res_logits.shape[-2:]) != tuple(embedding.original_size):
            raise ValueError(f"box model logits are at image size {embedding.original_size}, "
                             f"got {tuple(low_res_logits.shape[-2:])}")
        return low_res_logits


@MODELS.register("box", help="baseline: mask = filled box prompt (box prompts only; lower bound for instances)")
def build_box_model(checkpoint: str | None = None, device: object = None, precision: str = "fp32",
        batch_size: int | None = None, **model_args: str) -> BoxSegmenter:
    weight_free("box", checkpoint, model_args)
    return BoxSegmenter()
