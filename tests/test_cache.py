"""Embedding cache: a hit decodes exactly like a miss; entries are written atomically."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from sam_bench.config import RunConfig
from sam_bench.core.cache import EmbeddingCache
from sam_bench.core.types import Prompts
from sam_bench.engine.context import RunContext
from sam_bench.models.cached import CachedSegmenter


def _context(model, cache):
    return RunContext(model=CachedSegmenter(model, cache), dataset=SimpleNamespace(), out_dir=None,
                      device=torch.device("cpu"), config=RunConfig(task="t", model="tiny", dataset="d"))


def test_cache_hit_gives_the_same_masks_as_a_miss(tmp_path, tiny_model):
    image = np.random.default_rng(0).integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    prompts = Prompts(np.array([[[40.0, 30.0]], [[100.0, 90.0]]]), np.ones((2, 1), int))

    miss_ctx = _context(tiny_model, EmbeddingCache(tmp_path))
    miss = miss_ctx.embed(image)
    assert (miss_ctx.model.cache.hits, miss_ctx.model.cache.misses) == (0, 1)
    hit_ctx = _context(tiny_model, EmbeddingCache(tmp_path))  # a later run sharing the directory
    hit = hit_ctx.embed(image)
    assert (hit_ctx.model.cache.hits, hit_ctx.model.cache.misses) == (1, 0)

    assert miss.features.keys() == hit.features.keys() == {"image_embed"}
    assert torch.equal(miss.features["image_embed"], hit.features["image_embed"])
    assert (miss.original_size, miss.input_size) == (hit.original_size, hit.input_size)
    a = tiny_model.decode(miss, prompts, True)
    b = tiny_model.decode(hit, prompts, True)
    assert torch.equal(a.low_res_logits, b.low_res_logits)
    assert torch.equal(a.iou_predictions, b.iou_predictions)
    # fp16 storage is close to the uncached fp32 embedding, and that is the only difference.
    exact = tiny_model.encode(image).features["image_embed"]
    assert torch.allclose(exact, hit.features["image_embed"], atol=1e-2, rtol=1e-3)


def test_cache_key_depends_on_model_and_image(tmp_path, tiny_model):
    cache = EmbeddingCache(tmp_path)
    image = np.zeros((8, 8, 3), np.uint8)
    other = image.copy()
    other[0, 0, 0] = 1
    key = cache.key(tiny_model.cache_fingerprint, image)
    assert key == cache.key(tiny_model.cache_fingerprint, image.copy())
    assert key != cache.key(tiny_model.cache_fingerprint, other)
    assert key != cache.key(tiny_model.cache_fingerprint + "x", image)


def test_corrupt_entry_is_recomputed_and_no_temp_files_left(tmp_path, tiny_model):
    image = np.random.default_rng(1).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    ctx = _context(tiny_model, EmbeddingCache(tmp_path))
    first = ctx.embed(image)
    entry = next(tmp_path.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])  # e.g. a disk-full copy from elsewhere
    ctx2 = _context(tiny_model, EmbeddingCache(tmp_path))
    again = ctx2.embed(image)
    assert ctx2.model.cache.misses == 1 and torch.equal(first.features["image_embed"], again.features["image_embed"])
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


def test_wrappers_keep_the_inner_models_capabilities(tmp_path, tiny_model):
    """The class default (3 masks under multimask) must not shadow a model that returns one (HQ-SAM)."""
    from sam_bench.models.checked import FiniteOutputs

    tiny_model.masks_per_multimask_output = 1
    try:
        for wrapped in (FiniteOutputs(tiny_model), CachedSegmenter(FiniteOutputs(tiny_model), EmbeddingCache(tmp_path))):
            assert wrapped.masks_per_multimask_output == 1
            assert wrapped.cache_fingerprint == tiny_model.cache_fingerprint
    finally:
        del tiny_model.masks_per_multimask_output
