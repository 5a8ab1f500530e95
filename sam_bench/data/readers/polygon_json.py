"""Polygon annotations in tool-specific json files, rasterised like COCO polygons (pycocotools):

- `via`: VGG Image Annotator json (NDD20): `{key: {filename, regions: [{shape_attributes, ...}]}}`
  (VIA 1 `regions` dict or VIA 2 list, optionally inside `_via_img_metadata`);
- `woodscape`: one json per image, `{name: {annotation: [{tags, segmentation: [[x, y], ...],
  z_order}], image_width, image_height}}`; masks are the visible parts (painted in z order);
- `visor`: EPIC-KITCHENS VISOR sparse annotations, one json per video with
  `video_annotations: [{image: {name, image_path}, annotations: [{name, class_id, segments}]}]`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from ...errors import DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .coco import load_json
from .common import IndexedDataset, image_size, polygons_mask, require_dir, require_file


def _json_files(ann_dir: Path) -> list[Path]:
    files = sorted(ann_dir.glob("*.json"))
    if not files:
        raise DataError(f"{ann_dir}: no .json annotation files")
    return files


def _flat(points: list) -> list[float]:
    return [float(v) for xy in points for v in xy[:2]]


class _PolygonDataset(IndexedDataset):
    """Records: (image path, [(object id, category, flat polygons)], size or None, where)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._records: list[tuple[Path, list[tuple[str, Optional[str], list[list[float]]]], Optional[tuple[int, int]], str]] = []

    def object_counts(self) -> list[int]:
        return [len(r[1]) for r in self._records]

    def image_path(self, index: int) -> Path:
        return self._records[index][0]

    def _finish(self) -> None:
        self._ids = [self._id(r[0]) for r in self._records]
        if len(set(self._ids)) != len(self._ids):
            raise DataError(f"{self.root}: duplicate image names in the annotations")

    def _id(self, path: Path) -> str:
        return path.stem

    def _masks(self, objects: list, height: int, width: int, where: str) -> list[np.ndarray]:
        return [polygons_mask(polys, height, width, f"{where}, object {oid}") for oid, _, polys in objects]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        path, objects, size, where = self._records[index]
        height, width = size if size else image_size(path)
        masks = self._masks(objects, height, width, where)
        anns = [ObjectAnnotation(object_id=oid, mask=m, category=cat)
                for (oid, cat, _), m in zip(objects, masks) if m.any()]
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=height, width=width, objects=anns, path=path)


def _via_region_polygons(shape: dict[str, Any], where: str) -> list[list[float]]:
    kind = shape.get("name")
    if kind in ("polygon", "polyline"):
        return [_flat(list(zip(shape["all_points_x"], shape["all_points_y"])))]
    if kind == "rect":
        x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        return [[x, y, x + w, y, x + w, y + h, x, y + h]]
    if kind in ("circle", "ellipse"):
        rx = float(shape.get("r", shape.get("rx", 0)))
        ry = float(shape.get("r", shape.get("ry", 0)))
        pts = cv2.ellipse2Poly((int(round(shape["cx"])), int(round(shape["cy"]))),
                               (int(round(rx)), int(round(ry))), 0, 0, 360, 5)
        return [pts.astype(float).ravel().tolist()]
    raise DataError(f"{where}: unsupported VIA region shape '{kind}'")


@READERS.register("via", help="VGG Image Annotator (VIA) polygon json (NDD20)")
class ViaDataset(_PolygonDataset):
    def __init__(self, root: Path, annotations: str, images: str = ".", category_attribute: Optional[str] = None) -> None:
        super().__init__(root)
        ann_file = require_file(self.root, annotations, "VIA annotation json")
        image_dir = require_dir(self.root, images, "image")
        data = load_json(ann_file)
        if isinstance(data, dict) and "_via_img_metadata" in data:
            data = data["_via_img_metadata"]
        if not isinstance(data, dict):
            raise DataError(f"{ann_file}: not a VIA json (expected an object of image entries)")
        for key, entry in data.items():
            if not isinstance(entry, dict) or "filename" not in entry:
                raise DataError(f"{ann_file}: entry '{key}' has no 'filename'")
            regions = entry.get("regions") or []
            if isinstance(regions, dict):  # VIA 1 stores regions as {"0": {...}, "1": {...}}
                regions = [regions[k] for k in sorted(regions, key=lambda s: int(s) if str(s).isdigit() else s)]
            where = f"{ann_file} ({entry['filename']})"
            objects = []
            for k, region in enumerate(regions):
                attrs = region.get("region_attributes") or {}
                cat = attrs.get(category_attribute) if category_attribute else None
                objects.append((str(k), None if cat is None else str(cat),
                                _via_region_polygons(region.get("shape_attributes") or {}, where)))
            self._records.append((image_dir / entry["filename"], objects, None, where))
        self._finish()
        self.metadata = {"annotation_file": str(ann_file)}


@READERS.register("woodscape", help="WoodScape per-image instance json (z-ordered polygons)")
class WoodScapeDataset(_PolygonDataset):
    def __init__(self, root: Path, annotations: str = "instance_annotations", images: str = "rgb_images",
                 image_suffix: str = ".png", visible_only: bool = True) -> None:
        super().__init__(root)
        ann_dir = require_dir(self.root, annotations, "WoodScape instance annotation")
        image_dir = require_dir(self.root, images, "image")
        self.visible_only = visible_only
        files = _json_files(ann_dir)
        for f in files:
            data = load_json(f)
            try:
                (entry,) = data.values()
                anns = sorted((a for a in entry["annotation"] if a.get("segmentation")),
                              key=lambda a: a.get("z_order", 0))  # stable: file order within a z level
                size = (int(entry["image_height"]), int(entry["image_width"]))
                objects = [(str(a.get("id", k)), (a.get("tags") or [None])[0], [_flat(a["segmentation"])])
                           for k, a in enumerate(anns)]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise DataError(f"{f}: not a WoodScape instance annotation ({type(exc).__name__}: {exc})") from None
            self._records.append((image_dir / f"{f.stem}{image_suffix}", objects, size, str(f)))
        self._finish()

    def _masks(self, objects: list, height: int, width: int, where: str) -> list[np.ndarray]:
        masks = super()._masks(objects, height, width, where)
        if not self.visible_only:
            return masks
        # Later z-order polygons are drawn over earlier ones, as in WoodScape's own semantic maps.
        owner = np.full((height, width), -1, np.int32)
        for k, m in enumerate(masks):
            owner[m] = k
        return [owner == k for k in range(len(masks))]


@READERS.register("visor", help="EPIC-KITCHENS VISOR sparse annotation jsons (one per video)")
class VisorDataset(_PolygonDataset):
    def __init__(self, root: Path, annotations: str, images: str, height: int = 1080, width: int = 1920) -> None:
        super().__init__(root)
        ann_dir = require_dir(self.root, annotations, "VISOR annotation")
        image_dir = require_dir(self.root, images, "VISOR rgb_frames")
        files = _json_files(ann_dir)
        for f in files:
            data = load_json(f)
            try:
                entries = sorted(data["video_annotations"], key=lambda e: e["image"]["image_path"])
                for e in entries:
                    name, rel = e["image"]["name"], e["image"]["image_path"]
                    video = "_".join(name.split("_")[:2])  # P01_107_frame_0000000140.jpg -> P01_107
                    path = image_dir / rel
                    if not path.is_file():  # frames unzipped per video: <images>/<video>/<name>
                        path = image_dir / video / name
                    objects = [(str(a.get("id", k)), a.get("name"),
                                [_flat(seg) for seg in a.get("segments") or []])
                               for k, a in enumerate(e["annotations"]) if a.get("segments")]
                    self._records.append((path, objects, (height, width), f"{f} ({name})"))
            except (KeyError, TypeError, AttributeError) as exc:
                raise DataError(f"{f}: not a VISOR sparse annotation json ({type(exc).__name__}: {exc})") from None
        self._finish()
