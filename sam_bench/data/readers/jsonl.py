"""A simple JSONL manifest any dataset can be converted to: one line per image.

    {"image": "images/a.jpg",                      # path relative to the manifest's folder
     "image_id": "a",                              # optional; default: image path without suffix
     "height": 480, "width": 640,                  # optional; default: from the image header
     "objects": [                                  # one entry per object, any of:
        {"mask": "masks/a_0.png"},                 #   mask image, foreground = nonzero
        {"mask": "labels/a.png", "value": 3},      #   label image, foreground = pixels equal to 3
        {"rle": {"size": [h, w], "counts": "..."}},  # COCO RLE (compressed or not)
        {"polygons": [[x0, y0, x1, y1, ...]]},     #   COCO-style polygons
       ... plus optional "id", "category", "category_id"],
     "ignore": {"mask": "masks/a_void.png"}}       # optional, same forms as an object
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .common import IndexedDataset, decode_segmentation, image_size, optional_ignore, read_labels, require_file


@READERS.register("jsonl", help="JSONL manifest: one line per image with mask files, RLE or polygons")
class JsonlDataset(IndexedDataset):
    def __init__(self, root: Path, manifest: str = "manifest.jsonl") -> None:
        super().__init__(root)
        self.manifest = require_file(self.root, manifest, "JSONL manifest")
        self.base = self.manifest.parent
        self._lines: list[dict[str, Any]] = []
        with open(self.manifest, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{self.manifest}:{n}: invalid json: {exc}") from None
                if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                    raise DataError(f"{self.manifest}:{n}: each line needs an \"image\" path")
                if not isinstance(entry.get("objects", []), list):
                    raise DataError(f"{self.manifest}:{n}: \"objects\" must be a list")
                entry["_line"] = n
                self._lines.append(entry)
        self._ids = [str(e.get("image_id") or str(Path(e["image"]).with_suffix("")).replace("\\", "/"))
                     for e in self._lines]
        if len(set(self._ids)) != len(self._ids):
            raise DataError(f"{self.manifest}: duplicate image ids")
        self.metadata = {"manifest": str(self.manifest)}

    def object_counts(self) -> list[int]:
        return [len(e.get("objects", [])) for e in self._lines]

    def annotation_paths(self, index: int) -> list[Path]:
        return [self.manifest]

    def image_path(self, index: int) -> Path:
        return self.base / self._lines[index]["image"]

    def _mask(self, spec: Any, height: int, width: int, where: str) -> np.ndarray:
        if not isinstance(spec, dict):
            raise DataError(f"{where}: expected an object with 'mask', 'rle' or 'polygons'")
        if "mask" in spec:
            labels = read_labels(self.base / spec["mask"])
            mask = labels == int(spec["value"]) if "value" in spec else labels != 0
            if mask.shape != (height, width):
                raise DataError(f"{where}: mask {spec['mask']} is {mask.shape[1]}x{mask.shape[0]}, "
                                f"image is {width}x{height}")
            return mask
        if "rle" in spec:
            return decode_segmentation(spec["rle"], height, width, where)
        if "polygons" in spec:
            return decode_segmentation(spec["polygons"], height, width, where)
        raise DataError(f"{where}: expected 'mask', 'rle' or 'polygons', got {sorted(spec)}")

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        entry = self._lines[index]
        where = f"{self.manifest}:{entry['_line']}"
        path = self.base / entry["image"]
        if "height" in entry and "width" in entry:
            height, width = int(entry["height"]), int(entry["width"])
        else:
            height, width = image_size(path)
        objects = []
        for k, obj in enumerate(entry.get("objects", [])):
            mask = self._mask(obj, height, width, f"{where}, object {k}")
            objects.append(ObjectAnnotation(object_id=str(obj.get("id", k)), mask=mask,
                                            category=obj.get("category"), category_id=obj.get("category_id")))
        ignore: Optional[np.ndarray] = None
        if entry.get("ignore"):
            ignore = optional_ignore(self._mask(entry["ignore"], height, width, f"{where}, ignore"))
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=height, width=width, objects=objects, ignore=ignore, path=path)
