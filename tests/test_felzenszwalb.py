"""The weight-free `felzenszwalb` model: exact answers on a flat-coloured image, sense on real data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.core.types import Prompts
from sam_bench.models.base import EdgeDetector, PromptableSegmenter
from sam_bench.models.felzenszwalb import LOGIT, FelzenszwalbSegmenter
from sam_bench.registry import MODELS

H, W = 100, 160
OUTER = (slice(20, 80), slice(20, 140))  # 60 x 120 = 7200 px, holding INNER
INNER = (slice(35, 65), slice(60, 100))  # 30 x 40 = 1200 px


def region(sl) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[sl] = True
    return m


@pytest.fixture(scope="module")
def flat():
    """Flat colours, no smoothing: every scale finds the exact regions, except that the coarse
    scale's min_size (2000 px) merges the 1200 px inner rectangle into the one it sits in."""
    image = np.full((H, W, 3), 200, np.uint8)
    image[OUTER] = (30, 90, 160)
    image[INNER] = (220, 40, 40)
    model = FelzenszwalbSegmenter(scales=(("fine", 100.0, 50), ("medium", 300.0, 200), ("coarse", 500.0, 2000)),
                                  sigma=0.0)
    return model, image, model.encode(image)


def decode(model, emb, points, labels, multimask, boxes=None):
    prompts = Prompts(np.array([points], float) if points else None,
                      np.array([labels]) if points else None, boxes=None if boxes is None else np.array([boxes]))
    out = model.decode(emb, prompts, multimask)
    masks = model.upsample(emb, out.low_res_logits) > model.mask_threshold
    return masks[0].numpy(), out.iou_predictions[0].numpy(), out.low_res_logits


def test_registered_weight_free_with_both_capabilities():
    model = MODELS.get("felzenszwalb")()
    assert isinstance(model, PromptableSegmenter) and isinstance(model, EdgeDetector)
    assert model.info.untrained is False and "weight-free" in model.info.details["weights"]
    assert model.cache_fingerprint is None


def test_one_click_gives_the_segment_at_each_scale_with_stability_confidence(flat):
    model, _, emb = flat
    ring = region(OUTER) & ~region(INNER)
    masks, conf, logits = decode(model, emb, [(70, 50)], [1], True)  # (x, y) inside INNER
    assert logits.shape == (1, 3, H, W) and set(torch.unique(logits).tolist()) == {-LOGIT, LOGIT}
    assert (masks[0] == region(INNER)).all() and (masks[1] == region(INNER)).all()
    assert (masks[2] == region(OUTER)).all()
    # Confidence = mean IoU with the other scales' segments: fine/medium agree (1) and overlap the
    # coarse segment 1200/7200; the coarse segment overlaps both at 1200/7200.
    np.testing.assert_allclose(conf, [(1 + 1 / 6) / 2, (1 + 1 / 6) / 2, 1 / 6], rtol=1e-6)
    masks, conf, _ = decode(model, emb, [(30, 25)], [1], True)  # in the ring
    assert (masks[0] == ring).all() and (masks[2] == region(OUTER)).all()
    np.testing.assert_allclose(conf, [(1 + 6000 / 7200) / 2] * 2 + [6000 / 7200], rtol=1e-6)


def test_several_clicks_single_output(flat):
    model, _, emb = flat
    ring = region(OUTER) & ~region(INNER)
    # Positive in INNER, negative in the ring: the coarse segment holds the negative, so the
    # positive takes its most stable clean segment (INNER); the ring is removed.
    masks, _, _ = decode(model, emb, [(70, 50), (30, 25)], [1, 0], False)
    assert masks.shape == (1, H, W) and (masks[0] == region(INNER)).all()
    # Two positives, one in each region: their segments' union is the whole outer rectangle.
    masks, _, _ = decode(model, emb, [(70, 50), (30, 25)], [1, 1], False)
    assert (masks[0] == region(OUTER)).all()
    # A negative alone selects nothing.
    masks, _, _ = decode(model, emb, [(5, 5)], [0], False)
    assert not masks.any()
    assert ring.sum() == 6000


def test_box_takes_the_segments_mostly_inside(flat):
    model, _, emb = flat
    masks, _, _ = decode(model, emb, None, None, True, boxes=[15, 15, 145, 85])
    assert all((m == region(OUTER)).all() for m in masks)
    # A box on INNER: the coarse segment is mostly outside it, so that scale keeps its part inside.
    masks, _, _ = decode(model, emb, None, None, True, boxes=[60, 35, 100, 65])
    assert all((m == region(INNER)).all() for m in masks)
    single, _, _ = decode(model, emb, None, None, False, boxes=[60, 35, 100, 65])
    assert single.shape == (1, H, W) and (single[0] == region(INNER)).all()


def test_edges_average_the_scales_boundaries(flat):
    model, image, _ = flat
    edges = model.detect_edges(image)
    assert edges.shape == (H, W) and edges.dtype == np.float32
    assert edges[20, 70] == 1.0 and edges[79, 70] == 1.0  # outer boundary: all three scales
    assert edges[35, 70] == pytest.approx(2 / 3)  # inner boundary: fine and medium only
    assert edges[50, 30] == 0.0 and edges[5, 5] == 0.0 and edges[50, 80] == 0.0
    assert 0.0 <= edges.min() and edges.max() <= 1.0


def test_real_images_give_non_trivial_masks(grabcut_root):
    """On real GrabCut images five clicks beat the trivial answers (whole image, first click's mask)."""
    from sam_bench.data.registry import open_dataset
    from sam_bench.tasks.point.task import interactive_session

    dataset = open_dataset("grabcut", str(grabcut_root), limit=3)
    model = FelzenszwalbSegmenter()
    after_5, after_1, whole = [], [], []
    for i in range(len(dataset)):
        sample = dataset.get(i)
        gt = sample.objects[0].mask
        embedding = model.encode(sample.load_image())
        trace = interactive_session(model, embedding, [gt], sample.ignore, max_clicks=5)[0]
        after_1.append(trace.ious[0])
        after_5.append(trace.ious[-1])
        valid = ~sample.ignore if sample.ignore is not None else np.ones_like(gt)
        whole.append(np.count_nonzero(gt & valid) / np.count_nonzero(valid))  # IoU of the whole image
        assert [len(a) > 1 for a in embedding.features.areas] == [True] * 3
    assert np.mean(after_5) > np.mean(whole) + 0.2
    assert np.mean(after_5) > np.mean(after_1) + 0.2
