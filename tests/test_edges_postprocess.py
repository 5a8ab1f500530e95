"""Edge maps from hand-built masks (known boundaries, known maxima), NMS and the edge baselines."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.special import expit

from sam_bench.core.edge_maps import (boundary_band, edge_nms, mask_edge_map, normalize_edges, sobel_magnitude,
                             to_uint8)
from sam_bench.models.edge_baselines import SobelEdges, SoftCannyEdges


def square_logits(h: int, w: int, y0: int, y1: int, x0: int, x1: int, level: float) -> np.ndarray:
    logits = np.full((h, w), -level, np.float32)
    logits[y0:y1, x0:x1] = level
    return logits


def test_boundary_bands_of_a_square():
    mask = square_logits(20, 20, 5, 15, 5, 15, 1.0) > 0  # 10x10 square
    outer, inner, both = (boundary_band(mask, mode) for mode in ("outer", "inner", "both"))
    ring_out = np.zeros_like(mask)
    ring_out[4:16, 4:16] = True
    ring_out[5:15, 5:15] = False
    ring_in = mask.copy()
    ring_in[6:14, 6:14] = False
    assert np.array_equal(outer, ring_out) and outer.sum() == 44
    assert np.array_equal(inner, ring_in) and inner.sum() == 36
    assert np.array_equal(both, ring_out | ring_in)
    assert boundary_band(mask, "outer", width=2).sum() == 14 * 14 - 100
    # The image border counts as outside: a mask filling the image has no outer band.
    assert not boundary_band(np.ones((8, 8), bool), "outer").any()
    assert boundary_band(np.ones((8, 8), bool), "inner").sum() == 28


def test_square_edge_map_is_the_step_response_on_the_outer_ring():
    level = 10.0
    logits = square_logits(40, 50, 10, 30, 12, 40, level)[None]
    edge = mask_edge_map(logits)
    step = expit(level) - expit(-level)
    ring = boundary_band(logits[0] > 0, "outer")
    assert not edge[~ring].any()  # nothing inside the mask or away from it
    # Beside a straight side the 3x3 Sobel of a step is (1 + 2 + 1) x step; corners see less.
    assert edge.max() == pytest.approx(4 * step, rel=1e-6)
    np.testing.assert_allclose(edge[12:28, 11], 4 * step, rtol=1e-6)  # left side, away from corners
    np.testing.assert_allclose(edge[9, 14:38], 4 * step, rtol=1e-6)  # top side
    assert edge[9, 11] == pytest.approx(np.hypot(step, step), rel=1e-6)  # diagonal corner pixel


def test_pixelwise_max_over_masks():
    strong = square_logits(40, 40, 5, 20, 5, 20, 8.0)
    weak = square_logits(40, 40, 12, 35, 12, 35, 1.5)
    edge = mask_edge_map(np.stack([strong, weak]))
    both = np.maximum(mask_edge_map(strong[None]), mask_edge_map(weak[None]))
    np.testing.assert_array_equal(edge, both)
    assert edge.max() == pytest.approx(4 * (expit(8.0) - expit(-8.0)), rel=1e-6)
    np.testing.assert_allclose(edge[35, 16:32], 4 * (expit(1.5) - expit(-1.5)), rtol=1e-6)  # weak only
    assert not mask_edge_map(np.full((1, 10, 10), -5.0, np.float32)).any()  # empty mask: no edges
    assert mask_edge_map(np.zeros((0, 10, 10), np.float32)).shape == (10, 10)


@pytest.mark.parametrize("mode,width,ksize", [("outer", 1, 3), ("inner", 1, 3), ("both", 2, 5)])
def test_cropped_computation_equals_full_image(mode, width, ksize):
    """Masks touching the border, soft logits: the per-mask window changes nothing (float32 rounding)."""
    rng = np.random.default_rng(0)
    h, w = 48, 64
    yy, xx = np.mgrid[:h, :w]
    logits = []
    for cy, cx, r in [(5, 5, 9), (24, 60, 12), (30, 30, 6), (47, 20, 10)]:
        d = np.hypot(yy - cy, xx - cx)
        logits.append((r - d) * rng.uniform(0.3, 3.0) + rng.normal(0, 0.2, (h, w)))
    logits = np.stack(logits).astype(np.float32)
    expected = np.zeros((h, w), np.float32)
    for m in logits:  # the definition, on the whole image
        band = boundary_band(m > 0, mode, width)
        expected = np.maximum(expected, np.where(band, sobel_magnitude(expit(m), ksize), 0))
    # OpenCV may sum the kernel in another order at another offset (its SIMD paths): the float32
    # rounding bound is eps * sum |kernel| on values in [0, 1] (OpenCV 5 at ksize 5: 1.9e-6 seen)
    smooth, derive = cv2.getDerivKernels(1, 0, ksize)
    bound = np.finfo(np.float32).eps * np.abs(smooth).sum() * np.abs(derive).sum()
    np.testing.assert_allclose(mask_edge_map(logits, 0.0, mode, width, ksize), expected, rtol=1e-5, atol=bound)


def test_normalisation_and_uint8():
    edge = np.array([[2.0, 4.0], [6.0, 10.0]])
    np.testing.assert_allclose(normalize_edges(edge, "minmax"), [[0, 0.25], [0.5, 1]])
    np.testing.assert_allclose(normalize_edges(edge, "max"), [[0.2, 0.4], [0.6, 1]])
    assert not normalize_edges(np.full((3, 3), 7.0)).any()
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.5, 1.0, 1.2, -1])), [0, 128, 255, 255, 0])
    with pytest.raises(ValueError, match="normalisation"):
        normalize_edges(edge, "zscore")


def test_edge_nms_thins_a_ridge_to_its_centre():
    h, w, centre = 60, 60, 27
    xx = np.arange(w)[None].repeat(h, 0)
    ridge = np.exp(-((xx - centre) ** 2) / (2 * 2.0**2))  # a 5-px wide vertical ridge
    thin = edge_nms(ridge, "pyedgeeval", radius=1, border=5, multiplier=1.01)
    rows = slice(6, h - 6)  # NMS fades responses within `border` pixels of the image border
    assert np.array_equal(np.flatnonzero(thin[rows].any(0)), [centre])
    assert (thin[rows, centre] > 0.9).all()
    np.testing.assert_array_equal(edge_nms(ridge, "none"), ridge)


def step_image(h: int = 40, w: int = 40, column: int = 20) -> np.ndarray:
    image = np.full((h, w, 3), 40, np.uint8)
    image[:, column:] = 200
    return image


def test_sobel_baseline_is_the_gradient_magnitude():
    edge = SobelEdges().detect_edges(step_image())
    assert edge.dtype == np.float32 and edge.max() == 1.0
    assert set(np.flatnonzero(edge.any(0))) == {19, 20}  # the two columns beside the step
    np.testing.assert_allclose(edge[:, 19:21], 1.0)


def test_soft_canny_keeps_one_pixel_per_row_at_the_step():
    edge = SoftCannyEdges(sigma=2.0).detect_edges(step_image())
    inner = edge[5:-5]
    assert edge.max() == 1.0
    assert (np.count_nonzero(inner, axis=1) == 1).all()  # NMS: one pixel across the edge
    assert set(np.flatnonzero(inner.any(0))) <= {19, 20}
    flat = SoftCannyEdges().detect_edges(np.full((10, 10, 3), 90, np.uint8))
    assert not flat.any()
    with pytest.raises(ValueError, match="RGB"):
        SoftCannyEdges().detect_edges(np.zeros((10, 10), np.uint8))


def test_sobel_magnitude_matches_opencv():
    rng = np.random.default_rng(1)
    img = rng.random((12, 16)).astype(np.float32)
    gx, gy = cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)
    np.testing.assert_allclose(sobel_magnitude(img), np.hypot(gx, gy), rtol=1e-6)
