"""Per-image label PNGs: instance-id maps (`instance_png`) and semantic maps split into objects
(`semantic_png`).

Images and label files are paired by relative path: `<images>/<id><image_suffix>` with
`<annotations>/<id><annotation_suffix>` (see `common.pair_files`); `include` keeps only ids
matching one of its glob patterns.

`instance_png` encodings:
- `ids`: every distinct value is one instance (CVPPP leaves, plain instance maps);
- `colour`: every distinct RGB colour is one instance;
- `cityscapes`: value >= 1000 is class*1000 + instance; a value < 1000 is the class id of a region
  without instances: a `stuff` class (one object, panoptic-style) or a crowd region of a `things`
  class (void by default, `crowd: drop` to leave it as background);
- `class_instance_channels`: R = class, G = instance id (0 = none), as in the ADE20K instance
  annotations.
Values (or classes) in `void` become `sample.ignore`; those in `background` are neither.
`semantic_png`: each class value (not background/void) is one object, or with `components: true`
each connected component of it (GTEA hands, EgoHOS, DRAM).
"""
from __future__ import annotations

import fnmatch
import functools
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .common import IndexedDataset, check_annotation_size, optional_ignore, pair_files, read_labels

ENCODINGS = ("ids", "colour", "cityscapes", "class_instance_channels")


class _LabelPngDataset(IndexedDataset):
    def __init__(self, root: Path, images: str, annotations: str, image_suffix: Union[str, list, None],
                 annotation_suffix: str, include: Optional[Sequence[str]], recursive: bool,
                 categories: Optional[dict[Any, str]]) -> None:
        super().__init__(root)
        pairs = pair_files(self.root, images, annotations, image_suffix, annotation_suffix, recursive)
        if include:
            kept = [p for p in pairs if any(fnmatch.fnmatch(p[0], pat) for pat in include)]
            if pairs and not kept:
                raise DataError(f"{self.root / images}: none of {len(pairs)} images matches include {list(include)}")
            pairs = kept
        if not pairs:
            raise DataError(f"{self.root}: no image in '{images}' has a label file "
                            f"'{annotations}/<id>{annotation_suffix}'")
        self._ids = [p[0] for p in pairs]
        self._images = [p[1] for p in pairs]
        self._labels = [p[2] for p in pairs]
        self.category_names = {int(k): str(v) for k, v in (categories or {}).items()}
        self._counts: Optional[list[int]] = None

    # subclasses: (object id, category id, mask) list and the void mask of one label map
    def _objects(self, labels: np.ndarray) -> tuple[list[tuple[str, Optional[int], np.ndarray]], np.ndarray]:
        raise NotImplementedError

    def _read(self, index: int) -> np.ndarray:
        return read_labels(self._labels[index])

    def image_path(self, index: int) -> Path:
        return self._images[index]

    def annotation_paths(self, index: int) -> list[Path]:
        return [self._labels[index]]

    def object_counts(self) -> list[int]:
        if self._counts is None:
            self._counts = [self._count(self._read(i)) for i in range(len(self))]
        return self._counts

    def _count(self, labels: np.ndarray) -> int:
        return len(self._objects(labels)[0])

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        labels = self._read(index)
        found, void = self._objects(labels)
        objects = [ObjectAnnotation(object_id=oid, mask=mask, category_id=cid,
                                    category=self.category_names.get(cid) if cid is not None else None,
                                    extra={"label_file": str(self._labels[index])})
                   for oid, cid, mask in found]
        path = self._images[index]
        check_annotation_size(self._labels[index], "label map", labels.shape, path)
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=labels.shape[0], width=labels.shape[1], objects=objects,
                           ignore=optional_ignore(void), path=path)


@READERS.register("instance_png", help="instance-id label PNGs (plain ids, colours, Cityscapes, ADE20K)")
class InstancePngDataset(_LabelPngDataset):
    def __init__(self, root: Path, images: str, annotations: str, encoding: str = "ids",
                 image_suffix: Union[str, list, None] = None, annotation_suffix: str = ".png",
                 background: Sequence[int] = (0,), void: Sequence[int] = (), things: Optional[Sequence[int]] = None,
                 stuff: Sequence[int] = (), crowd: str = "ignore", min_area: int = 0,
                 include: Optional[Sequence[str]] = None, recursive: bool = True,
                 categories: Optional[dict[Any, str]] = None) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"instance_png reader: encoding must be one of {ENCODINGS}, got '{encoding}'")
        if crowd not in ("ignore", "drop"):
            raise ConfigError(f"instance_png reader: crowd must be 'ignore' or 'drop', got '{crowd}'")
        super().__init__(root, images, annotations, image_suffix, annotation_suffix, include, recursive, categories)
        self.encoding, self.crowd, self.min_area = encoding, crowd, min_area
        self.background, self.void, self.stuff = set(background), set(void), set(stuff)
        self.things = None if things is None else set(things)
        self.metadata = {"encoding": encoding}

    def _read(self, index: int) -> np.ndarray:
        return read_labels(self._labels[index], colour=self.encoding in ("colour", "class_instance_channels"))

    def _classify(self, value: int) -> tuple[str, Optional[int], Optional[str]]:
        """(kind, class id, object id) of one label value; kind: object, void or background."""
        if self.encoding in ("ids", "colour"):
            if value in self.void:
                return "void", None, None
            if value in self.background:
                return "background", None, None
            return "object", None, str(value)
        if self.encoding == "class_instance_channels":
            cls, inst = value >> 16, (value >> 8) & 255
            if cls in self.void:
                return "void", cls, None
            if inst == 0 or cls in self.background or (self.things is not None and cls not in self.things):
                return "background", cls, None
            return "object", cls, str(inst)
        cls = value // 1000 if value >= 1000 else value  # cityscapes
        if cls in self.void:
            return "void", cls, None
        if value >= 1000:
            if self.things is not None and cls not in self.things:
                return "background", cls, None
            return "object", cls, str(value)
        if cls in self.stuff:
            return "object", cls, str(value)
        if self.things is not None and cls in self.things:  # a crowd region of a thing class
            return ("void" if self.crowd == "ignore" else "background"), cls, None
        return "background", cls, None

    def _objects(self, labels: np.ndarray) -> tuple[list[tuple[str, Optional[int], np.ndarray]], np.ndarray]:
        values, areas = np.unique(labels, return_counts=True)
        void = np.zeros(labels.shape, bool)
        found: dict[str, tuple[Optional[int], np.ndarray]] = {}
        for value, area in zip(values.tolist(), areas.tolist()):
            kind, cls, oid = self._classify(value)
            if kind == "void":
                void |= labels == value
            elif kind == "object" and area >= self.min_area:
                mask = labels == value
                if oid in found:  # ADE20K: an instance id is unique per image, whatever its class
                    raise DataError(f"instance {oid} has more than one class in the label file")
                found[oid] = (cls, mask)
        return [(oid, cls, mask) for oid, (cls, mask) in found.items()], void

    def _count(self, labels: np.ndarray) -> int:  # no masks built: classify the distinct values
        values, areas = np.unique(labels, return_counts=True)
        found = set()
        for value, area in zip(values.tolist(), areas.tolist()):
            kind, _, oid = self._classify(value)
            if kind == "object" and area >= self.min_area:
                found.add(oid)
        return len(found)


@READERS.register("semantic_png", help="semantic label PNGs, one object per class or per connected component")
class SemanticPngDataset(_LabelPngDataset):
    def __init__(self, root: Path, images: str, annotations: str, image_suffix: Union[str, list, None] = None,
                 annotation_suffix: str = ".png", background: Sequence[int] = (0,), void: Sequence[int] = (255,),
                 classes: Optional[Sequence[int]] = None, components: bool = False, connectivity: int = 8,
                 min_area: int = 0, include: Optional[Sequence[str]] = None, recursive: bool = True,
                 categories: Optional[dict[Any, str]] = None) -> None:
        if connectivity not in (4, 8):
            raise ConfigError(f"semantic_png reader: connectivity must be 4 or 8, got {connectivity}")
        super().__init__(root, images, annotations, image_suffix, annotation_suffix, include, recursive, categories)
        self.background, self.void = set(background), set(void)
        self.classes = None if classes is None else set(classes)
        self.components, self.connectivity, self.min_area = components, connectivity, min_area
        self.metadata = {"components": components, "connectivity": connectivity, "min_area": min_area}

    def _objects(self, labels: np.ndarray) -> tuple[list[tuple[str, Optional[int], np.ndarray]], np.ndarray]:
        void = np.isin(labels, list(self.void)) if self.void else np.zeros(labels.shape, bool)
        found = []
        for value in np.unique(labels).tolist():
            if value in self.void or value in self.background or (self.classes is not None and value not in self.classes):
                continue
            mask = labels == value
            if not self.components:
                if mask.sum() >= self.min_area:
                    found.append((f"c{value}", value, mask))
                continue
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=self.connectivity)
            for k in range(1, n):  # component 0 is everything else
                if stats[k, cv2.CC_STAT_AREA] >= self.min_area:
                    found.append((f"c{value}_{k}", value, comp == k))
        return found, void
