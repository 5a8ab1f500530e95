"""A segmenter wrapper that fails on NaN / infinite outputs instead of scoring them as IoU 0.

Weights that are NaN, or that overflow (e.g. in fp16), make every mask empty and every metric a
silent 0. Checking each embedding and decoder batch costs one reduction per tensor.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.types import Decoded, ImageEmbedding, Prompts
from ..errors import CheckpointError
from .base import SegmenterWrapper


class FiniteOutputs(SegmenterWrapper):
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        embedding = self.inner.encode(image)
        features = embedding.features if isinstance(embedding.features, dict) else {}  # weight-free: no tensors
        for name, tensor in features.items():
            self._check(tensor, f"image embedding '{name}'")
        return embedding

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        decoded = self.inner.decode(embedding, prompts, multimask)
        self._check(decoded.low_res_logits, "mask logits")
        self._check(decoded.iou_predictions, "predicted IoUs")
        return decoded

    def _check(self, tensor: object, what: str) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            details = self.info.details
            source = details.get("checkpoint") or f"weights {details.get('weights_sha256', '?')[:12]}"
            raise CheckpointError(f"{source}: model '{self.info.name}' produced NaN or infinite {what} "
                                  f"(precision {getattr(self.inner, 'precision', '?')}); these weights give no valid masks")
