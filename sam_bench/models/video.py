"""The video capability: models that track objects through a video (SAM 2's memory, SAM 3's tracker).

A `VideoSegmenter` opens one video at a time as a `VideoSession`. Prompts (a mask, points with
labels, or a box) are added for object k on frame t, objects may be added on later frames, and
`propagate` yields every frame's mask per object. A prompt added after a propagation corrects the
track (SAM 2's interactive use); propagating again re-runs from the given frame. Each family's
adapter drives its own video predictor exactly as that family's inference script does.
Families without a tracker get a labelled per-frame baseline (models/video_baseline.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator, Optional

import numpy as np

from ..data.video import VideoFrames
from .base import Model

#: {object id: (H, W) bool mask at the video's resolution} on one frame
FrameMasks = dict[int, np.ndarray]
#: {object id: (H, W) float32 mask logits at the video's resolution} on one frame; mask = logits > 0
FrameLogits = dict[int, np.ndarray]


class VideoSession(ABC):
    """The tracking state of one open video."""

    @abstractmethod
    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        """mask: (H, W) bool. Returns the masks of every prompted object on that frame after the prompt."""

    @abstractmethod
    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        """points: (N, 2) float (x, y) in frame pixels; labels: (N,) 1 foreground / 0 background.
        `clear_old=False` adds to the object's earlier clicks on that frame (corrective clicks)."""

    @abstractmethod
    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        """box: (4,) x0 y0 x1 y1 in frame pixels."""

    @abstractmethod
    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        """(frame index, logits per object) for each frame tracked, in tracking order, with the
        arguments of SAM2VideoPredictor.propagate_in_video: from `start_frame` (default: the earliest
        prompted frame), forward or `reverse`, over at most `max_frames` + 1 frames. Objects come in
        the order they were first prompted (SAM 2's object index order). Logits, not masks, because
        combining objects into one label map needs scores: tools/vos_inference.py keeps, per pixel,
        only the highest-scoring object (ties: the first in that order) before thresholding at 0."""

    def propagate(self, start_frame: Optional[int] = None, reverse: bool = False,
                  max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameMasks]]:
        """(frame index, masks per object) for each frame tracked, in tracking order."""
        for frame, logits in self.propagate_logits(start_frame, reverse, max_frames):
            yield frame, {obj: scores > 0 for obj, scores in logits.items()}

    def close(self) -> None:
        """Release the video's state (frames, memory bank)."""

    def __enter__(self) -> "VideoSession":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class VideoSegmenter(Model):
    """A model with a video predictor: opens a video and tracks prompted objects through it."""

    #: True for the per-frame baseline given to image-only families: reports must never show it as
    #: that family's own video result.
    is_baseline: bool = False

    @abstractmethod
    def open_video(self, frames: VideoFrames) -> VideoSession: ...

    def keep_corrections(self) -> None:
        """Sessions opened from now on make a frame that gets prompts after it was tracked a prompted
        frame, kept and remembered by later propagations, as SAM 2 is trained and its demo runs.
        sam2's released video predictor defaults to the opposite (`add_all_frames_to_correct_as_cond`
        false): such a correction lasts until the next propagation re-tracks the frame (sam2 issues
        #719, #731). Interactive tasks (vos_interactive) call this once; a model whose corrections
        always persist needs nothing."""
