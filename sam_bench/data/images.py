"""Image loading with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError


def _imread(path: str | Path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.size == 0:
        raise DataError(f"{path}: cannot decode {what} (corrupt or unsupported format)")
    return data


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grey and RGBA images are converted."""
    image = _imread(path, "image")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
