"""Edge maps from masks (the SAM edge protocol, PROTOCOLS.md §2) and edge-map post-processing.

Pipeline for a promptable segmenter: for each kept mask, the Sobel gradient magnitude of its
probability map (sigmoid of the logits, at image resolution), kept only on the mask's boundary
band; the pixel-wise maximum over masks; a linear normalisation to [0, 1]; edge NMS. The open
choices are parameters here and options of the `edges` task.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.special import expit

BOUNDARY_MODES = ("outer", "inner", "both")
NORMALIZATIONS = ("minmax", "max", "none")
NMS_METHODS = ("pyedgeeval", "none")


def sobel_magnitude(image: np.ndarray, ksize: int = 3) -> np.ndarray:
    """Gradient magnitude sqrt(gx^2 + gy^2) of a (..., H, W) float map with OpenCV's Sobel."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=ksize)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=ksize)
        # Not cv2.magnitude: its SIMD path rounds differently with the buffer's alignment.
        return np.sqrt(gx * gx + gy * gy)
    return np.stack([sobel_magnitude(m, ksize) for m in image.reshape(-1, *image.shape[-2:])]).reshape(image.shape)


def boundary_band(mask: np.ndarray, mode: str = "outer", width: int = 1) -> np.ndarray:
    """Pixels where a mask's edge response is kept.

    outer: the (2w+1)x(2w+1) dilation of the mask minus the mask (pixels just outside it);
    inner: the mask minus its erosion; both: dilation minus erosion. Pixels beyond the image
    border count as outside the mask, so a mask touching the border has an inner boundary there.
    """
    if mode not in BOUNDARY_MODES:
        raise ValueError(f"boundary mode must be one of {BOUNDARY_MODES}, got {mode!r}")
    if width < 1:
        raise ValueError(f"boundary width must be >= 1, got {width}")
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    dilated = cv2.dilate(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    eroded = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    inside = mask > 0
    if mode == "outer":
        return dilated & ~inside
    if mode == "inner":
        return inside & ~eroded
    return dilated & ~eroded


def mask_edge_map(logits: np.ndarray, mask_threshold: float = 0.0, boundary: str = "outer",
                  boundary_width: int = 1, sobel_ksize: int = 3) -> np.ndarray:
    """(K, H, W) mask logits at image resolution -> (H, W) float32 edge strength (not normalised).

    Each mask contributes the Sobel magnitude of sigmoid(logits) on its boundary band (the mask is
    logits > mask_threshold); the result is the pixel-wise maximum. K = 0 gives zeros.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 3:
        raise ValueError(f"expected (K, H, W) logits, got shape {logits.shape}")
    height, width = logits.shape[1:]
    edge = np.zeros((height, width), np.float32)
    # Work on the mask's box grown by the band width plus the Sobel radius: every kept pixel's
    # neighbourhood lies inside it, so the result equals the full-image computation (to float32 rounding), only faster.
    margin = boundary_width + sobel_ksize // 2
    for mask_logits in logits:
        mask = (mask_logits > mask_threshold).astype(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            continue  # an empty mask has no boundary
        y0, y1 = max(0, y - margin), min(height, y + h + margin)
        x0, x1 = max(0, x - margin), min(width, x + w + margin)
        band = boundary_band(mask[y0:y1, x0:x1], boundary, boundary_width)
        prob = expit(mask_logits[y0:y1, x0:x1])
        window = edge[y0:y1, x0:x1]
        np.maximum(window, np.where(band, sobel_magnitude(prob, sobel_ksize), 0.0), out=window)
    return edge


def normalize_edges(edge: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Linear map to [0, 1]: minmax (x - min) / (max - min), max x / max, or none. Flat maps -> 0."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalisation must be one of {NORMALIZATIONS}, got {method!r}")
    edge = np.asarray(edge, dtype=np.float64)
    if method == "none" or edge.size == 0:
        return edge
    low = float(edge.min()) if method == "minmax" else 0.0
    span = float(edge.max()) - low
    return (edge - low) / span if span > 0 else np.zeros_like(edge)


def edge_nms(edge: np.ndarray, method: str = "pyedgeeval", radius: int = 1, border: int = 5,
             multiplier: float = 1.01) -> np.ndarray:
    """Thin edges to ridges. `pyedgeeval`: Dollar's structured-edge NMS (edgesNmsMex, as ported by
    pyEdgeEval): triangle smoothing, orientation from second derivatives, suppression of pixels not
    above `multiplier` x their neighbours at distance `radius` across the edge, and a linear fade
    over `border` pixels at the image border."""
    if method not in NMS_METHODS:
        raise ValueError(f"edge NMS must be one of {NMS_METHODS}, got {method!r}")
    edge = np.asarray(edge, dtype=np.float64)
    if method == "none":
        return edge
    from pyEdgeEval.preprocess import fast_nms

    return fast_nms(img=edge, r=radius, s=border, m=multiplier)


def to_uint8(edge: np.ndarray) -> np.ndarray:
    """[0, 1] float edge map -> uint8 0..255 (rounded), the format BSDS tools read."""
    return np.round(np.clip(np.asarray(edge, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
