"""Simulated clicks: center point and RITM's error rule on hand-built masks with known answers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from scipy.ndimage import distance_transform_edt

from sam_bench.prompts.clicks import Click, center_click, farthest_pixel, next_click, random_click


def padded_distance(mask: np.ndarray) -> np.ndarray:
    """Reference: exact distance to the nearest pixel outside the mask, beyond the border included."""
    return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def box(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_center_click_is_the_unique_distance_maximum():
    # 5x5 square: only its middle pixel is 3 px from the outside, its neighbours are 2 px.
    gt = box((9, 9), 2, 7, 2, 7)
    assert center_click(gt) == Click(4, 4, True)


def test_image_border_counts_as_boundary():
    # A band over the top 5 rows and the full width: without the 1 px padding the top row would be
    # farthest from any background pixel; with it, distance = min(y+1, 5-y, x+1, 9-x) peaks at 3,
    # first reached in row-major order at (x=2, y=2).
    gt = box((9, 9), 0, 5, 0, 9)
    assert center_click(gt) == Click(2, 2, True)
    dist = padded_distance(gt)
    assert dist[2, 2] == 3 and dist.max() == 3 and dist[0, 4] == 1


def test_ritm_rule_positive_when_false_negatives_are_deeper():
    gt = box((20, 20), 2, 12, 2, 12)
    pred = box((20, 20), 2, 12, 8, 16)
    # FN = rows 2..11, cols 2..7 (6 wide: depth 3, first at y=4, x=4); FP = cols 12..15 (depth 2).
    assert next_click(gt, pred) == Click(4, 4, True)
    # A clicked pixel is never clicked again: the next deepest FN pixel in row-major order.
    assert next_click(gt, pred, clicked=[(4, 4)]) == Click(5, 4, True)


def test_ritm_rule_negative_when_false_positives_are_deeper_or_tied():
    gt = box((20, 20), 2, 12, 2, 6)  # FN after the prediction below: cols 2..5 minus pred = none
    pred = box((20, 20), 2, 12, 2, 14)  # FP = rows 2..11, cols 6..13 (8 wide: depth 4)
    assert next_click(gt, pred) == Click(9, 5, False)  # first pixel of depth 4: y=5, x=9
    # Equal depths: RITM clicks negative (positive only if max DT(FN) > max DT(FP)).
    gt = box((20, 20), 0, 20, 0, 6)
    pred = box((20, 20), 0, 20, 6, 12)
    fn_depth = farthest_pixel(gt & ~pred)[0]
    fp_depth = farthest_pixel(pred & ~gt)[0]
    assert fn_depth == fp_depth == 9  # squared distances
    assert next_click(gt, pred).positive is False


def test_void_pixels_are_never_clicked_and_no_error_means_no_click():
    gt = box((9, 9), 2, 7, 2, 7)
    ignore = np.zeros_like(gt)
    ignore[3:6, 3:6] = True  # the square's core is void: the click moves to the ring around it
    click = center_click(gt, ignore)
    assert not ignore[click.y, click.x] and gt[click.y, click.x]
    assert click == Click(2, 2, True)  # every ring pixel is 1 px from background or void
    assert next_click(gt, gt) is None
    # The only error pixels are void or already clicked: nothing left to click.
    pred = gt.copy()
    pred[4, 4] = False
    assert next_click(gt, pred, ignore) is None
    assert next_click(gt, pred, None, clicked=[(4, 4)]) is None


def test_cropped_transform_matches_the_full_image_reference():
    # The bounding-box transform must give the exact full-image answer, ties included.
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = rng.integers(5, 60, size=2)
        noise = cv2.GaussianBlur(rng.normal(size=(h, w)), (0, 0), float(rng.uniform(0.5, 4)))
        mask = noise > rng.uniform(-0.2, 0.5) * noise.std()
        if rng.random() < 0.2:  # speckle: distance 1 everywhere, thousands of exact ties
            mask = rng.random((h, w)) < 0.7
        clicked = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(3)]
        full = padded_distance(mask)
        for x, y in clicked:
            full[y, x] = 0
        best, y, x = farthest_pixel(mask, clicked)
        if full.max() == 0:
            assert (best, y, x) == (0, -1, -1)
            continue
        ys, xs = np.where(full == full.max())
        assert (best, y, x) == (round(full.max() ** 2), int(ys[0]), int(xs[0]))


def test_random_click_is_seeded_and_inside_the_non_void_object():
    gt = box((30, 30), 5, 25, 5, 25)
    ignore = box((30, 30), 0, 15, 0, 30)
    clicks = [random_click(gt, ignore, np.random.default_rng(7)) for _ in range(2)]
    assert clicks[0] == clicks[1]
    many = [random_click(gt, ignore, np.random.default_rng(s)) for s in range(50)]
    assert all(gt[c.y, c.x] and not ignore[c.y, c.x] and c.positive for c in many)
    assert len({(c.x, c.y) for c in many}) > 30
    assert random_click(gt, gt, np.random.default_rng(0)) is None


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1)])
def test_degenerate_shapes(shape):
    gt = np.ones(shape, bool)
    click = center_click(gt)
    assert click is not None and gt[click.y, click.x]


def test_large_distances_use_the_exact_transform():
    # Beyond ~700 px cv2's float32 distances no longer round to exact squared distances.
    mask = np.zeros((1500, 1520), bool)
    mask[5:1495, 12:1508] = True
    # Rows 5..1494: 745 px from outside first at y=749; columns 12..1507: >= 745 px from x=756 on.
    assert farthest_pixel(mask) == (745 ** 2, 749, 756)
