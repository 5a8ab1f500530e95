"""The embedding cache as a segmenter wrapper: encode() is served from disk when it can be.

Any segmenter whose embedding features are a dict of tensors and that sets `cache_fingerprint`
(weights hash + preprocessing + precision) is cached without model-specific hooks. Entries are
fp16, so a miss is rounded through fp16 too: a hit and a miss then decode exactly alike.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.cache import EmbeddingCache
from ..core.types import ImageEmbedding
from .base import PromptableSegmenter, SegmenterWrapper


class CachedSegmenter(SegmenterWrapper):
    def __init__(self, inner: PromptableSegmenter, cache: EmbeddingCache) -> None:
        if inner.cache_fingerprint is None:
            raise ValueError("a segmenter without cache_fingerprint cannot be cached")
        super().__init__(inner)
        self.cache = cache

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        key = self.cache.key(self.cache_fingerprint, image)
        device = _device_of(self.inner)
        cached = self.cache.load_embedding(key, device, self.cache_fingerprint)
        if cached is not None:
            return cached
        embedding = round_to_fp16(self.inner.encode(image))
        self.cache.store_embedding(key, embedding, self.cache_fingerprint)
        return embedding


def round_to_fp16(embedding: ImageEmbedding) -> ImageEmbedding:
    """The cache's storage precision, applied to a fresh embedding."""
    features = {name: t.half().to(t.dtype) for name, t in embedding.features.items()}
    return ImageEmbedding(features, embedding.original_size, embedding.input_size, dict(embedding.meta))


def _device_of(model: PromptableSegmenter) -> torch.device:
    return getattr(model, "device", torch.device("cpu"))
