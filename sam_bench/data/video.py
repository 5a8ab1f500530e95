"""The video-dataset interface: what video readers produce and video tasks (`vos`, ...) consume.

A video is read lazily: `VideoFrames.frame(i)` decodes one frame when asked, so a 2,000-frame video
is never held in memory at full resolution by the harness. Ground truth is likewise read per frame.
A `VideoSample` stands in a dataset where an `ImageSample` would: the runner's progress records,
sharding and resume key on `image_id`, which for a video is its video id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np


@dataclass
class VideoFrames:
    """The frames of one video, in order, decoded on demand."""

    names: list[str]  # frame stems in order ("00000", ...): prediction files are named after them
    paths: list[Path]  # one image file per frame
    height: int
    width: int
    load: Callable[[int], np.ndarray]  # frame index -> (H, W, 3) uint8 RGB
    folder: Optional[Path] = None  # the frame folder, when the frames are exactly its JPEG files (sam2's init_state reads it)

    def __len__(self) -> int:
        return len(self.names)

    def frame(self, index: int) -> np.ndarray:
        return self.load(index)


@dataclass
class VideoSample:
    """One video with the objects to track and the frames that have ground truth."""

    video_id: str
    frames: VideoFrames
    objects: dict[int, int]  # object id -> index of the frame where it is first given (its prompt frame)
    annotated: list[int]  # frame indices with ground truth (all frames in DAVIS; every 4th at 24 fps in SA-V)
    load_annotation: Callable[[int], np.ndarray]  # annotated frame index -> (H, W) int32 object ids, 0 background
    extra: dict[str, Any] = field(default_factory=dict)  # reader detail (e.g. SA-V's per-object file layout)
    # annotated frame index -> {object id: (H, W) bool}: per-object ground truth where objects may
    # overlap (SA-V's one PNG per object); None: split `load_annotation`'s id map
    load_objects: Optional[Callable[[int], dict[int, np.ndarray]]] = None

    def object_masks(self, frame: int) -> dict[int, np.ndarray]:
        """Each object's ground-truth mask on an annotated frame (empty where it is absent)."""
        if self.load_objects is not None:
            return self.load_objects(frame)
        ids = self.load_annotation(frame)
        return {k: ids == k for k in self.objects}

    @property
    def image_id(self) -> str:  # the runner's item key
        return self.video_id

    @property
    def height(self) -> int:
        return self.frames.height

    @property
    def width(self) -> int:
        return self.frames.width
