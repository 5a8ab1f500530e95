"""Shared checks of issue 11: an adapter equals its family's own predictor called once per prompt.

Each family test supplies `reference(prompts, i, multimask) -> (low_res_logits (M, h, w), ious (M,))`
computed by the family's own predictor / processor + model for prompt i alone.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from sam_bench.core.cache import EmbeddingCache
from sam_bench.core.types import ImageEmbedding, Prompts
from sam_bench.data.registry import open_dataset
from sam_bench.models.cached import CachedSegmenter
from sam_bench.tasks.point.task import interactive_session

TOL = 1e-4
Reference = Callable[[Prompts, int, bool], tuple[np.ndarray, np.ndarray]]


def real_samples(shared_data, n: int = 1):
    """The first n GrabCut images with their object masks."""
    dataset = open_dataset("grabcut", str(shared_data / "grabcut"))
    return [dataset.get(i) for i in range(n)]


def prompt_sets(image: np.ndarray, model, embedding: ImageEmbedding, n: int = 2, seed: int = 0) -> dict[str, Prompts]:
    """Every prompt kind; mask inputs are low-res logits the model itself produced."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    points = rng.uniform(0, [w, h], size=(n, 2, 2))
    labels = rng.integers(0, 2, size=(n, 2))
    boxes = np.sort(rng.uniform(0, [w, h], size=(n, 2, 2)), axis=1).reshape(n, 4)
    masks = model.decode(embedding, Prompts(points[:, :1], np.ones((n, 1), int)), False).low_res_logits
    return {
        "one point": Prompts(points[:, :1], np.ones((n, 1), int)),
        "two points": Prompts(points, labels),
        "box": Prompts(boxes=boxes),
        "box + point": Prompts(points[:, :1], labels[:, :1], boxes=boxes),
        "points + mask": Prompts(points, labels, mask_logits=masks),
        "box + mask": Prompts(boxes=boxes, mask_logits=masks),
    }


def assert_decode_matches(model, embedding: ImageEmbedding, prompts: dict[str, Prompts], reference: Reference,
                          multimask: bool, masks_per_prompt: int) -> None:
    """Batched decode (2 prompts per call) == the family's predictor per prompt, within TOL."""
    default_batch = model.batch_size
    model.batch_size = 2
    try:
        for kind, batch in prompts.items():
            decoded = model.decode(embedding, batch, multimask)
            assert decoded.low_res_logits.shape[:2] == (len(batch), masks_per_prompt), kind
            for i in range(len(batch)):
                low, iou = reference(batch, i, multimask)
                assert np.abs(decoded.low_res_logits[i].numpy() - low).max() <= TOL, kind
                assert np.abs(decoded.iou_predictions[i].numpy() - iou).max() <= TOL, kind
    finally:
        model.batch_size = default_batch


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None) -> float:
    valid = np.ones_like(gt, bool) if ignore is None else ~ignore
    pred, gt = pred & valid, gt & valid
    union = (pred | gt).sum()
    return float((pred & gt).sum() / union) if union else 1.0


def assert_click1_matches(model, sample, embedding: ImageEmbedding,
                          predictor_masks: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
    """The point task's click-1 IoU == IoU of the predictor's mask for that click.

    predictor_masks(click (1, 2)) -> (full-size bool masks (M, H, W), predicted IoUs (M,)) from the
    family's predictor with multimask output; the task keeps the highest predicted IoU.
    """
    gts = [o.mask for o in sample.objects]
    traces = interactive_session(model, embedding, gts, sample.ignore, max_clicks=1)
    for trace, gt in zip(traces, gts):
        click = np.array([[trace.clicks[0].x, trace.clicks[0].y]], dtype=np.float64)
        masks, scores = predictor_masks(click)
        expected = mask_iou(masks[int(np.argmax(scores))], gt, sample.ignore)
        assert abs(trace.ious[0] - expected) <= 1e-9


def assert_cache_roundtrip(model, image: np.ndarray, tmp_path) -> None:
    """A cache hit gives exactly the masks of a (rounded) miss for this family's features, and the
    cached model keeps the family's capabilities."""
    miss_model = CachedSegmenter(model, EmbeddingCache(tmp_path))
    hit_model = CachedSegmenter(model, EmbeddingCache(tmp_path))  # a later run sharing the directory
    miss = miss_model.encode(image)
    hit = hit_model.encode(image)
    assert (miss_model.cache.misses, hit_model.cache.hits) == (1, 1)
    assert miss.features.keys() == hit.features.keys()
    assert hit_model.masks_per_multimask_output == model.masks_per_multimask_output
    prompts = Prompts(np.array([[[40.0, 30.0]], [[100.0, 90.0]]]), np.ones((2, 1), int))
    a, b = hit_model.decode(miss, prompts, True), hit_model.decode(hit, prompts, True)
    assert torch.equal(a.low_res_logits, b.low_res_logits)
    assert torch.equal(a.iou_predictions, b.iou_predictions)
