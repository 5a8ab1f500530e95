"""transformers' video trackers behind the VideoSegmenter interface: `hf --checkpoint DIR` where DIR
is a local save_pretrained directory of `Sam2VideoModel` or `Sam3TrackerVideoModel` (with its processor).

Each step is the documented transformers path: `processor.init_video_session`,
`processor.add_inputs_to_inference_session` then `model(inference_session=..., frame_idx=...)` on
the prompted frame, `model.propagate_in_video_iterator`, `processor.post_process_masks(...,
binarize=False)` to the video's size, mask = logits > 0. One difference, for memory: the session's
frame store (`processed_frames`, a dict that init_video_session fills with every preprocessed frame,
4 MB each at 1024) is a lazy mapping here that runs the processor's own video processor on one frame
when the model asks for it (tests/test_hf_video.py: equal to the session made from the whole video).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Iterator, Optional

import numpy as np
import torch

from ..core.device import autocast
from ..core.types import ModelInfo
from ..data.video import VideoFrames
from .video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession

#: config.json architecture -> family name in reports
VIDEO_FAMILIES = {"Sam2VideoModel": "SAM 2 video (transformers)",
                  "Sam3TrackerVideoModel": "SAM 3 tracker video (transformers)"}


class HFVideoSegmenter(VideoSegmenter):
    def __init__(self, model: torch.nn.Module, processor, info: ModelInfo, device: torch.device,
                 precision: str = "fp32") -> None:
        self.model, self.processor, self.info = model.to(device).eval(), processor, info
        self.device, self.precision = device, precision

    def open_video(self, frames: VideoFrames) -> "HFVideoSession":
        return HFVideoSession(self, frames)


class LazyProcessedFrames(Mapping):
    """frame index -> the video processor's (3, S, S) output for that frame alone, on request."""

    def __init__(self, processor, frames: VideoFrames, device: torch.device) -> None:
        self.processor, self.frames, self.device = processor, frames, device

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.frames)))

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.frames):
            raise KeyError(index)
        # On the inference device, where init_video_session processes by default (resizing on a GPU
        # rounds differently from the CPU).
        video = self.processor.video_processor(videos=[self.frames.frame(index)[None]], device=self.device,
                                               return_tensors="pt")
        # The session stores frames with .to(video_storage_device, dtype=session dtype).
        return video.pixel_values_videos[0, 0].to(self.device, torch.float32)


class HFVideoSession(VideoSession):
    def __init__(self, owner: HFVideoSegmenter, frames: VideoFrames) -> None:
        self.model, self.processor = owner.model, owner.processor
        self.device, self.precision = owner.device, owner.precision
        self.session = self.processor.init_video_session(inference_device=self.device)
        self.session.processed_frames = LazyProcessedFrames(self.processor, frames, self.device)
        self.session.video_height, self.session.video_width = frames.height, frames.width

    def _logits(self, output) -> FrameLogits:
        full = self.processor.post_process_masks(
            [output.pred_masks], original_sizes=[[self.session.video_height, self.session.video_width]],
            binarize=False)[0]
        scores = full[:, 0].float().cpu().numpy()
        return {int(obj): scores[i] for i, obj in enumerate(output.object_ids)}

    def _prompt(self, frame: int, object_id: int, **inputs: object) -> FrameMasks:
        self.processor.add_inputs_to_inference_session(self.session, frame_idx=frame, obj_ids=object_id, **inputs)
        with torch.inference_mode(), autocast(self.device, self.precision):
            output = self.model(inference_session=self.session, frame_idx=frame)
        return {obj: scores > 0 for obj, scores in self._logits(output).items()}

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        return self._prompt(frame, object_id, input_masks=np.asarray(mask, dtype=bool))

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        # Nesting of the processor: image, object, point, coordinate.
        return self._prompt(frame, object_id, input_points=[[np.asarray(points, dtype=float).reshape(-1, 2).tolist()]],
                            input_labels=[[np.asarray(labels, dtype=int).reshape(-1).tolist()]],
                            clear_old_inputs=clear_old)

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        return self._prompt(frame, object_id, input_boxes=[[np.asarray(box, dtype=float).reshape(4).tolist()]])

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        outputs = self.model.propagate_in_video_iterator(self.session, start_frame_idx=start_frame,
                                                         max_frame_num_to_track=max_frames, reverse=reverse)
        while True:
            with autocast(self.device, self.precision):
                output = next(outputs, None)
            if output is None:
                return
            yield int(output.frame_idx), self._logits(output)

    def close(self) -> None:
        self.session = None
