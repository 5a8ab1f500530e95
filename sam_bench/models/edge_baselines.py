"""Weight-free edge baselines for the edge protocol (the Sobel and Canny rows of the paper's Table 3).

- `sobel`: gradient magnitude of the grey image (3x3 Sobel), divided by its maximum. A dense map.
- `canny`: soft Canny, i.e. Canny without hysteresis: Gaussian smoothing, Sobel gradient,
  non-maximum suppression along the gradient direction (OpenCV's), and the surviving pixels keep
  their gradient magnitude, divided by the maximum.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..core.types import ModelInfo
from ..core.edge_maps import sobel_magnitude
from ..registry import MODELS
from .base import EdgeDetector, weight_free

CANNY_SIGMA = 2.0  # Gaussian smoothing before the gradient, in pixels
INT16_MAX = 32767
FLAT = 1e-4  # Sobel responses below this (grey levels in [0, 1]) are rounding noise of the blur


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 luminance in [0, 1]."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _unit_max(edge: np.ndarray) -> np.ndarray:
    peak = float(edge.max()) if edge.size else 0.0
    return (edge / peak if peak > 0 else np.zeros_like(edge)).astype(np.float32)


class SobelEdges(EdgeDetector):
    def __init__(self, ksize: int = 3) -> None:
        self.ksize = ksize
        self.info = ModelInfo("sobel", untrained=False, details={
            "weights": "none", "method": "grey-level Sobel gradient magnitude / its maximum", "ksize": ksize})

    def detect_edges(self, image: np.ndarray) -> np.ndarray:
        return _unit_max(sobel_magnitude(grey(image), self.ksize))


class SoftCannyEdges(EdgeDetector):
    def __init__(self, sigma: float = CANNY_SIGMA) -> None:
        self.sigma = sigma
        self.info = ModelInfo("canny", untrained=False, details={
            "weights": "none", "sigma": sigma,
            "method": "Gaussian blur, 3x3 Sobel, OpenCV Canny non-maximum suppression without "
                      "hysteresis (thresholds 0); kept pixels carry their L2 gradient magnitude / max"})

    def detect_edges(self, image: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(grey(image), (0, 0), self.sigma)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
        peak = max(float(np.abs(gx).max()), float(np.abs(gy).max()))
        if peak < FLAT:  # a flat image: scaling its rounding noise to int16 would invent edges
            return np.zeros(smooth.shape, np.float32)
        # OpenCV's Canny takes int16 derivatives: scale to the int16 range (15 bits of precision)
        # and take the magnitude from the very same integers, so suppression and strength agree.
        dx = np.round(gx * (INT16_MAX / peak)).astype(np.int16)
        dy = np.round(gy * (INT16_MAX / peak)).astype(np.int16)
        kept = cv2.Canny(dx, dy, 0, 0, L2gradient=True) > 0
        magnitude = np.hypot(dx.astype(np.float32), dy.astype(np.float32))
        return _unit_max(np.where(kept, magnitude, 0.0))


@MODELS.register("sobel", help="weight-free Sobel gradient magnitude (edge baseline)")
def build_sobel(checkpoint: str | None = None, device: object = None, precision: str = "fp32",
        batch_size: int | None = None, **model_args: str) -> SobelEdges:
    weight_free("sobel", checkpoint, model_args)
    return SobelEdges()


@MODELS.register("canny", help="weight-free soft Canny: gradient magnitude after NMS, no hysteresis (edge baseline)")
def build_canny(checkpoint: str | None = None, device: object = None, precision: str = "fp32",
        batch_size: int | None = None, **model_args: str) -> SoftCannyEdges:
    weight_free("canny", checkpoint, model_args)
    return SoftCannyEdges()
