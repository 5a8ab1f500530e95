"""Hypersim: `<scene>/images/scene_<cam>_final_preview/frame.<n>.tonemap.jpg` with instance ids in
`<scene>/images/scene_<cam>_geometry_hdf5/frame.<n>.semantic_instance.hdf5` (dataset "dataset",
-1 = no instance). Scenes are `ai_<volume>_<scene>`; the paper used Evermotion volumes 1-55
except 20, 25, 40 and 49. Reading HDF5 needs h5py (`pip install h5py`), imported only here.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .common import IndexedDataset

SCENE = re.compile(r"^ai_(\d{3})_(\d{3})$")


def read_instance_hdf5(path: Path) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise ConfigError("the hypersim reader needs h5py to read .hdf5 files: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["dataset"][()]).astype(np.int64)
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: cannot read Hypersim instance map ({exc})") from None


@READERS.register("hypersim", help="Hypersim tonemapped frames + semantic_instance.hdf5 (needs h5py)")
class HypersimDataset(IndexedDataset):
    def __init__(self, root: Path, volumes: Sequence[int] = tuple(range(1, 56)),
                 exclude_volumes: Sequence[int] = (20, 25, 40, 49), min_area: int = 0,
                 scenes: Optional[Sequence[str]] = None) -> None:
        super().__init__(root)
        keep = set(volumes) - set(exclude_volumes)
        self.min_area = min_area
        self._pairs: list[tuple[Path, Path]] = []
        for scene in sorted(p for p in self.root.iterdir() if p.is_dir()):
            m = SCENE.match(scene.name)
            if not m or int(m.group(1)) not in keep or (scenes is not None and scene.name not in scenes):
                continue
            for hdf5 in sorted((scene / "images").glob("scene_*_geometry_hdf5/frame.*.semantic_instance.hdf5")):
                cam = hdf5.parent.name[: -len("_geometry_hdf5")]
                frame = hdf5.name.split(".")[1]
                image = scene / "images" / f"{cam}_final_preview" / f"frame.{frame}.tonemap.jpg"
                if image.is_file():
                    self._pairs.append((image, hdf5))
        if not self._pairs:
            raise DataError(f"{self.root}: no Hypersim frames (ai_VVV_SSS/images/scene_cam_XX_final_preview/"
                            "frame.NNNN.tonemap.jpg with a matching semantic_instance.hdf5) for the chosen volumes")
        self._ids = [f"{img.parents[2].name}/{img.parent.name[:-len('_final_preview')]}/{img.name.split('.')[1]}"
                     for img, _ in self._pairs]
        self._counts: Optional[list[int]] = None
        self.metadata = {"volumes": sorted(keep)}

    def object_counts(self) -> list[int]:
        if self._counts is None:
            self._counts = []
            for _, hdf5 in self._pairs:
                ids, areas = np.unique(read_instance_hdf5(hdf5), return_counts=True)
                self._counts.append(int(((ids >= 0) & (areas >= self.min_area)).sum()))
        return self._counts

    def image_path(self, index: int) -> Path:
        return self._pairs[index][0]

    def annotation_paths(self, index: int) -> list[Path]:
        return [self._pairs[index][1]]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        image, hdf5 = self._pairs[index]
        labels = read_instance_hdf5(hdf5)
        ids, areas = np.unique(labels, return_counts=True)
        objects = [ObjectAnnotation(object_id=str(int(i)), mask=labels == i)
                   for i, a in zip(ids.tolist(), areas.tolist()) if i >= 0 and a >= self.min_area]
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, image),
                           height=labels.shape[0], width=labels.shape[1], objects=objects, path=image)
