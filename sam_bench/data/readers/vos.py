"""Video object segmentation datasets: one folder of JPEG frames per video with PNG ground truth.

Two annotation layouts (`layout`):
- `ids` (DAVIS, MOSE, YouTube-VOS, LVOS): `<annotations>/<video>/<frame>.png`, a palette PNG whose
  value is the object id (0 background, 255 void: read as background, as DAVIS's semi-supervised
  evaluation does); frames without a PNG have no ground truth. `merge_objects` makes every object
  one (DAVIS 2016 from DAVIS 2017 files).
- `per_object` (SA-V): `<annotations>/<video>/<object:03d>/<frame>.png`, one binary PNG per object
  and annotated frame (objects may overlap).

Videos come from a list file (`sequences`, one name a line: DAVIS ImageSets, SA-V's sav_val.txt),
else from a meta json (`meta`: YouTube-VOS / LVOS `{"videos": {name: ...}}`), else from the
annotation folders. An object's prompt frame is the first annotated frame where it is present
(DAVIS, SA-V, MOSE: frame 0; YouTube-VOS, LVOS: later frames too); for `per_object`, the first
frame of its folder, as sam2's `vos_inference.py` reads SA-V. A PNG whose size differs from the
frames is a DataError naming the file.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import check_complete, read_rgb
from ..types import Dataset
from ..video import VideoFrames, VideoSample

FRAME_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")
LAYOUTS = ("ids", "per_object")
VOID = 255


def _frame_order(name: str) -> tuple[int, int | str]:
    stem = Path(name).stem
    return (0, int(stem)) if stem.isdigit() else (1, stem)


def read_png_ids(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 values of a (palette) PNG; DataError naming the file if damaged or not `shape`."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    check_complete(path, "annotation")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "1", "I", "I;16"):
                im = im.convert("L")
            data = np.asarray(im, dtype=np.int32)
    except OSError as exc:
        raise DataError(f"{path}: cannot decode annotation ({exc})") from None
    if data.shape != shape:
        raise DataError(f"{path}: annotation is {data.shape[1]}x{data.shape[0]}, "
                        f"the video's frames are {shape[1]}x{shape[0]}")
    return data


@READERS.register("vos", help="video object segmentation folders: JPEG frames + palette or per-object PNGs "
                           "(DAVIS, SA-V, YouTube-VOS, LVOS, MOSE)")
class VideoFolderDataset(Dataset):
    """A VOS dataset in one of the folder layouts above; `get(i)` is one VideoSample."""

    def __init__(self, root: Path, frames: str, annotations: str, layout: str = "ids",
                 sequences: Optional[str] = None, meta: Optional[str] = None, merge_objects: bool = False,
                 frame_rule: str = "first_last", submission: str = "davis", server: Optional[str] = None,
                 contiguous: bool = True, objects_appear_later: bool = False) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"reader 'vos': layout {layout!r}; choose {LAYOUTS}")
        self.root = Path(root)
        self.frames_dir, self.annotations_dir = self.root / frames, self.root / annotations
        self.layout, self.merge_objects = layout, merge_objects
        self.frame_rule, self.submission, self.server, self.contiguous = frame_rule, submission, server, contiguous
        # objects first given on later frames: each tracked on its own (sam2's --track_object_appearing_later_in_video)
        self.objects_appear_later = objects_appear_later
        for folder, what in ((self.frames_dir, "frames"), (self.annotations_dir, "annotations")):
            if not folder.is_dir():
                raise DataError(f"{folder}: {what} folder not found")
        self._names = self._video_names(sequences, meta)
        if not self._names:
            raise DataError(f"{self.annotations_dir}: no videos found")
        self.metadata = {"videos": len(self._names), "layout": layout, "frame_rule": frame_rule,
                         "submission": submission, **({"server": server} if server else {})}

    def _video_names(self, sequences: Optional[str], meta: Optional[str]) -> list[str]:
        if sequences:
            path = self.root / sequences
            if not path.is_file():
                raise DataError(f"{path}: video list not found")
            return list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))
        if meta:
            path = self.root / meta
            try:
                return sorted(json.loads(path.read_text())["videos"])
            except FileNotFoundError:
                raise DataError(f"{path}: meta file not found") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}: not a meta file with a 'videos' object ({exc})") from None
        return sorted(p.name for p in self.annotations_dir.iterdir() if p.is_dir())

    def __len__(self) -> int:
        return len(self._names)

    def image_ids(self) -> list[str]:
        return list(self._names)

    def frame_paths(self, video: str) -> list[Path]:
        folder = self.frames_dir / video
        if not folder.is_dir():
            raise DataError(f"{folder}: frame folder of video '{video}' not found")
        paths = sorted((p for p in folder.iterdir() if p.suffix in FRAME_SUFFIXES), key=lambda p: _frame_order(p.name))
        if not paths:
            raise DataError(f"{folder}: no JPEG frames")
        return paths

    def annotation_paths(self, video: str, stems: list[str]) -> dict[int, dict[int, Path]]:
        """frame index -> {object id or 0 (the id map): PNG path}, for the annotated frames."""
        folder = self.annotations_dir / video
        index = {s: i for i, s in enumerate(stems)}
        found: dict[int, dict[int, Path]] = {}
        if not folder.is_dir():
            raise DataError(f"{folder}: annotation folder of video '{video}' not found")
        groups = ([(0, folder)] if self.layout == "ids" else
                  sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()))
        for key, where in groups:
            for png in sorted(where.glob("*.png")):
                if png.stem not in index:
                    raise DataError(f"{png}: annotation without a frame ({self.frames_dir / video}/{png.stem}.jpg "
                                    "not found)")
                found.setdefault(index[png.stem], {})[key] = png
        if not found:
            raise DataError(f"{folder}: no annotation PNGs")
        return dict(sorted(found.items()))

    def get(self, index: int) -> VideoSample:
        video = self._names[index]
        paths = self.frame_paths(video)
        with Image.open(paths[0]) as im:
            width, height = im.size
        shape = (height, width)
        stems = [p.stem for p in paths]
        annotated = self.annotation_paths(video, stems)

        def load_frame(i: int) -> np.ndarray:
            image = read_rgb(paths[i])
            if image.shape[:2] != shape:
                raise DataError(f"{paths[i]}: frame is {image.shape[1]}x{image.shape[0]}, "
                                f"the video's first frame is {width}x{height}")
            return image

        all_jpegs = all(p.suffix in FRAME_SUFFIXES for p in paths[0].parent.iterdir() if p.is_file())
        frames = VideoFrames(names=stems, paths=paths, height=height, width=width, load=load_frame,
                             folder=paths[0].parent if all_jpegs else None)
        if self.layout == "ids":
            load_annotation = lru_cache(maxsize=2)(lambda t: self._id_map(annotated[t][0], shape))
            objects: dict[int, int] = {}
            for t in annotated:
                for k in np.unique(load_annotation(t)).tolist():
                    if k != 0:
                        objects.setdefault(int(k), t)
            return VideoSample(video, frames, dict(sorted(objects.items())), list(annotated), load_annotation,
                               extra={"annotation_paths": annotated})
        object_ids = sorted({k for files in annotated.values() for k in files})
        objects = {k: min(t for t, files in annotated.items() if k in files) for k in object_ids}

        def load_objects(t: int) -> dict[int, np.ndarray]:
            files = annotated[t]
            return {k: (read_png_ids(files[k], shape) > 0 if k in files else np.zeros(shape, bool)) for k in object_ids}

        def load_annotation(t: int) -> np.ndarray:  # an id map; the lowest id wins where objects overlap
            ids = np.zeros(shape, np.int32)
            for k, mask in sorted(load_objects(t).items(), reverse=True):
                ids[mask] = k
            return ids

        return VideoSample(video, frames, objects, list(annotated), load_annotation,
                           extra={"annotation_paths": annotated}, load_objects=load_objects)

    def _id_map(self, path: Path, shape: tuple[int, int]) -> np.ndarray:
        ids = read_png_ids(path, shape)
        ids[ids == VOID] = 0
        if self.merge_objects:
            ids = (ids > 0).astype(np.int32)
        return ids

    def object_counts(self) -> Optional[list[int]]:
        return None  # counting objects reads every annotation: `data check` does it video by video
