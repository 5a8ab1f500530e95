"""Helpers shared by the format readers: a lazy dataset base, file pairing, RLE decoding."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ...errors import DataError
from ..types import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class IndexedDataset(Dataset):
    """Indexes files (or a json) at construction; builds each ImageSample lazily in `get()`.

    Subclasses fill `self._ids` and implement `get()` and `object_counts()`. `object_counts()`
    gives the number of target objects per image without decoding masks, for subsampling and
    `data check`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.metadata: dict[str, Any] = {}
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def image_ids(self) -> list[str]:
        return list(self._ids)

    def object_counts(self) -> list[int]:
        raise NotImplementedError

    def image_path(self, index: int) -> Path:
        """Where image `index` should be, without loading it (used by `data check`)."""
        raise NotImplementedError

    def input_files(self, index: int) -> list[Path]:
        try:
            image = self.image_path(index)
        except NotImplementedError:
            return super().input_files(index)
        return [image, *self.annotation_paths(index)]

    def annotation_paths(self, index: int) -> list[Path]:
        """The annotation files of image `index` (default: the dataset's one annotation file)."""
        return [self.annotation_file] if self.annotation_file else []

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._ids):
            raise IndexError(index)


def require_dir(root: Path, relative: str | Path, what: str) -> Path:
    path = Path(root) / relative
    if not path.is_dir():
        raise DataError(f"{path}: {what} directory not found")
    return path


def require_file(root: Path, relative: str | Path, what: str) -> Path:
    path = Path(root) / relative
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    return path


def list_files(directory: Path, suffixes: Iterable[str] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
    """Files under `directory` whose name ends with one of `suffixes` (case-insensitive), sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    it = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in it if p.is_file() and p.name.lower().endswith(suffixes))


def pair_files(root: Path, images: str, annotations: str, image_suffix: str | list[str] | None,
               annotation_suffix: str, recursive: bool = True) -> list[tuple[str, Path, Path]]:
    """(image id, image path, annotation path) for each image with a matching annotation file.

    The image id is the image's path relative to `images` without its suffix, so an annotation is
    found at `annotations/<id><annotation_suffix>` (Cityscapes, ADE20K and most per-image PNG
    layouts follow this). Images without an annotation are skipped and counted in `metadata`.
    """
    image_dir = require_dir(root, images, "image")
    ann_dir = require_dir(root, annotations, "annotation")
    if image_suffix is None:
        suffixes = list(IMAGE_EXTENSIONS)
    else:
        suffixes = [image_suffix] if isinstance(image_suffix, str) else list(image_suffix)
    pairs = []
    for path in list_files(image_dir, suffixes, recursive):
        rel = path.relative_to(image_dir).as_posix()
        suffix = next(s for s in suffixes if rel.lower().endswith(s.lower()))
        stem = rel[: len(rel) - len(suffix)]
        ann = ann_dir / f"{stem}{annotation_suffix}"
        if ann.is_file():
            pairs.append((stem, path, ann))
    return pairs


def segmentation_rle(segmentation: Any, height: int, width: int, where: str) -> dict[str, Any]:
    """COCO segmentation (polygon list, uncompressed or compressed RLE) -> pycocotools RLE, the
    conversion of pycocotools' `COCO.annToRLE` (what COCO-style evaluators compute IoU on)."""
    try:
        if isinstance(segmentation, list):  # polygons: one RLE per part, merged
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            return mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
        if isinstance(segmentation, dict) and "counts" in segmentation:
            counts = segmentation["counts"]
            return {"size": [int(v) for v in segmentation["size"]],
                    "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        raise ValueError("not a polygon list or an RLE dict")
    except (ValueError, TypeError, KeyError, IndexError, UnicodeEncodeError) as exc:
        raise DataError(f"{where}: cannot decode segmentation: {exc}") from None


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """COCO segmentation (polygon list, uncompressed or compressed RLE) -> (H, W) bool mask."""
    rle = segmentation_rle(segmentation, height, width, where)
    try:
        mask = mask_utils.decode(rle)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise DataError(f"{where}: cannot decode segmentation: {exc}") from None
    if mask.shape[:2] != (height, width):
        raise DataError(f"{where}: mask size {mask.shape[:2]} differs from image size {(height, width)}")
    return mask.astype(bool)


def check_xywh(box: Any, where: str) -> tuple[float, float, float, float]:
    """A COCO box [x, y, w, h] of finite numbers with w, h >= 0 (annotations and detection files
    alike); DataError naming `where` otherwise (a NaN box would otherwise surface as NaN logits)."""
    finite = isinstance(box, (list, tuple)) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    if not finite or box[2] < 0 or box[3] < 0:
        raise DataError(f"{where}: bbox must be [x, y, w, h] with finite numbers and w, h >= 0; got {box!r}")
    return float(box[0]), float(box[1]), float(box[2]), float(box[3])


def union(masks: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks:
        out |= m
    return out


def optional_ignore(mask: np.ndarray) -> Optional[np.ndarray]:
    """None when nothing is ignored, so tasks can skip the masking work."""
    return mask if mask.any() else None


def read_labels(path: Path, colour: bool = False) -> np.ndarray:
    """Label image -> (H, W) integer array, keeping palette indices and 16-bit values.

    OpenCV converts palette PNGs (CVPPP leaves, VOC-style labels) to colours, so PIL reads them:
    `colour=False` gives palette indices / grey / 16-bit values, `colour=True` packs RGB into
    one int (R << 16 | G << 8 | B) so each distinct colour is one label.
    """
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        with Image.open(path) as im:
            if colour:
                rgb = np.asarray(im.convert("RGB")).astype(np.int64)
                return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            labels = np.asarray(im.convert("RGB") if im.mode in ("RGBA", "LA") else im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot decode annotation image: {exc}") from None
    if labels.ndim == 3:  # grey masks saved with 3 equal channels are fine, real colours are not
        if not ((labels[..., 0] == labels[..., 1]).all() and (labels[..., 0] == labels[..., 2]).all()):
            raise DataError(f"{path}: colour annotation image where a label map was expected "
                            "(use a colour encoding)")
        labels = labels[..., 0]
    if labels.ndim != 2:
        raise DataError(f"{path}: expected a single-channel label image, got shape {labels.shape}")
    return labels.astype(np.int64)


def read_mask_values(path: Path) -> np.ndarray:
    """One value per pixel of a mask image: palette index, grey level, or the max over colour
    channels (RITM's reading of DAVIS/COCO-MVal masks, which come as palette, grey or colour)."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: mask file not found")
    try:
        with Image.open(path) as im:
            values = np.asarray(im.convert("RGB") if im.mode in ("RGBA", "LA", "CMYK") else im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot decode mask image: {exc}") from None
    if values.ndim == 3:
        values = values.max(axis=2)
    if values.dtype == np.uint16 and values.max() > 255:
        # A 16-bit mask: datasets declare void / threshold values on the 8-bit scale (GrabCut's
        # 128 band is 32896 here), so map 0..65535 onto 0..255 before they are compared.
        values = (values.astype(np.int64) + 128) // 257
    return values.astype(np.int64)


def check_annotation_size(annotation: Path, what: str, shape: tuple[int, ...], image: Path) -> None:
    """DataError naming both files when an annotation's size differs from its image's (header only)."""
    height, width = image_size(image)
    if tuple(shape[:2]) != (height, width):
        raise DataError(f"{annotation}: {what} is {shape[1]}x{shape[0]} but its image {image} is "
                        f"{width}x{height} (annotations must have the image's size)")


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot read image header: {exc}") from None
    return height, width


def polygons_mask(polygons: Iterable[Sequence[float]], height: int, width: int, where: str) -> np.ndarray:
    """Union of flat [x0, y0, x1, y1, ...] polygons rasterised like COCO's (pycocotools)."""
    polys = [[float(v) for v in p] for p in polygons if len(p) >= 6]  # fewer than 3 points: no area
    if not polys:
        return np.zeros((height, width), bool)
    return decode_segmentation(polys, height, width, where)
