"""Low-res logits -> full-size logits in memory-bounded chunks: the one loop every task uses.

Upsampling is per mask, so the chunk size bounds memory without changing any value.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..core.types import ImageEmbedding
from .base import PromptableSegmenter

UPSAMPLE_ELEMENTS = 1 << 25  # full-resolution logits upsampled at once (128 MiB of float32)


def upsampled_chunks(model: PromptableSegmenter, embedding: ImageEmbedding, low_res: torch.Tensor,
                     max_elements: int = UPSAMPLE_ELEMENTS) -> Iterator[tuple[slice, torch.Tensor]]:
    """(B, M, h, w) low-res logits -> (slice of B, (b, M, H, W) logits at image size) per chunk."""
    n, m = low_res.shape[:2]
    h, w = embedding.original_size
    step = max(1, max_elements // max(1, m * h * w))
    with torch.no_grad():
        for start in range(0, n, step):
            rows = slice(start, start + step)
            yield rows, model.upsample(embedding, low_res[rows])
