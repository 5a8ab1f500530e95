"""SAM 2 / 2.1 video tracking: the session behind `sam2`'s VideoSegmenter side (sam2_model.py).

The tracker is sam2's own `SAM2VideoPredictor`, built by `build_sam2_video_predictor` from the
packaged config of the checkpoint, sharing the image model's weight tensors (no second copy), and
driven as sam2's `tools/vos_inference.py` drives it: `init_state`, `add_new_mask` /
`add_new_points_or_box` per object, `propagate_in_video`, mask = logits > 0. As in that script:
post-processing off by default (`video_postprocessing=true` turns on hole filling and the dynamic
multimask fallback, as `build_sam2_video_predictor`'s default does), and the predictor itself does
not resolve overlaps between objects (`non_overlap_masks=false`): the session yields every object's
logits and the `vos` task applies the script's rule for single-PNG datasets.

Frames (`--model-args frames=...`):
- `lazy` (default): `init_state` runs unchanged except that the frame container it gets is lazy:
  each frame is read and resized by sam2's own `_load_img_as_tensor` and normalised exactly as
  `load_video_frames` does, when the predictor asks for it, and not kept. Only the frame being
  encoded is in memory (the predictor caches the last frame's features).
- `folder`: `init_state(video_path=<frame folder>)`, as vos_inference.py: every frame is resized
  to the model's square input and held as float32 (12 MB per frame at 1024: 24 GB for 2,000
  frames), on the device unless `offload_video_to_cpu=true`.
- `async`: the same with `async_loading_frames=True` (a background thread reads all frames; they
  are normalised in float64 there, so inputs can differ from `folder` in the last float32 bit).
Results of `lazy` equal `folder` exactly (tests/test_sam2_video.py). Either way sam2 keeps its
memory bank for every tracked frame and object (the official predictor never evicts it): about
0.8 MB per frame and object at 1024 (bf16 memory features and 256x256 logits), on the device, or
in CPU memory with `offload_state_to_cpu=true`.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional
from unittest import mock

import numpy as np
import torch

from ..core.device import autocast
from ..data.video import VideoFrames
from ..errors import ConfigError
from .backends import import_backend
from .video import FrameLogits, FrameMasks, VideoSession

FRAME_MODES = ("lazy", "folder", "async")


def frame_mode(value: object) -> str:
    if str(value) not in FRAME_MODES:
        raise ValueError(f"expected one of {', '.join(FRAME_MODES)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Sam2VideoOptions:
    """The video predictor's settings (`--model-args`); see the module docstring."""

    vos_optimized: bool = False  # SAM2VideoPredictorVOS: every component torch.compiled (max-autotune)
    postprocessing: bool = False  # build_sam2_video_predictor(apply_postprocessing=...); vos_inference.py: off
    frames: str = "lazy"
    offload_video_to_cpu: bool = False
    offload_state_to_cpu: bool = False
    keep_corrections: bool = False  # add_all_frames_to_correct_as_cond (VideoSegmenter.keep_corrections)


def build_video_predictor(image_model: torch.nn.Module, config: str, options: Sam2VideoOptions,
                          device: torch.device) -> torch.nn.Module:
    """sam2's SAM2VideoPredictor(VOS) for `config`, holding `image_model`'s weight tensors."""
    build_sam = import_backend("sam2", "sam2.build_sam")
    predictor = build_sam.build_sam2_video_predictor(
        config, ckpt_path=None, device="cpu", apply_postprocessing=options.postprocessing,
        # Per-object logits out; overlaps are resolved by the vos task (vos_inference.py sets this
        # true only for single-PNG outputs, where it is the same rule).
        hydra_overrides_extra=["++model.non_overlap_masks=false",
                               f"++model.add_all_frames_to_correct_as_cond={str(options.keep_corrections).lower()}"],
        vos_optimized=options.vos_optimized)
    # Same config, same keys: strict. assign=True shares the tensors instead of copying them.
    predictor.load_state_dict(image_model.state_dict(), assign=True)
    return predictor.to(device).eval()


class LazyFrames(Sequence):
    """The frame container `load_video_frames` builds (normalised (3, S, S) float32 frames), with
    each frame decoded when indexed: the same sam2 calls and float32 operations per frame as its
    synchronous folder loader applies to the whole stack."""

    def __init__(self, paths: list[Path], image_size: int, device: torch.device, offload_video_to_cpu: bool,
                 read: Callable) -> None:
        self.paths, self.image_size, self.load = paths, image_size, read
        self.device = torch.device("cpu") if offload_video_to_cpu else device
        # load_video_frames' defaults (ImageNet statistics)
        self.mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32, device=self.device)[:, None, None]
        self.std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32, device=self.device)[:, None, None]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image, _, _ = self.load(str(self.paths[index]), self.image_size)
        image = image.to(self.device, torch.float32)  # the loader's float32 stack, then .to(device)
        image -= self.mean
        image /= self.std
        return image


class Sam2VideoSession(VideoSession):
    """One video open in a SAM2VideoPredictor: its inference state and the calls that change it.
    Forks of sam2's code base (EfficientTAM, EdgeTAM) reuse it by naming their own modules."""

    #: the module whose `load_video_frames` and `tqdm` the predictor's init_state / propagate_in_video use
    predictor_module = "sam2.sam2_video_predictor"
    #: the package's per-frame JPEG reader (module, function)
    frame_reader = ("sam2.utils.misc", "_load_img_as_tensor")

    def __init__(self, predictor: torch.nn.Module, frames: VideoFrames, options: Sam2VideoOptions,
                 device: torch.device, precision: str) -> None:
        self.predictor, self.device, self.precision = predictor, device, precision
        settings = {"offload_video_to_cpu": options.offload_video_to_cpu,
                    "offload_state_to_cpu": options.offload_state_to_cpu}
        if options.frames == "lazy":
            module, function = self.frame_reader
            read = getattr(importlib.import_module(module), function)
            lazy = LazyFrames(frames.paths, predictor.image_size, device, options.offload_video_to_cpu, read)
            # init_state reads files only through load_video_frames: it gets the lazy container instead.
            loader = mock.patch(f"{self.predictor_module}.load_video_frames",
                                lambda **_: (lazy, frames.height, frames.width))
            folder = str(frames.folder or Path(frames.paths[0]).parent)
        else:
            if frames.folder is None:
                raise ConfigError(f"model 'sam2' frames={options.frames} reads a folder of exactly the video's JPEG "
                                  f"frames, and this video has none ({Path(frames.paths[0]).parent}); use frames=lazy")
            loader, folder = contextlib.nullcontext(), str(frames.folder)
            settings["async_loading_frames"] = options.frames == "async"
        with loader, self._calling():
            self.state = predictor.init_state(video_path=folder, **settings)

    @contextlib.contextmanager
    def _calling(self) -> Iterator[None]:
        # The run's precision (vos_inference.py: bf16 autocast on CUDA), and no per-call tqdm bars
        # from sam2 under sam-bench's own progress display.
        with autocast(self.device, self.precision), \
                mock.patch(f"{self.predictor_module}.tqdm", _no_bar):
            yield

    def _frame_masks(self, call: Callable, **kwargs: object) -> FrameMasks:
        with self._calling():
            _, object_ids, logits = call(inference_state=self.state, **kwargs)
        masks = (logits[:, 0] > 0).cpu().numpy()
        return {int(obj): masks[i] for i, obj in enumerate(object_ids)}

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        return self._frame_masks(self.predictor.add_new_mask, frame_idx=frame, obj_id=object_id,
                                 mask=np.asarray(mask, dtype=bool))

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        return self._frame_masks(self.predictor.add_new_points_or_box, frame_idx=frame, obj_id=object_id,
                                 points=np.asarray(points, dtype=np.float32).reshape(-1, 2),
                                 labels=np.asarray(labels, dtype=np.int32).reshape(-1), clear_old_points=clear_old)

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        return self._frame_masks(self.predictor.add_new_points_or_box, frame_idx=frame, obj_id=object_id,
                                 box=np.asarray(box, dtype=np.float32).reshape(4))

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        frames = self.predictor.propagate_in_video(self.state, start_frame_idx=start_frame,
                                                   max_frame_num_to_track=max_frames, reverse=reverse)
        while True:
            # Settings apply while sam2 computes a frame, not while the caller holds it.
            with self._calling():
                step = next(frames, None)
            if step is None:
                return
            frame, object_ids, logits = step
            scores = logits[:, 0].float().cpu().numpy()
            yield int(frame), {int(obj): scores[i] for i, obj in enumerate(object_ids)}

    def close(self) -> None:
        self.state = None


def _no_bar(iterable, **_: object):
    """tqdm's call signature, no bar."""
    return iterable
