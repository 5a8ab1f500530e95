"""Image loading with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grey and RGBA images are converted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_map(path: str | Path) -> np.ndarray:
    """Single-channel label or mask image at its native bit depth (8 or 16 bit)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.size == 0:
        raise DataError(f"{path}: cannot decode annotation image (corrupt or unsupported format)")
    if labels.ndim == 3:
        labels = labels[..., 0]  # palette/grey masks saved as 3 equal channels
    return labels
