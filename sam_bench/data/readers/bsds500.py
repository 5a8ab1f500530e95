"""BSDS500: `images/<split>/<id>.jpg` + `groundTruth/<split>/<id>.mat` (MATLAB cell `groundTruth{k}`
with `Segmentation`, region labels 1..n, and `Boundaries`, 0/1), 4-9 annotators per image.

Objects are the regions of the chosen annotators (`annotators: all | first | <index>`); the edge
ground truth of every annotator is always in `sample.edges`, whatever `annotators` says,
because the edge benchmark scores against all of them.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Union

import numpy as np
import scipy.io

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import EdgeTruth, ImageSample, ObjectAnnotation
from .common import IndexedDataset, require_dir


def read_bsds_mat(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(segmentation uint16 (H, W), boundaries bool (H, W)) per annotator]."""
    try:
        cell = scipy.io.loadmat(str(path))["groundTruth"]
        out = []
        for entry in np.asarray(cell).ravel():
            seg = np.asarray(entry["Segmentation"].ravel()[0])
            bnd = np.asarray(entry["Boundaries"].ravel()[0]).astype(bool)
            out.append((seg, bnd))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{path}: not a BSDS500 groundTruth .mat file ({type(exc).__name__}: {exc})") from None
    if not out:
        raise DataError(f"{path}: groundTruth cell is empty")
    shapes = {s.shape for s, b in out} | {b.shape for s, b in out}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise DataError(f"{path}: annotators' Segmentation/Boundaries sizes disagree: {sorted(shapes)}")
    return out


@READERS.register("bsds500", help="BSDS500 images + groundTruth .mat (regions and boundaries)")
class BSDS500Dataset(IndexedDataset):
    def __init__(self, root: Path, split: str = "test", annotators: Union[str, int] = "all") -> None:
        super().__init__(root)
        if not (annotators in ("all", "first") or isinstance(annotators, int)):
            raise ConfigError(f"bsds500 reader: annotators must be 'all', 'first' or an index, got {annotators!r}")
        self.annotators = annotators
        self.image_dir = require_dir(self.root, Path("images") / split, "BSDS500 image")
        self.gt_dir = require_dir(self.root, Path("groundTruth") / split, "BSDS500 groundTruth")
        mats = sorted(self.gt_dir.glob("*.mat"))
        if not mats:
            raise DataError(f"{self.gt_dir}: no .mat files")
        self._ids = [m.stem for m in mats]
        self._counts: list[int] | None = None
        self.metadata = {"split": split, "annotators": annotators}

    def _chosen(self, n: int, where: Path) -> list[int]:
        if self.annotators == "all":
            return list(range(n))
        if self.annotators == "first":
            return [0]
        if not 0 <= int(self.annotators) < n:
            raise DataError(f"{where}: has {n} annotators, annotator index {self.annotators} asked for")
        return [int(self.annotators)]

    def object_counts(self) -> list[int]:
        if self._counts is None:  # regions per annotator: reads the small .mat files, no masks built
            self._counts = []
            for i in self._ids:
                path = self.gt_dir / f"{i}.mat"
                truth = read_bsds_mat(path)
                self._counts.append(sum(len(np.unique(truth[k][0])) for k in self._chosen(len(truth), path)))
        return self._counts

    def image_path(self, index: int) -> Path:
        stem = self._ids[index]
        for ext in (".jpg", ".png", ".jpeg"):
            path = self.image_dir / f"{stem}{ext}"
            if path.is_file():
                return path
        return self.image_dir / f"{stem}.jpg"

    def annotation_paths(self, index: int) -> list[Path]:
        return [self.gt_dir / f"{self._ids[index]}.mat"]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        stem = self._ids[index]
        mat = self.gt_dir / f"{stem}.mat"
        truth = read_bsds_mat(mat)
        height, width = truth[0][0].shape
        objects = []
        for k in self._chosen(len(truth), mat):
            seg = truth[k][0]
            for label in np.unique(seg):
                objects.append(ObjectAnnotation(object_id=f"a{k}_r{int(label)}", mask=seg == label,
                                                extra={"annotator": k, "region": int(label)}))
        path = self.image_path(index)
        return ImageSample(image_id=stem, load_image=functools.partial(read_rgb, path), height=height,
                           width=width, objects=objects, path=path,
                           edges=EdgeTruth([b for _, b in truth], mat))
