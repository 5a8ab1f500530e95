"""A scripted VideoSegmenter for the `vos` task's tests: its masks are known in advance.

Each object's mask on frame t is its prompt mask moved SHIFT * (t - prompt frame) pixels to the
right (np.roll); a box prompt gives the filled box, clicks a 15 px square around each positive
click. `VOS_SCRIPTED_LOG` (a file) records every video opened; `VOS_SCRIPTED_DELAY` sleeps per frame.
"""
from __future__ import annotations

import os
import time
from typing import Iterator, Optional

import numpy as np

from sam_bench.core.types import ModelInfo
from sam_bench.models.video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession
from sam_bench.registry import MODELS

SHIFT = 3


def expected_mask(prompt_mask: np.ndarray, prompt_frame: int, frame: int) -> np.ndarray:
    return np.roll(prompt_mask, SHIFT * (frame - prompt_frame), axis=1)


class ScriptedSession(VideoSession):
    def __init__(self, frames) -> None:
        self.frames = frames
        self.prompts: dict[int, tuple[int, np.ndarray]] = {}

    def _set(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        self.prompts[object_id] = (frame, mask.astype(bool))
        return {k: m for k, (t, m) in self.prompts.items() if t == frame}

    def add_mask(self, frame, object_id, mask):
        return self._set(frame, object_id, mask)

    def add_box(self, frame, object_id, box):
        mask = np.zeros((self.frames.height, self.frames.width), bool)
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[y0:y1, x0:x1] = True
        return self._set(frame, object_id, mask)

    def add_points(self, frame, object_id, points, labels, clear_old=False):
        old = self.prompts.get(object_id)
        mask = np.zeros((self.frames.height, self.frames.width), bool) if clear_old or old is None else old[1].copy()
        for (x, y), label in zip(points.astype(int), labels):
            mask[max(0, y - 7):y + 8, max(0, x - 7):x + 8] = bool(label)
        return self._set(frame, object_id, mask)

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        """Logits +1 inside the scripted mask, -1 outside (so masks are exactly the scripted ones)."""
        delay = float(os.environ.get("VOS_SCRIPTED_DELAY", "0"))
        start = min(t for t, _ in self.prompts.values()) if start_frame is None else start_frame
        for t in range(start, len(self.frames)):
            self.frames.frame(t)  # read the frame as a real tracker would
            time.sleep(delay)
            yield t, {k: np.where(expected_mask(m, t0, t), 1.0, -1.0).astype(np.float32)
                      for k, (t0, m) in self.prompts.items() if t >= t0}


class ScriptedSegmenter(VideoSegmenter):
    info = ModelInfo("scripted_vos", untrained=False)

    def open_video(self, frames) -> VideoSession:
        log = os.environ.get("VOS_SCRIPTED_LOG")
        if log:
            with open(log, "a") as f:
                f.write(frames.paths[0].parent.name + "\n")
        return ScriptedSession(frames)


if "scripted_vos" not in MODELS.names():
    MODELS.register("scripted_vos")(lambda **kwargs: ScriptedSegmenter())
