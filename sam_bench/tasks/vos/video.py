"""One video of the `vos` task: prompt each object on its first annotated frame, propagate, write the
predictions in the dataset's submission layout, and score J and F per object on its scored frames.

Two ways of tracking, as sam2's tools/vos_inference.py: all objects in one session (objects given on
the first frame), or, for datasets whose objects appear later (its
--track_object_appearing_later_in_video: YouTube-VOS, LVOS), each object in its own session from its
prompt frame forward. Either way, in the id-map layouts (the script's non_overlap_masks, i.e. no
--per_obj_png_file) per pixel only the highest-scoring object keeps its logit (ties: the first
object, in the order they were added jointly, or the lowest id separately) before thresholding at 0;
SA-V's per-object files keep overlaps.

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
from ...metrics.vos import VideoScorer
from ...models.video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession
from ...prompts.video_clicks import click_object


NO_MASK = -1024.0  # SAM 2's score of an object without output on a frame


def frame_masks(scores: np.ndarray, ids: list[int], layout: str) -> FrameMasks:
    """Masks of objects `ids` from their (objects, H, W) logits, as vos_inference.py: for an id map
    (non_overlap_masks) sam2's _apply_non_overlapping_constraints first (per pixel the others are
    clamped to at most -10; argmax, so ties go to the first object), then logits > 0."""
    if layout == "sav" or not ids:  # one file per object: overlaps are kept
        return {k: scores[i] > 0 for i, k in enumerate(ids)}
    best = scores.argmax(axis=0)
    return {k: (best == i) & (scores[i] > 0) for i, k in enumerate(ids)}


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
            for t, logits in session.propagate_logits(start_frame=min(sample.objects.values())):
                logits = _checked(t, logits, sample)
                ids = list(logits)  # the order the objects were added (sam2's object index order)
                scores = np.stack([logits[k] for k in ids]) if ids else np.zeros((0, *shape), np.float32)
                _emit(t, frame_masks(scores, ids, layout), sample, out, layout, scorer, shape)
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
                    if k in _checked(t, logits, sample):
                        scores[i, t] = logits[k]
                    bar.update(1)
        for t in range(n):
            _emit(t, frame_masks(np.asarray(scores[:, t]), ids, layout), sample, out, layout, scorer, shape)
        return given
    finally:
        del scores
        path.unlink(missing_ok=True)


def _checked(t: int, logits: FrameLogits, sample: VideoSample) -> FrameLogits:
    shape = (sample.height, sample.width)
    for k, m in logits.items():
        if m.shape != shape:
            raise DataError(f"video '{sample.video_id}' frame {t}: the model returned a {m.shape} mask "
                            f"for object {k}, frames are {shape}")
    return logits


def _emit(t: int, masks: FrameMasks, sample: VideoSample, out: Path, layout: str,
          scorer: Optional[VideoScorer], shape: tuple[int, int]) -> None:
    masks = {k: m for k, m in masks.items() if k in sample.objects and t >= sample.objects[k]}
    for k in sample.objects:
        if k not in masks and t >= sample.objects[k] and layout == "sav":
            masks[k] = np.zeros(shape, bool)  # SA-V's layout has one file per object and frame
    written = write_frame(out, layout, sample.video_id, sample.frames.names[t], masks, shape)
    if scorer is not None:
        scorer.add(t, written)


def score_folder(sample: VideoSample, folder: Path, layout: str, scorer: VideoScorer) -> None:
    """Score the predictions of one video in a submission folder (the frames its rule scores)."""
    shape = (sample.height, sample.width)
    ids = sorted(sample.objects)
    for t in scorer.needed():
        scorer.add(t, read_frame(folder, layout, sample.video_id, sample.frames.names[t], ids, shape))
