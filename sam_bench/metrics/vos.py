"""Semi-supervised VOS metrics: J (region), F (boundary), their statistics, J&F, as the official
evaluators define them (davis2017-evaluation; SA-V's sav_evaluator uses the same J and F).

- J: IoU of one object's predicted and ground-truth masks on one frame; both empty scores 1.
- F: boundary F-measure. Boundaries are one pixel wide (Martin's seg2bmap: a pixel differs from its
  east, south or south-east neighbour inside the image); a boundary pixel matches when the other
  boundary lies within the tolerance ceil(0.008 x image diagonal) pixels, tested by dilating with a
  disk of that radius (skimage's `disk`). Precision = matched predicted boundary / predicted
  boundary, recall = matched ground-truth boundary / ground-truth boundary; F = 2PR / (P + R). An
  empty boundary on one side: precision (or recall) 1 and the other 0; both empty: F = 1.
- Per object, over the frames its evaluator scores: mean, recall (share of frames > 0.5) and decay
  (mean of the first of four bins minus the mean of the last; davis2017-evaluation's
  `db_statistics`, whose bins share their edge frames).
- Dataset: each statistic averaged over every object of every sequence; J&F = (J_mean + F_mean) / 2.

DAVIS semi-supervised scoring reads void pixels (255) as background and does not exclude them
(its `_evaluate_semisupervised` passes no void mask), so `void` is not an argument here: readers
map 255 to 0. Which frames count is the dataset's rule (`scored_frames`).

The evaluators are scripts (sys.exit on bad input, whole sequences in memory), not importable
libraries, so the definitions are implemented here, per frame, and tested against an independent
implementation in tests/test_vos_metrics.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np
from skimage.morphology import disk

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal
METRIC_KEYS = ("J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
# Frame rules: "first_last" drops each object's prompt frame and the video's last annotated frame
# (DAVIS: the first and last frame); "sav" does too (the first and last annotated frame) and, as
# sav_evaluator, an object only counts from the first scored frame where its ground truth or its
# prediction is non-empty (the evaluator's object set grows as objects are seen); "none" keeps all.
FRAME_RULES = ("first_last", "sav", "none")


def region_similarity(gt: np.ndarray, pred: np.ndarray) -> float:
    """J: IoU of two (H, W) bool masks; 1 when both are empty."""
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Match distance in pixels: ceil(bound_th x image diagonal) (8 px at 854x480)."""
    return int(math.ceil(bound_th * math.hypot(height, width)))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """seg2bmap: pixels whose east, south or south-east neighbour (inside the image) differs."""
    m = np.asarray(mask, dtype=bool)
    b = np.zeros_like(m)
    b[:-1, :-1] = (m[:-1, :-1] != m[:-1, 1:]) | (m[:-1, :-1] != m[1:, :-1]) | (m[:-1, :-1] != m[1:, 1:])
    b[-1, :-1] = m[-1, :-1] != m[-1, 1:]  # last row: only the east neighbour is inside
    b[:-1, -1] = m[:-1, -1] != m[1:, -1]  # last column: only the south neighbour
    return b


def _dilate(boundary: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.dilate(boundary.astype(np.uint8), kernel).astype(bool)


def boundary_f(gt: np.ndarray, pred: np.ndarray, tolerance: int | None = None) -> float:
    """F: boundary F-measure of two (H, W) bool masks (see the module docstring)."""
    if tolerance is None:
        tolerance = boundary_tolerance(*gt.shape)
    gt_b, pred_b = boundary_map(gt), boundary_map(pred)
    n_gt, n_pred = int(np.count_nonzero(gt_b)), int(np.count_nonzero(pred_b))
    if n_gt == 0 or n_pred == 0:  # the evaluator's cases: empty vs empty 1, otherwise 0
        return 1.0 if n_gt == n_pred else 0.0
    kernel = disk(tolerance).astype(np.uint8)
    precision = np.count_nonzero(pred_b & _dilate(gt_b, kernel)) / n_pred
    recall = np.count_nonzero(gt_b & _dilate(pred_b, kernel)) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_scores_masks(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(J, F) of one object on one frame from its (H, W) bool ground-truth and predicted masks."""
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    return region_similarity(gt, pred), boundary_f(gt, pred)


def frame_scores(gt_ids: np.ndarray, pred_ids: np.ndarray, object_ids: Iterable[int]) -> dict[int, tuple[float, float]]:
    """(J, F) of each object on one frame, from two (H, W) integer id maps (0 = background)."""
    return {int(k): frame_scores_masks(gt_ids == k, pred_ids == k) for k in object_ids}


def statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values; NaN for no frames.

    Decay: four bins with edges round(linspace(1, n, 5)) - 1, bin i = values[e_i : e_(i+1) + 1]
    (neighbouring bins share their edge frame), decay = mean(bin 0) - mean(bin 3). davis2017-evaluation
    stores the edges as uint8, which wraps for sequences over 256 frames; the edges here are exact
    (identical for every DAVIS sequence, all shorter than that).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    edges = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[edges[i]:edges[i + 1] + 1] for i in range(4)]
    return float(v.mean()), float(np.mean(v > 0.5)), float(bins[0].mean() - bins[3].mean())


def scored_frames(annotated: Sequence[int], prompt_frame: int, rule: str) -> list[int]:
    """The annotated frames an object is scored on under `rule` (see FRAME_RULES)."""
    if rule not in FRAME_RULES:
        raise ValueError(f"frame rule {rule!r}; choose {FRAME_RULES}")
    frames = sorted(annotated)
    if rule == "none":
        return frames
    last = frames[-1] if frames else -1
    return [t for t in frames if prompt_frame < t < last]


@dataclass
class ObjectScore:
    """One object's per-frame J and F (kept whole so that sequences can be resampled later)."""

    video_id: str
    object_id: int
    frames: list[int]
    j: list[float]
    f: list[float]

    def summary(self) -> dict[str, float]:
        jm, jr, jd = statistics(self.j)
        fm, fr, fd = statistics(self.f)
        return {"J&F": (jm + fm) / 2, "J_mean": jm, "J_recall": jr, "J_decay": jd,
                "F_mean": fm, "F_recall": fr, "F_decay": fd}


def dataset_metrics(objects: Sequence[ObjectScore]) -> dict[str, float]:
    """Each statistic averaged over all objects; J&F = (J_mean + F_mean) / 2. Objects without a
    scored frame (a two-frame video) are left out, as NaN is by the evaluator's nanmean."""
    rows = [o.summary() for o in objects if o.frames]
    if not rows:
        return {k: math.nan for k in METRIC_KEYS}
    out = {k: float(np.mean([r[k] for r in rows])) for k in METRIC_KEYS if k != "J&F"}
    out["J&F"] = (out["J_mean"] + out["F_mean"]) / 2
    return {k: out[k] for k in METRIC_KEYS}
