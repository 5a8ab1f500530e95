"""`toy_still`: a video model whose objects never move: each keeps its last prompt's mask on every
frame (the zero-motion floor of video object segmentation).

Weight-free, so it shows only the mechanics of a video plugin: a VideoSegmenter registered in
MODELS, whose sessions take mask / click / box prompts and yield per-object logits in SAM 2's
propagation order (see docs/plugins.md, section 4).
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch

from sam_bench.core.types import ModelInfo
from sam_bench.data.video import VideoFrames
from sam_bench.models.base import weight_free
from sam_bench.models.video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession
from sam_bench.registry import MODELS

RADIUS = 20.0  # pixels of the disk a click prompt gives


class StillSession(VideoSession):
    def __init__(self, frames: VideoFrames) -> None:
        self.frames = frames
        self.masks: dict[int, tuple[int, np.ndarray]] = {}  # object -> (prompt frame, mask)

    def _prompt(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        self.masks[object_id] = (frame, mask)
        return {obj: m for obj, (_, m) in self.masks.items()}

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        return self._prompt(frame, object_id, np.asarray(mask, dtype=bool))

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        positive = np.asarray(points, dtype=float).reshape(-1, 2)[np.asarray(labels).reshape(-1) == 1]
        ys, xs = np.mgrid[:self.frames.height, :self.frames.width] + 0.5
        mask = np.zeros((self.frames.height, self.frames.width), bool)
        if len(positive):
            cx, cy = positive.mean(axis=0)
            mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= RADIUS ** 2
        return self._prompt(frame, object_id, mask)

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        x0, y0, x1, y1 = np.asarray(box, dtype=float).reshape(4).round().astype(int)
        mask = np.zeros((self.frames.height, self.frames.width), bool)
        mask[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
        return self._prompt(frame, object_id, mask)

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        # SAM2VideoPredictor.propagate_in_video's frame order.
        start = min(f for f, _ in self.masks.values()) if start_frame is None else start_frame
        span = len(self.frames) if max_frames is None else max_frames
        order = (range(start, max(start - span, 0) - 1, -1) if start > 0 else range(0)) if reverse else \
            range(start, min(start + span, len(self.frames) - 1) + 1)
        for frame in order:
            yield frame, {obj: np.where(mask, 1.0, -1.0).astype(np.float32) for obj, (_, mask) in self.masks.items()}


class StillTracker(VideoSegmenter):
    def __init__(self) -> None:
        self.info = ModelInfo("toy_still", untrained=False, details={"family": "toy still"})

    def open_video(self, frames: VideoFrames) -> StillSession:
        return StillSession(frames)


@MODELS.register("toy_still", help="example video plugin: every object keeps its prompt's mask on every frame")
def build(checkpoint: str | None = None, device: torch.device = torch.device("cpu"), precision: str = "fp32",
          batch_size: int | None = None, **model_args: str) -> StillTracker:
    weight_free("toy_still", checkpoint, model_args)
    return StillTracker()
