"""J, F and their statistics (sam_bench/metrics/vos.py) against an independent implementation of
davis2017-evaluation's definitions, on the real DAVIS sample masks and on hand-made cases.

The reference here takes another route to the same definitions: boundaries by comparing each pixel
with its east / south / south-east neighbours in an edge-replicated padding (a neighbour outside the
image is the pixel's own value, so it never differs: exactly seg2bmap's rule for the last row and
column), dilation by scipy's binary_dilation with a disk built from x^2 + y^2 <= r^2, IoU by sums
of float arrays.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from sam_bench.metrics.vos import (ObjectScore, boundary_f, boundary_map, boundary_tolerance, dataset_metrics,
                                   frame_scores, region_similarity, scored_frames, statistics)


def ref_boundary(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask.astype(np.int8), ((0, 1), (0, 1)), mode="edge")
    here = p[:-1, :-1]
    return (here != p[:-1, 1:]) | (here != p[1:, :-1]) | (here != p[1:, 1:])


def ref_f(gt: np.ndarray, pred: np.ndarray) -> float:
    r = math.ceil(0.008 * math.sqrt(gt.shape[0] ** 2 + gt.shape[1] ** 2))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    ball = yy ** 2 + xx ** 2 <= r ** 2
    gb, pb = ref_boundary(gt), ref_boundary(pred)
    if gb.sum() == 0 and pb.sum() == 0:
        return 1.0
    if gb.sum() == 0 or pb.sum() == 0:
        return 0.0
    precision = (pb & ndimage.binary_dilation(gb, ball)).sum() / pb.sum()
    recall = (gb & ndimage.binary_dilation(pb, ball)).sum() / gb.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_j(gt: np.ndarray, pred: np.ndarray) -> float:
    union = np.maximum(gt.astype(float), pred.astype(float)).sum()
    return 1.0 if union == 0 else np.minimum(gt.astype(float), pred.astype(float)).sum() / union


def _davis_masks(shared_data: Path) -> list[np.ndarray]:
    folder = shared_data / "davis2017_sample" / "Annotations" / "480p" / "judo"
    return [np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def _perturb(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong prediction: objects shifted, eroded or grown, with speckle."""
    out = np.zeros_like(ids)
    for k in (2, 1):  # object 1 drawn last: it wins overlaps
        m = ids == k
        m = np.roll(m, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
        op = rng.integers(3)
        if op == 1:
            m = ndimage.binary_erosion(m, iterations=int(rng.integers(1, 5)))
        elif op == 2:
            m = ndimage.binary_dilation(m, iterations=int(rng.integers(1, 5)))
        out[m] = k
    speckle = rng.random(ids.shape) < 0.002
    out[speckle] = rng.integers(0, 3, size=int(speckle.sum()))
    return out


def test_j_and_f_equal_the_reference_on_real_davis_masks(shared_data):
    masks = _davis_masks(shared_data)
    rng = np.random.default_rng(0)
    checked, js = 0, []
    for gt in masks[::3]:
        pred = _perturb(gt, rng)
        scores = frame_scores(gt, pred, [1, 2])
        for k in (1, 2):
            j, f = scores[k]
            assert j == pytest.approx(ref_j(gt == k, pred == k), abs=1e-12)
            assert f == pytest.approx(ref_f(gt == k, pred == k), abs=1e-12)
            assert np.array_equal(boundary_map(gt == k), ref_boundary(gt == k))
            checked, js = checked + 1, js + [j]
    assert checked == 12
    assert min(js) < 0.9 and len(set(js)) == 12  # the perturbation is not a no-op
    assert boundary_tolerance(480, 854) == 8


def test_sequence_statistics_on_real_masks(shared_data):
    """DAVIS scoring of the 16-frame sample: frames 1..14, per object, then over objects."""
    masks = _davis_masks(shared_data)
    rng = np.random.default_rng(1)
    preds = [_perturb(m, rng) for m in masks]
    frames = scored_frames(range(16), 0, "first_last")
    assert frames == list(range(1, 15))
    objects = []
    for k in (1, 2):
        js = [ref_j(masks[t] == k, preds[t] == k) for t in frames]
        fs = [ref_f(masks[t] == k, preds[t] == k) for t in frames]
        objects.append((js, fs))
        mine = [frame_scores(masks[t], preds[t], [k])[k] for t in frames]
        np.testing.assert_allclose([m[0] for m in mine], js, atol=1e-12)
        np.testing.assert_allclose([m[1] for m in mine], fs, atol=1e-12)
    scores = [ObjectScore("judo", k, frames, js, fs) for k, (js, fs) in zip((1, 2), objects)]
    metrics = dataset_metrics(scores)

    def decay(v):  # 14 frames: round([1, 4.25, 7.5, 10.75, 14]) - 1 = [0, 3, 7, 10, 13] (7.5 rounds to even)
        return np.mean(v[0:4]) - np.mean(v[10:14])

    j_mean = np.mean([np.mean(js) for js, _ in objects])
    f_mean = np.mean([np.mean(fs) for _, fs in objects])
    assert metrics["J_mean"] == pytest.approx(j_mean, abs=1e-12)
    assert metrics["F_mean"] == pytest.approx(f_mean, abs=1e-12)
    assert metrics["J&F"] == pytest.approx((j_mean + f_mean) / 2, abs=1e-12)
    assert metrics["J_recall"] == pytest.approx(np.mean([np.mean(np.array(js) > 0.5) for js, _ in objects]))
    assert metrics["F_decay"] == pytest.approx(np.mean([decay(np.array(fs)) for _, fs in objects]), abs=1e-12)
    assert 0.2 < metrics["J_mean"] < 0.95  # a real, imperfect score


def test_statistics_by_hand():
    # 10 frames: edges [0, 2, 5, 7, 9] -> first bin 0..2 (mean 1), last bin 7..9 (mean 8)
    mean, recall, decay = statistics([k / 10 for k in range(10)])
    assert mean == pytest.approx(0.45)
    assert recall == pytest.approx(0.4)  # 0.6, 0.7, 0.8, 0.9 are above 0.5 (0.5 is not)
    assert decay == pytest.approx(0.1 - 0.8)
    assert statistics([0.7]) == (0.7, 1.0, 0.0)
    assert all(math.isnan(v) for v in statistics([]))
    # 300 frames (beyond davis2017-evaluation's uint8 edges): exact edges 0, 75, 150, 224, 299
    v = np.arange(300, dtype=float)
    assert statistics(v)[2] == pytest.approx(np.mean(v[0:76]) - np.mean(v[224:300]))


def test_hand_made_cases():
    h, w = 20, 30
    empty = np.zeros((h, w), bool)
    one = empty.copy()
    one[10, 10] = True
    near = empty.copy()
    near[10, 11] = True
    # both empty: J = F = 1; one side empty: J = F = 0
    assert region_similarity(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_similarity(one, empty) == 0.0 and boundary_f(one, empty) == 0.0
    assert boundary_f(empty, one) == 0.0
    # a one-pixel object: four boundary pixels (itself and its W, N, NW neighbours)
    assert sorted(zip(*np.nonzero(boundary_map(one)))) == [(9, 9), (9, 10), (10, 9), (10, 10)]
    assert region_similarity(one, one) == 1.0 and boundary_f(one, one) == 1.0
    # one pixel off: no overlap (J 0) but within the 1 px tolerance of a 20x30 frame (F 1)
    assert boundary_tolerance(h, w) == 1
    assert region_similarity(one, near) == 0.0 and boundary_f(one, near) == 1.0
    far = empty.copy()
    far[2, 25] = True
    assert boundary_f(one, far) == 0.0 == ref_f(one, far)
    # objects touching the image border: the last row and column compare inward only
    corner = empty.copy()
    corner[-3:, -4:] = True
    assert np.array_equal(boundary_map(corner), ref_boundary(corner))
    # id maps: an id absent from both is perfect; a prediction of another id is not this object
    gt = np.zeros((h, w), np.int32)
    gt[5:10, 5:10] = 1
    pred = gt.copy()
    pred[5:10, 5:7] = 2
    scores = frame_scores(gt, pred, [1, 2, 3])
    assert scores[1][0] == pytest.approx(15 / 25) and scores[2][0] == 0.0 and scores[3] == (1.0, 1.0)
    with pytest.raises(ValueError, match="differ in size"):
        frame_scores(gt, pred[:, :-1], [1])


def test_frame_rules():
    # DAVIS: every frame annotated, object on frame 0 -> frames 1..n-2
    assert scored_frames(range(6), 0, "first_last") == [1, 2, 3, 4]
    # SA-V: annotated every 4th frame -> first and last annotated frame dropped
    assert scored_frames(range(0, 40, 4), 0, "first_last") == list(range(4, 36, 4))
    # an object first given on frame 8: scored after its prompt frame, before the last frame
    assert scored_frames(range(16), 8, "first_last") == list(range(9, 15))
    assert scored_frames([0, 5], 0, "none") == [0, 5]
    assert scored_frames([0, 1], 0, "first_last") == []
    assert math.isnan(dataset_metrics([ObjectScore("v", 1, [], [], [])])["J&F"])
