"""One video of the `vos` task: prompt each object on its first annotated frame, propagate, write the
predictions in the dataset's submission layout, and score J and F per object on its scored frames.

Two ways of tracking, as sam2's tools/vos_inference.py: all objects in one session (objects given on
the first frame; where masks overlap the lowest id wins in an id map), or, for datasets whose
objects appear later (its --track_object_appearing_later_in_video: YouTube-VOS, LVOS), each object
in its own session from its prompt frame forward, then per pixel only the highest-scoring object is
kept (ties: the lowest id) before thresholding the logits at 0.

Scoring a folder made elsewhere reads the same files the run would have written and goes through the
same per-frame scoring, so both give the same numbers for the same masks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from ...data.video import VideoSample
from ...data.vos_submission import read_frame, write_frame
from ...errors import DataError
from ...metrics.vos import ObjectScore, frame_scores_masks, scored_frames
from ...models.video import FrameMasks, VideoSegmenter, VideoSession
from ...prompts.video_clicks import click_object


class VideoScorer:
    """Accumulates each object's J and F over the frames its dataset's rule scores."""

    def __init__(self, sample: VideoSample, frame_rule: str) -> None:
        self.sample = sample
        self.seen: Optional[set[int]] = set() if frame_rule == "sav" else None  # see metrics.vos.FRAME_RULES
        self.frames = {k: set(scored_frames(sample.annotated, t, frame_rule)) for k, t in sample.objects.items()}
        self.scores = {k: ObjectScore(sample.video_id, k, [], [], []) for k in sample.objects}

    def needed(self) -> list[int]:
        return sorted(set().union(*self.frames.values())) if self.frames else []

    def add(self, frame: int, predicted: dict[int, np.ndarray]) -> None:
        """Score one frame (frames in increasing order, as both callers add them)."""
        objects = [k for k, frames in self.frames.items() if frame in frames]
        if not objects:
            return
        gt = self.sample.object_masks(frame)
        shape = (self.sample.height, self.sample.width)
        for k in objects:
            pred = predicted.get(k)
            pred = np.zeros(shape, bool) if pred is None else pred
            if self.seen is not None and k not in self.seen:
                if not (gt[k].any() or pred.any()):
                    continue
                self.seen.add(k)
            j, f = frame_scores_masks(gt[k], pred)
            score = self.scores[k]
            score.frames.append(frame)
            score.j.append(j)
            score.f.append(f)


NO_MASK = -1024.0  # SAM 2's score of an object without output on a frame


def prompt_objects(session: VideoSession, sample: VideoSample, prompt: str, clicks: int,
                   only: Optional[int] = None) -> dict[int, Any]:
    """Add every object (or `only` that one) on its prompt frame (frame order, then id); returns
    what each was given."""
    given: dict[int, Any] = {}
    for k, t in sorted(sample.objects.items(), key=lambda kv: (kv[1], kv[0])):
        if only is not None and k != only:
            continue
        gt = sample.object_masks(t)[k]
        if prompt == "mask":
            session.add_mask(t, k, gt)
            given[k] = "mask"
        elif not gt.any():  # SA-V: an object may be empty on its folder's first frame
            given[k] = None
        elif prompt == "box":
            ys, xs = np.nonzero(gt)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            session.add_box(t, k, box)
            given[k] = box.tolist()
        else:
            given[k] = [[c.x, c.y, int(c.positive)] for c in click_object(session, t, k, gt, clicks)]
    return given


def track_video(segmenter: VideoSegmenter, sample: VideoSample, prompt: str, clicks: int, out: Path,
                layout: str, scorer: Optional[VideoScorer], separately: bool, progress: bool) -> dict[int, Any]:
    """Prompt, propagate, write every frame's predictions (empty before the first prompt) and score."""
    n = len(sample.frames)
    passes = len(sample.objects) if separately else 1
    bar = tqdm(total=n * passes, desc=sample.video_id, unit="frame", leave=False, disable=not progress or None)
    try:
        if separately:
            return _track_separately(segmenter, sample, prompt, clicks, out, layout, scorer, bar)
        shape = (sample.height, sample.width)
        written = set()
        with segmenter.open_video(sample.frames) as session:
            given = prompt_objects(session, sample, prompt, clicks)
            for t, masks in session.propagate(start_frame=min(sample.objects.values())):
                _emit(t, masks, sample, out, layout, scorer, shape)
                written.add(t)
                bar.update(1)
        for t in sorted(set(range(n)) - written):  # frames before any object is given
            _emit(t, {}, sample, out, layout, scorer, shape)
        return given
    finally:
        bar.close()


def _track_separately(segmenter: VideoSegmenter, sample: VideoSample, prompt: str, clicks: int, out: Path,
                      layout: str, scorer: Optional[VideoScorer], bar: tqdm) -> dict[int, Any]:
    """One session per object; the logits wait in a file (objects x frames x H x W float32, as much
    as sam2's script holds in memory) until every object is tracked, then frames are resolved."""
    ids = sorted(sample.objects)
    n, shape = len(sample.frames), (sample.height, sample.width)
    path = out.parent / f".{sample.video_id}.logits.npy"
    scores = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(ids), n, *shape))
    try:
        scores[:] = NO_MASK
        given: dict[int, Any] = {}
        for i, k in enumerate(ids):
            with segmenter.open_video(sample.frames) as session:
                given.update(prompt_objects(session, sample, prompt, clicks, only=k))
                for t, logits in session.propagate_logits(start_frame=sample.objects[k]):
                    if k in logits:
                        scores[i, t] = logits[k]
                    bar.update(1)
        for t in range(n):
            frame = np.asarray(scores[:, t])
            best = frame.argmax(axis=0)  # first maximum: the lowest id wins a tie
            _emit(t, {k: (best == i) & (frame[i] > 0) for i, k in enumerate(ids)}, sample, out, layout, scorer, shape)
        return given
    finally:
        del scores
        path.unlink(missing_ok=True)


def _emit(t: int, masks: FrameMasks, sample: VideoSample, out: Path, layout: str,
          scorer: Optional[VideoScorer], shape: tuple[int, int]) -> None:
    masks = {k: m for k, m in masks.items() if k in sample.objects and t >= sample.objects[k]}
    for k in sample.objects:
        if k not in masks and t >= sample.objects[k] and layout == "sav":
            masks[k] = np.zeros(shape, bool)  # SA-V's layout has one file per object and frame
    for k, m in masks.items():
        if m.shape != shape:
            raise DataError(f"video '{sample.video_id}' frame {t}: the model returned a {m.shape} mask "
                            f"for object {k}, frames are {shape}")
    written = write_frame(out, layout, sample.video_id, sample.frames.names[t], masks, shape)
    if scorer is not None:
        scorer.add(t, written)


def score_folder(sample: VideoSample, folder: Path, layout: str, scorer: VideoScorer) -> None:
    """Score the predictions of one video in a submission folder (the frames its rule scores)."""
    shape = (sample.height, sample.width)
    ids = sorted(sample.objects)
    for t in scorer.needed():
        scorer.add(t, read_frame(folder, layout, sample.video_id, sample.frames.names[t], ids, shape))
