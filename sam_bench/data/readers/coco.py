"""COCO-style instance json: COCO, LVIS v0.5 / v1, and every dataset released in that format.

The json is loaded once and indexed by image; masks are decoded lazily in `get()` (LVIS v1 val
holds ~1.2M instances). Crowd annotations (`iscrowd: 1`) are never targets; by default their
pixels not covered by a regular object become `sample.ignore`, the pixel-level analogue of COCO
evaluation ignoring detections matched to crowd regions (`crowd: ignore`); `crowd: drop` forgets
them, `crowd: keep` keeps them as objects flagged `extra["iscrowd"] = 1`.
"""
from __future__ import annotations

import functools
import json
import logging
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Optional

import numpy as np

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import CocoImage, ImageSample, ObjectAnnotation
from .common import IndexedDataset, check_xywh, decode_segmentation, optional_ignore, require_file, union

CROWD_MODES = ("ignore", "drop", "keep")
log = logging.getLogger(__name__)


def image_relpath(image: dict[str, Any]) -> str:
    """Image path relative to the image directory.

    COCO and LVIS v0.5 give `file_name`; LVIS v1 gives only `coco_url`, whose last two components
    are COCO's split folder and file name (v1 val draws images from both train2017 and val2017).
    """
    if image.get("file_name"):
        return str(image["file_name"])
    if image.get("coco_url"):
        return "/".join(PurePosixPath(str(image["coco_url"])).parts[-2:])
    raise DataError(f"image {image.get('id')}: neither 'file_name' nor 'coco_url' given")


def load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid json: {exc}") from None


@READERS.register("coco", help="COCO / LVIS instance json (polygons or RLE)")
class CocoDataset(IndexedDataset):
    def __init__(self, root: Path, annotations: str, images: str = ".", crowd: str = "ignore") -> None:
        super().__init__(root)
        if crowd not in CROWD_MODES:
            raise ConfigError(f"coco reader: crowd must be one of {CROWD_MODES}, got '{crowd}'")
        self.crowd = crowd
        self.annotation_file = require_file(self.root, annotations, "annotation json")
        self.image_dir = self.root / images
        data = load_json(self.annotation_file)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataError(f"{self.annotation_file}: not a COCO/LVIS instance json "
                            "(needs 'images' and 'annotations' lists)")
        self.categories: list[dict[str, Any]] = list(data.get("categories") or [])
        self._category_by_id = {c["id"]: c for c in self.categories if "id" in c}
        self._images: list[dict[str, Any]] = data["images"]
        self._anns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for ann in data["annotations"]:
            try:
                self._anns[ann["image_id"]].append(ann)
            except (KeyError, TypeError):
                raise DataError(f"{self.annotation_file}: annotation without 'image_id': "
                                f"{str(ann)[:120]}") from None
        try:
            self._ids = [str(im["id"]) for im in self._images]
        except (KeyError, TypeError):
            raise DataError(f"{self.annotation_file}: image entry without 'id'") from None
        if len(set(self._ids)) != len(self._ids):
            repeated = sorted({i for i in self._ids if self._ids.count(i) > 1})
            raise DataError(f"{self.annotation_file}: image ids are not unique: {', '.join(repeated[:10])}")
        self._warn_unmatched(data["annotations"])
        self.is_lvis = any("frequency" in c for c in self.categories)
        self.metadata = {"annotation_file": str(self.annotation_file), "image_dir": str(self.image_dir),
                         "crowd": crowd, "format": "lvis" if self.is_lvis else "coco"}

    def _warn_unmatched(self, annotations: list[dict[str, Any]]) -> None:
        """Annotations no image can show and repeated annotation ids: counted, warned, not fatal
        (released files have both); the first are never scored, the second are kept as they are."""
        images = {im.get("id") for im in self._images if isinstance(im, dict)}
        orphans = [ann_image for ann_image in self._anns if ann_image not in images]
        if orphans:
            log.warning("%s: %d annotations name %d image ids that are not in 'images' (e.g. %s); they are ignored",
                        self.annotation_file, sum(len(self._anns[i]) for i in orphans), len(orphans),
                        ", ".join(map(str, orphans[:5])))
        seen = Counter(ann.get("id") for ann in annotations if ann.get("id") is not None)
        repeated = sorted((i for i, n in seen.items() if n > 1), key=str)
        if repeated:
            log.warning("%s: %d annotation ids are used more than once (%d annotations, e.g. %s)",
                        self.annotation_file, len(repeated), sum(seen[i] for i in repeated),
                        ", ".join(map(str, repeated[:5])))

    def object_counts(self) -> list[int]:
        counts = []
        for im in self._images:
            anns = self._anns.get(im["id"], [])
            counts.append(sum(1 for a in anns if self.crowd == "keep" or not a.get("iscrowd", 0)))
        return counts

    def image_path(self, index: int) -> Path:
        image = self._images[index]
        rel = image_relpath(image)
        path = self.image_dir / rel
        if not path.is_file():
            name = PurePosixPath(rel).name
            # images put flat in one folder instead of COCO's split folders; COCO 2014 names
            # (COCO_val2014_000000397133.jpg) for the same images under their 2017 names
            for candidate in (self.image_dir / name, self.image_dir / name[-16:] if name.startswith("COCO_") else None):
                if candidate is not None and candidate.is_file():
                    return candidate
        return path

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        image = self._images[index]
        where = f"{self.annotation_file} (image {image['id']})"
        try:
            height, width = int(image["height"]), int(image["width"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: image entry without integer 'height'/'width'") from None
        objects, crowd_masks = [], []
        for ann in self._anns.get(image["id"], []):
            iscrowd = int(ann.get("iscrowd", 0) or 0)
            if iscrowd and self.crowd == "drop":
                continue
            ann_where = f"{where}, annotation {ann.get('id')}"
            if "segmentation" not in ann:
                raise DataError(f"{ann_where}: no 'segmentation'")
            mask = decode_segmentation(ann["segmentation"], height, width, ann_where)
            if iscrowd and self.crowd == "ignore":
                crowd_masks.append(mask)
                continue
            objects.append(self._object(ann, mask, iscrowd, ann_where))
        ignore = None
        if crowd_masks:
            ignore = optional_ignore(union(crowd_masks, (height, width))
                                     & ~union((o.mask for o in objects), (height, width)))
        path = self.image_path(index)
        coco = CocoImage(image["id"], tuple(image.get("neg_category_ids", ())),
                         tuple(image.get("not_exhaustive_category_ids", ())))
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=height, width=width, objects=objects, ignore=ignore, path=path, coco=coco)

    def _object(self, ann: dict[str, Any], mask: np.ndarray, iscrowd: int, where: str) -> ObjectAnnotation:
        cat = self._category_by_id.get(ann.get("category_id"), {})
        box: Optional[tuple[float, float, float, float]] = None
        if ann.get("bbox") is not None:  # the same check as a detections file's boxes
            x, y, w, h = check_xywh(ann["bbox"], where)
            box = (x, y, x + w, y + h)
        extra: dict[str, Any] = {"iscrowd": iscrowd, "annotation_id": ann.get("id")}
        if "frequency" in cat:
            extra["frequency"] = cat["frequency"]
        return ObjectAnnotation(object_id=str(ann.get("id")), mask=mask, category=cat.get("name"),
                                category_id=ann.get("category_id"), box=box,
                                area=float(ann["area"]) if "area" in ann else None, extra=extra)
