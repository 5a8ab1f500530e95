"""One binary mask file per object, with an optional void value: the classic interactive sets as
distributed with the RITM benchmark (GrabCut `data_GT` + `boundary_GT`, Berkeley `images` +
`masks`, DAVIS / COCO-MVal `img` + `gt`), and any dataset that stores one mask image per object.

Masks are found by the image's stem: `<masks>/<stem>.<ext>` (one object) and, with
`multi: true`, also `<masks>/<stem><separator><k>.<ext>` (one object each). A pixel is void when it
equals `void_value` (GrabCut's 128 band -> `sample.ignore`), foreground when its value is above
`threshold` and not void. With `{id}` in `images` and `masks` (BBBC038), each image has its own
folder: `images: stage1_train/{id}/images`, `masks: stage1_train/{id}/masks` (every file one object).
"""
from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .common import (IMAGE_EXTENSIONS, IndexedDataset, check_annotation_size, list_files, optional_ignore,
                     read_mask_values, require_dir, union)


@READERS.register("binary_masks", help="one binary mask file per object, optional void value (RITM sets)")
class BinaryMaskDataset(IndexedDataset):
    def __init__(self, root: Path, images: str, masks: str, void_value: Optional[int] = None,
                 threshold: int = 127, multi: bool = False, separator: str = "_",
                 skip_unmatched: bool = False) -> None:
        super().__init__(root)
        self.void_value, self.threshold = void_value, threshold
        self.metadata = {"void_value": void_value}
        if "{id}" in images:
            self._index_per_image_dirs(images, masks)
            return
        self.image_dir = require_dir(self.root, images, "image")
        self.mask_dir = require_dir(self.root, masks, "mask")
        mask_files: dict[str, list[Path]] = defaultdict(list)
        pattern = re.compile(rf"^(.*){re.escape(separator)}(\d+)$") if multi else None
        for path in list_files(self.mask_dir, IMAGE_EXTENSIONS):
            mask_files[path.stem].append(path)
            match = pattern.match(path.stem) if pattern else None
            if match:
                mask_files[match.group(1)].append(path)
        self._images: list[Path] = []
        self._masks: list[list[Path]] = []
        missing = []
        for path in list_files(self.image_dir, IMAGE_EXTENSIONS):
            found = sorted(set(mask_files.get(path.stem, [])))
            if not found:
                missing.append(path.name)
                continue
            self._images.append(path)
            self._masks.append(found)
        if missing and not skip_unmatched:
            raise DataError(f"{self.mask_dir}: no mask for {len(missing)} image(s) of {self.image_dir}, "
                            f"e.g. {', '.join(missing[:3])}")
        if not self._images:
            raise DataError(f"{self.image_dir}: no images with masks in {self.mask_dir}")
        self._ids = [p.stem for p in self._images]
        self.metadata["images_without_masks"] = len(missing)

    def _index_per_image_dirs(self, images: str, masks: str) -> None:
        """One folder per image (BBBC038: `<id>/images/<id>.png`, `<id>/masks/*.png`)."""
        base = require_dir(self.root, images.split("{id}")[0], "image")
        self._images, self._masks = [], []
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            image_dir, mask_dir = self.root / images.format(id=folder.name), self.root / masks.format(id=folder.name)
            found = list_files(image_dir) if image_dir.is_dir() else []
            if len(found) != 1:
                raise DataError(f"{image_dir}: expected exactly one image, found {len(found)}")
            mask_files = list_files(mask_dir) if mask_dir.is_dir() else []
            if not mask_files:
                raise DataError(f"{mask_dir}: no mask files for image {found[0].name}")
            self._images.append(found[0])
            self._masks.append(mask_files)
        if not self._images:
            raise DataError(f"{base}: no image folders")
        self._ids = [p.parent.parent.name for p in self._images]

    def image_path(self, index: int) -> Path:
        return self._images[index]

    def annotation_paths(self, index: int) -> list[Path]:
        return list(self._masks[index])

    def encoding_problem(self, path: Path, values: np.ndarray, void: np.ndarray) -> Optional[str]:
        """What is wrong when a mask has set pixels but none in the declared foreground (a 0/1 mask,
        or palette indices, where the dataset declares 0/255): read as declared, it is empty."""
        if ((values > self.threshold) & ~void).any() or not ((values != 0) & ~void).any():
            return None
        found = np.unique(values)
        shown = ", ".join(map(str, found[:6])) + (", ..." if len(found) > 6 else "")
        declared = f"foreground > {self.threshold}" + (f", void {self.void_value}" if self.void_value is not None else "")
        return (f"{path}: mask values {{{shown}}} do not match the declared encoding ({declared}); "
                "read as declared it is empty (a 0/1 or palette-index mask?)")

    def check_encoding(self, index: int) -> list[str]:
        """The encoding problems of image `index`'s masks (reads only the mask files; `data check`)."""
        problems = []
        for path in self._masks[index]:
            values = read_mask_values(path)
            void = values == self.void_value if self.void_value is not None else np.zeros(values.shape, bool)
            problems += [p for p in [self.encoding_problem(path, values, void)] if p]
        return problems

    def object_counts(self) -> list[int]:
        return [len(m) for m in self._masks]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        objects, voids = [], []
        shape = None
        for path in self._masks[index]:
            values = read_mask_values(path)
            if shape is not None and values.shape != shape:
                raise DataError(f"{path}: size {values.shape} differs from the image's other masks {shape}")
            shape = values.shape
            void = values == self.void_value if self.void_value is not None else np.zeros(shape, bool)
            problem = self.encoding_problem(path, values, void)
            objects.append(ObjectAnnotation(object_id=path.stem, mask=(values > self.threshold) & ~void,
                                            extra={"encoding_problem": problem} if problem else {}))
            voids.append(void)
        assert shape is not None
        path = self._images[index]
        check_annotation_size(self._masks[index][0], "mask", shape, path)
        # A pixel void for one object's mask is void for the image: the sets have one object each.
        ignore = optional_ignore(union(voids, shape))
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=shape[0], width=shape[1], objects=objects, ignore=ignore, path=path)
