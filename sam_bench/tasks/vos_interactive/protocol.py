"""SAM 2's promptable-video-segmentation loops (paper §6.1.1, appendix E.1.2) for one object.

Both settings start with the first interaction on the object's first annotated frame (a mask, a
box, or clicks) and count it as interacted frame 1.

- Offline: a pass propagates through the video; the not-yet-interacted candidate frame with the
  lowest J gets up to `clicks_per_frame` RITM clicks, one at a time, each against the model's
  current mask on that frame; a new pass follows; until `frames` frames were interacted with.
- Online: one forward pass; at a frame whose J is below `threshold` the pass pauses, the frame gets
  the clicks, and the pass goes on from that frame; up to `frames` interacted frames.

Round k holds the object's masks on every annotated frame once k frames were interacted with: the
pass after the k-th interaction (offline), or the run that stops interacting after k frames
(online: before pausing for interaction k + 1 the pass is first finished without clicks, which is
that run). A run that ends early (nothing left to click, no frame below the threshold, no
candidate left) repeats its last round. Clicks use sam_bench/prompts/clicks.py (RITM's rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ...data.types import ObjectAnnotation
from ...data.video import VideoSample
from ...metrics.vos import region_similarity
from ...models.video import FrameMasks, VideoSession
from ...prompts.clicks import Click
from ...prompts.video_clicks import click_object

from .options import VosInteractiveOptions as Settings

@dataclass
class Interaction:
    """One interacted frame: the prompt given there and J on it before and after."""

    frame: int
    prompt: str  # clicks | mask | box
    clicks: list[Click] = field(default_factory=list)
    j_before: Optional[float] = None  # None for the first interaction (nothing tracked yet)
    j_after: float = 0.0  # J on that frame in the round this interaction opened


@dataclass
class ObjectTruth:
    """One object's ground truth in one video, read once per frame and kept packed (1 bit/pixel)."""

    sample: VideoSample
    object_id: int
    first_frame: int
    frames: list[int]  # annotated frames from the first one on
    _packed: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, sample: VideoSample, object_id: int) -> "ObjectTruth":
        first = sample.objects[object_id]
        return cls(sample, object_id, first, [t for t in sorted(sample.annotated) if t >= first])

    @property
    def shape(self) -> tuple[int, int]:
        return self.sample.height, self.sample.width

    def mask(self, frame: int) -> np.ndarray:
        if frame not in self._packed:
            mask = self.sample.object_masks(frame).get(self.object_id)
            self._packed[frame] = pack(np.zeros(self.shape, bool) if mask is None else mask)
        return unpack(self._packed[frame], self.shape)


def pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool), axis=None)


def unpack(packed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape).astype(bool)


#: round masks: annotated frame -> packed predicted mask (frames the model did not yield are empty)
RoundMasks = dict[int, np.ndarray]


@dataclass
class ObjectRun:
    interactions: list[Interaction]
    rounds: list[RoundMasks]  # rounds[k - 1]: the masks once k frames were interacted with


def _mask_of(out: FrameMasks, object_id: int, shape: tuple[int, int]) -> np.ndarray:
    mask = out.get(object_id)
    return np.zeros(shape, bool) if mask is None else np.asarray(mask, dtype=bool)


def first_interaction(session: VideoSession, truth: ObjectTruth, settings: Settings) -> Interaction:
    """The object's first prompt, on its first annotated frame (as the `vos` task prompts)."""
    frame, gt = truth.first_frame, truth.mask(truth.first_frame)
    if settings.first == "mask":
        session.add_mask(frame, truth.object_id, gt)
    elif settings.first == "box":
        session.add_box(frame, truth.object_id, np.array(ObjectAnnotation(str(truth.object_id), gt).box, np.float64))
    else:
        return Interaction(frame, "clicks", click_object(session, frame, truth.object_id, gt, settings.clicks_per_frame))
    return Interaction(frame, settings.first)


def _pass(session: VideoSession, truth: ObjectTruth, start: int, settings: Settings) -> RoundMasks:
    """One full pass: forward from the object's first frame, or (`pass_start: interacted`) forward
    from the interacted frame and back from it to the first frame."""
    annotated = set(truth.frames)
    masks: RoundMasks = {}
    if settings.pass_start == "first_frame" or start == truth.first_frame:
        runs = [session.propagate(start_frame=truth.first_frame)]
    else:
        runs = [session.propagate(start_frame=start),
                session.propagate(start_frame=start, reverse=True, max_frames=start - truth.first_frame)]
    for run in runs:
        for frame, out in run:
            if frame in annotated:
                masks[frame] = pack(_mask_of(out, truth.object_id, truth.shape))
    return _filled(masks, truth)


def _filled(masks: RoundMasks, truth: ObjectTruth) -> RoundMasks:
    empty = pack(np.zeros(truth.shape, bool))
    return {t: masks.get(t, empty) for t in truth.frames}


def _pick(j: dict[int, float], ties: str) -> int:
    """The frame with the lowest J; among equal J the earliest (or latest) frame."""
    order = sorted(j) if ties == "earliest" else sorted(j, reverse=True)
    return min(order, key=lambda t: j[t])  # min keeps the first of equal keys


def offline(session: VideoSession, truth: ObjectTruth, settings: Settings,
            candidates: Iterable[int]) -> ObjectRun:
    """Offline setting: full passes, the worst not-yet-interacted candidate frame clicked after each."""
    pool = [t for t in candidates if t != truth.first_frame]
    interactions = [first_interaction(session, truth, settings)]
    rounds = [_pass(session, truth, truth.first_frame, settings)]
    while len(interactions) < settings.frames:
        masks = rounds[-1]
        done = {i.frame for i in interactions}
        j = {t: region_similarity(truth.mask(t), unpack(masks[t], truth.shape)) for t in pool if t not in done}
        if not j:
            break
        frame = _pick(j, settings.frame_ties)
        redo = (lambda: _pass(session, truth, frame, settings)) if settings.propagate_each_click else None
        clicks = click_object(session, frame, truth.object_id, truth.mask(frame), settings.clicks_per_frame,
                              unpack(masks[frame], truth.shape), redo)
        if not clicks:  # the worst frame is perfect: every candidate is
            break
        interactions.append(Interaction(frame, "clicks", clicks, j[frame]))
        rounds.append(_pass(session, truth, frame, settings))
    return _finished(ObjectRun(interactions, rounds), truth)


def _finished(run: ObjectRun, truth: ObjectTruth) -> ObjectRun:
    """J on each interacted frame after its interaction: in the round it opened."""
    for interaction, masks in zip(run.interactions, run.rounds):
        interaction.j_after = region_similarity(truth.mask(interaction.frame), unpack(masks[interaction.frame], truth.shape))
    return run


def online(session: VideoSession, truth: ObjectTruth, settings: Settings, candidates: Iterable[int]) -> ObjectRun:
    """Online setting: one forward pass that pauses below the threshold on candidate frames."""
    pool = set(candidates)
    interactions = [first_interaction(session, truth, settings)]
    rounds: list[RoundMasks] = []
    masks: RoundMasks = {}
    annotated = set(truth.frames)
    start = truth.first_frame
    while True:
        pause: Optional[int] = None
        # The pass runs to the end even past the pause frame: what it gives from there is the run
        # that stops interacting now (round k); the pause frame's mask is the one clicked against.
        for frame, out in session.propagate(start_frame=start):
            if frame not in annotated:
                continue
            mask = _mask_of(out, truth.object_id, truth.shape)
            masks[frame] = pack(mask)
            if (pause is None and frame != start and frame in pool and len(interactions) < settings.frames
                    and region_similarity(truth.mask(frame), mask) < settings.threshold):
                pause, pause_mask = frame, mask
        rounds.append(_filled(masks, truth))
        if pause is None:
            break
        # J < threshold <= 1 leaves an error pixel, so the pause frame always gets a click
        gt = truth.mask(pause)
        clicks = click_object(session, pause, truth.object_id, gt, settings.clicks_per_frame, pause_mask)
        interactions.append(Interaction(pause, "clicks", clicks, region_similarity(gt, pause_mask)))
        masks = {t: m for t, m in masks.items() if t < pause}  # frames before the pause are final
        start = pause
    return _finished(ObjectRun(interactions, rounds), truth)
