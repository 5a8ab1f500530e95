"""The per-frame baseline: video for families without a tracker (sam, sam_hq, mobile_sam, tiny, image plugins).

Each frame is segmented on its own by the image model, prompted with the previous frame's
predicted mask: its box plus its low-res logits as the mask input (SAM's own way of feeding a
mask back). It gives image models a row in video tables and SAM 2 a floor to beat; it is never an
image family's own video result, so it is labelled everywhere: `is_baseline`, and the label reads
e.g. "sam (per-frame baseline)". This is sam-bench's definition (no paper publishes one):
- A mask prompt enters through its box (an image model takes no region otherwise); the output on
  that frame is the model's mask for the box.
- Clicks: all of the object's clicks on that frame, plus its previous logits there (from an
  earlier prompt or from tracking) as mask input, as SAM 2's video predictor and the point task
  feed them; one click alone asks for three masks and keeps the highest predicted IoU.
- A box: that box alone, one mask.
- Tracking: frames in SAM 2's propagation order; a prompted frame keeps its prompt's result; an
  object whose previous frame has no mask (not given yet, or lost) has no mask (logits -1024, as
  SAM 2 fills objects without output).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch

from ..core.types import ImageEmbedding, ModelInfo, Prompts
from ..data.video import VideoFrames
from ..errors import ConfigError, DataError
from .base import Model, PromptableSegmenter, SegmenterWrapper
from .video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession

NO_MASK = -1024.0  # SAM 2's NO_OBJ_SCORE: the logit of an object without output on a frame
LABEL = "per-frame baseline"


def as_video_segmenter(model: Model) -> VideoSegmenter:
    """A tracker as it is (also under the runner's wrappers: cache, output checks); an image model
    as its labelled per-frame baseline."""
    inner: object = model
    while True:
        if isinstance(inner, VideoSegmenter):
            return inner
        if not isinstance(inner, SegmenterWrapper):
            break
        inner = inner.inner
    if isinstance(model, PromptableSegmenter):
        return PerFrameBaseline(model)
    raise ConfigError(f"model '{model.info.name}' can neither track video nor segment from prompts")


class PerFrameBaseline(VideoSegmenter):
    is_baseline = True

    def __init__(self, model: PromptableSegmenter) -> None:
        self.model = model
        self.info = ModelInfo(model.info.name, model.info.untrained, {**model.info.details, "video": LABEL},
                              qualifier=LABEL)

    def open_video(self, frames: VideoFrames) -> "PerFrameSession":
        return PerFrameSession(self.model, frames)


@dataclass
class _Track:
    """One object: its results per frame (low-res logits, and the box of the full-size mask, None
    when empty) and the prompts given on each frame."""

    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (1, h, w)
    boxes: dict[int, Optional[np.ndarray]] = field(default_factory=dict)
    prompted: set[int] = field(default_factory=set)
    clicks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class PerFrameSession(VideoSession):
    def __init__(self, model: PromptableSegmenter, frames: VideoFrames) -> None:
        self.model, self.frames = model, frames
        self.tracks: dict[int, _Track] = {}
        self._encoded: tuple[int, ImageEmbedding] | None = None  # the last frame encoded

    def _embedding(self, frame: int) -> ImageEmbedding:
        if self._encoded is None or self._encoded[0] != frame:
            self._encoded = (frame, self.model.encode(self.frames.frame(frame)))
        return self._encoded[1]

    def _decode(self, frame: int, prompts: Prompts, multimask: bool) -> torch.Tensor:
        """(B, 1, h, w) low-res logits; multimask keeps each prompt's highest predicted IoU."""
        decoded = self.model.decode(self._embedding(frame), prompts, multimask)
        if multimask:
            decoded = decoded.select_masks(decoded.iou_predictions.argmax(dim=1).cpu().numpy())
        return decoded.low_res_logits

    def _frame_logits(self, frame: int) -> FrameLogits:
        """Every object's full-size logits on `frame` (NO_MASK without a result); records the boxes
        the next frame is prompted with. Any frame's embedding gives the upsampling geometry (all
        frames have the video's size), so a prompted frame is not encoded again to be output."""
        present = [obj for obj, t in self.tracks.items() if frame in t.logits]
        out = {obj: np.full((self.frames.height, self.frames.width), NO_MASK, np.float32) for obj in self.tracks}
        if present:
            low = torch.stack([self.tracks[obj].logits[frame] for obj in present])
            full = self.model.upsample(self._encoded[1], low).float()[:, 0].cpu().numpy()
            for obj, scores in zip(present, full):
                mask = scores > self.model.mask_threshold
                self.tracks[obj].boxes[frame] = _box(mask) if mask.any() else None
                out[obj] = scores
        return out

    def _prompted(self, frame: int, object_id: int, logits: torch.Tensor) -> FrameMasks:
        track = self.tracks.setdefault(object_id, _Track())
        track.logits[frame] = logits[0].cpu()
        track.prompted.add(frame)
        scores = self._frame_logits(frame)
        return {obj: scores[obj] > self.model.mask_threshold for obj, t in self.tracks.items() if frame in t.logits}

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            raise DataError(f"video frame {self.frames.names[frame]}: the mask prompt of object {object_id} is empty")
        self.tracks.setdefault(object_id, _Track()).clicks.pop(frame, None)
        return self._prompted(frame, object_id, self._decode(frame, Prompts(boxes=_box(mask)[None]), False))

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        track = self.tracks.setdefault(object_id, _Track())
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if not clear_old and frame in track.clicks:
            points = np.concatenate([track.clicks[frame][0], points])
            labels = np.concatenate([track.clicks[frame][1], labels])
        track.clicks[frame] = (points, labels)
        previous = track.logits.get(frame)
        prompts = Prompts(points[None], labels[None], mask_logits=None if previous is None else previous[None])
        return self._prompted(frame, object_id, self._decode(frame, prompts, multimask=len(points) == 1))

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        self.tracks.setdefault(object_id, _Track()).clicks.pop(frame, None)
        box = np.asarray(box, dtype=np.float64).reshape(1, 4)
        return self._prompted(frame, object_id, self._decode(frame, Prompts(boxes=box), False))

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        if not any(t.prompted for t in self.tracks.values()):
            raise ConfigError("propagate: no object has a prompt yet")
        previous_step = 1 if reverse else -1
        for frame in _order(self.tracks, len(self.frames), start_frame, reverse, max_frames):
            live = []
            for obj, track in self.tracks.items():
                if frame in track.prompted:
                    continue
                track.logits.pop(frame, None)  # replaced by this pass, or no mask if nothing to prompt with
                track.boxes.pop(frame, None)
                if track.boxes.get(frame + previous_step) is not None:
                    live.append(obj)
            if live:
                prompts = Prompts(boxes=np.stack([self.tracks[o].boxes[frame + previous_step] for o in live]),
                                  mask_logits=torch.stack([self.tracks[o].logits[frame + previous_step] for o in live]))
                for obj, logits in zip(live, self._decode(frame, prompts, False)):
                    self.tracks[obj].logits[frame] = logits.cpu()
            yield frame, self._frame_logits(frame)

    def close(self) -> None:
        self.tracks.clear()
        self._encoded = None


def _box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def _order(tracks: dict[int, _Track], num_frames: int, start: Optional[int], reverse: bool,
           max_frames: Optional[int]) -> range:
    """SAM2VideoPredictor.propagate_in_video's processing order."""
    if start is None:
        start = min(f for t in tracks.values() for f in t.prompted)
    max_frames = num_frames if max_frames is None else max_frames
    if reverse:
        return range(start, max(start - max_frames, 0) - 1, -1) if start > 0 else range(0)
    return range(start, min(start + max_frames, num_frames - 1) + 1)
