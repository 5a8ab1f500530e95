"""Image loading with errors that name the file."""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError

# libjpeg's warnings for damaged entropy-coded data (jerror.h: JWRN_*). It decodes such a file into a
# partly grey image and prints the warning to stderr without the file name, and neither OpenCV nor
# PIL turns it into an error, so the decoder's stderr is read while it decodes (`_strict_jpeg`).
_JPEG_DAMAGE = (b"Corrupt JPEG data", b"Premature end of JPEG file", b"Invalid SOS parameters",
                b"Unsupported marker type", b"Bogus", b"Warning: unknown JFIF revision")
_stderr_lock = threading.Lock()  # one decoder's stderr is read at a time


_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC close every complete PNG


def check_complete(path: str | Path, what: str = "image") -> None:
    """DataError naming the file if a JPEG or PNG stops before its end marker.

    libjpeg and libpng decode a truncated file into a partly grey image and only print a warning
    without the file name; checking the end marker costs one small read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b"\0\r\n\t ")  # some writers pad after the end marker
    if head[:3] == b"\xff\xd8\xff" and not tail.endswith(b"\xff\xd9"):
        raise DataError(f"{path}: truncated or damaged JPEG {what} (no end-of-image marker; {size} bytes)")
    if head == b"\x89PNG\r\n\x1a\n" and not tail.endswith(_PNG_END):
        raise DataError(f"{path}: truncated or damaged PNG {what} (no IEND chunk; {size} bytes)")


def verify_decodes(path: str | Path, what: str = "image") -> None:
    """Full decode with PIL, which refuses truncated data (LOAD_TRUNCATED_IMAGES stays False) and
    checks PNG CRCs: the thorough check `data check` runs on top of `check_complete`."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    check_complete(path, what)
    if is_jpeg(Path(path)):
        _strict_jpeg(Path(path), what)  # libjpeg's warnings of damage in the middle of the file
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as im:
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode {what} (damaged: {exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def _strict_jpeg(path: Path, what: str) -> np.ndarray | None:
    """Decode a JPEG with OpenCV; DataError naming the file when libjpeg warns of damaged data."""
    encoded = np.fromfile(path, np.uint8)
    with _stderr_lock, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            data = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        printed = captured.read()
    damage = next((line for line in printed.splitlines() if line.startswith(_JPEG_DAMAGE)), None)
    if damage is not None:
        raise DataError(f"{path}: damaged JPEG {what} (the decoder says: {damage.decode(errors='replace')})")
    if printed:
        os.write(2, printed)  # anything else printed meanwhile is not ours to swallow
    return data


def is_jpeg(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(3) == b"\xff\xd8\xff"


def _imread(path: str | Path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    check_complete(path, what)
    data = _strict_jpeg(path, what) if is_jpeg(path) else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
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


def check_size(image: np.ndarray, height: int, width: int, path: Path | None) -> None:
    """DataError when the decoded image's size differs from the size its annotations give (COCO
    `height` / `width`): masks would be cropped or padded against the wrong pixels."""
    if image.shape[:2] != (height, width):
        raise DataError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, annotations are {width}x{height}")
