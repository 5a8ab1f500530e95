"""Boundary IoU (sam_bench.metrics.boundary, opencv) against a plain scipy implementation of
Cheng et al.'s definition, on hand-built masks: border-touching, thin, holed, empty, tiny images."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_cdt

from sam_bench.metrics.boundary import boundary_iou, boundary_width, mask_boundary


def reference_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """Mask pixels within d (chessboard) of a background pixel, outside the image counting as background."""
    h, w = mask.shape
    d = max(1, int(round(ratio * np.sqrt(h * h + w * w))))
    dist = distance_transform_cdt(np.pad(mask.astype(bool), 1), metric="chessboard")[1:-1, 1:-1]
    return mask.astype(bool) & (dist <= d)


def reference_boundary_iou(gt: np.ndarray, pred: np.ndarray, ratio: float = 0.02) -> float:
    g, p = reference_boundary(gt, ratio), reference_boundary(pred, ratio)
    union = np.count_nonzero(g | p)
    return np.count_nonzero(g & p) / union if union else 1.0


def _masks(h: int, w: int) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (min(h, w) / 3) ** 2
    full = np.ones((h, w), bool)
    corner = (yy < h // 2) & (xx < w // 3)  # touches the top and left borders
    right = xx >= w - 7  # a band along the right border
    line = np.zeros((h, w), bool)
    line[h // 2, 3:w - 3] = True  # one pixel thick
    diagonal = np.eye(h, w, dtype=bool)  # thin and touching two corners
    ring = disc & ~((yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (min(h, w) / 5) ** 2)
    dot = np.zeros((h, w), bool)
    dot[1, 1] = True
    return {"disc": disc, "full": full, "corner": corner, "right": right, "line": line,
            "diagonal": diagonal, "ring": ring, "dot": dot, "empty": np.zeros((h, w), bool)}


@pytest.mark.parametrize("shape", [(40, 60), (150, 90), (7, 5)])
def test_boundary_regions_equal_the_reference(shape):
    for name, mask in _masks(*shape).items():
        d = boundary_width(*shape)
        assert np.array_equal(mask_boundary(mask, d), reference_boundary(mask)), name


@pytest.mark.parametrize("shape", [(40, 60), (150, 90)])
def test_boundary_iou_equals_the_reference_on_every_pair(shape):
    masks = _masks(*shape)
    for gname, gt in masks.items():
        if not gt.any():
            continue
        for pname, pred in masks.items():
            assert boundary_iou(gt, pred) == pytest.approx(reference_boundary_iou(gt, pred), abs=1e-12), (gname, pname)


def test_dilation_width_and_hand_values():
    assert boundary_width(100, 100) == 3  # round(0.02 * 141.4) = 3
    assert boundary_width(10, 10) == 1  # round(0.28) = 0 -> at least 1
    h, w = 100, 100  # d = 3
    a = np.zeros((h, w), bool)
    a[10:30, 10:30] = True  # boundary: 20x20 minus the 14x14 core = 204 pixels
    b = np.zeros((h, w), bool)
    b[10:30, 13:33] = True  # shifted 3 px right
    assert np.count_nonzero(mask_boundary(a, 3)) == 400 - 196
    full = np.ones((h, w), bool)  # the image border is boundary: 100x100 minus a 94x94 core
    assert np.count_nonzero(mask_boundary(full, 3)) == 10000 - 94 * 94
    inter = np.count_nonzero(mask_boundary(a, 3) & mask_boundary(b, 3))
    assert boundary_iou(a, b) == pytest.approx(inter / (2 * 204 - inter))
    assert boundary_iou(a, a) == 1.0 and boundary_iou(a, np.zeros_like(a)) == 0.0
