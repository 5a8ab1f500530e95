"""Simulated clicks of the interactive protocol (PROTOCOLS.md §1), as RITM's evaluation clicker.

First click "center": the pixel farthest from the object's boundary, i.e. the argmax of the
distance transform of the ground-truth mask zero-padded by 1 px (the image border is boundary).
That is RITM's error rule applied to an empty prediction, so both use `next_click`.
Later clicks: distance transforms of the false-negative and false-positive regions (each padded
by 1 px); positive at argmax DT(FN) if max DT(FN) > max DT(FP), else negative at argmax DT(FP).
Ties go to the first pixel in row-major order (RITM's `np.where(...)[0]`). Void pixels are never
error pixels, so they are never clicked, and a pixel clicked once is never clicked again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt


@dataclass(frozen=True)
class Click:
    x: int
    y: int
    positive: bool


# cv2's float32 transform can be a few ulp off (sqrt(50) comes out as two different floats
# depending on memory layout), which would decide exact ties arbitrarily. Pixels within this
# relative margin of the maximum are re-ranked by their exact integer squared distance: rint(d^2)
# recovers it while d < EXACT_ROUNDING (float32 error <= 1e-6 relative -> |d^2 - n| < 0.5);
# beyond that scipy's exact (slower) transform is used.
_NEAR_MAX = 1e-5
_EXACT_ROUNDING = 700.0


def _bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def farthest_pixel(mask: np.ndarray, clicked: Iterable[tuple[int, int]] = ()) -> tuple[int, int, int]:
    """(squared distance, y, x) of the mask pixel farthest from any pixel outside the mask, the
    area beyond the image border counting as outside (RITM's 1 px zero padding); clicked (x, y)
    pixels are skipped. Ties go to the first pixel in row-major order. (0, -1, -1) if none.

    The transform runs on the mask's bounding box padded by 1 px, which is exact: every pixel
    outside the box is outside the mask, and the clamp of any such pixel onto the padding ring is
    at least as close. Row-major order inside the box is row-major order in the image.
    """
    box = _bbox(mask)
    if box is None:
        return 0, -1, -1
    y0, y1, x0, x1 = box
    padded = np.pad(mask[y0:y1, x0:x1], 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    for x, y in clicked:
        if y0 <= y < y1 and x0 <= x < x1:
            dist[y - y0 + 1, x - x0 + 1] = 0.0
    top = float(dist.max())
    if top <= 0.0:
        return 0, -1, -1
    cand_y, cand_x = np.nonzero(dist >= top * (1 - _NEAR_MAX))  # row-major order
    if top >= _EXACT_ROUNDING:
        dist = distance_transform_edt(padded)
    squared = np.rint(dist[cand_y, cand_x].astype(np.float64) ** 2).astype(np.int64)
    best = int(np.argmax(squared))  # first maximum in row-major order
    return int(squared[best]), y0 + int(cand_y[best]) - 1, x0 + int(cand_x[best]) - 1


def next_click(gt: np.ndarray, pred: Optional[np.ndarray], ignore: Optional[np.ndarray] = None,
               clicked: Iterable[tuple[int, int]] = ()) -> Optional[Click]:
    """RITM's next click for ground truth `gt` and prediction `pred` (None = nothing predicted).

    Returns None when no error pixel is left that is neither void nor already clicked.
    """
    gt = np.asarray(gt, dtype=bool)
    valid = None if ignore is None else ~np.asarray(ignore, dtype=bool)
    if pred is None:
        fn, fp = gt, None
    else:
        pred = np.asarray(pred, dtype=bool)
        fn, fp = gt & ~pred, pred & ~gt
    if valid is not None:
        fn = fn & valid
        fp = None if fp is None else fp & valid
    clicked = list(clicked)
    fn_max, fn_y, fn_x = farthest_pixel(fn, clicked)
    fp_max, fp_y, fp_x = (0, -1, -1) if fp is None else farthest_pixel(fp, clicked)
    if fn_max == 0 and fp_max == 0:
        return None
    if fn_max > fp_max:  # squared distances: same order as RITM's distances, compared exactly
        return Click(fn_x, fn_y, True)
    return Click(fp_x, fp_y, False)


def center_click(gt: np.ndarray, ignore: Optional[np.ndarray] = None) -> Optional[Click]:
    """The pixel of the object (minus void) farthest from its boundary and the image border."""
    return next_click(gt, None, ignore)


def random_click(gt: np.ndarray, ignore: Optional[np.ndarray], rng: np.random.Generator) -> Optional[Click]:
    """A uniformly random non-void pixel of the object."""
    inside = np.asarray(gt, dtype=bool)
    if ignore is not None:
        inside = inside & ~np.asarray(ignore, dtype=bool)
    ys, xs = np.nonzero(inside)
    if ys.size == 0:
        return None
    i = int(rng.integers(ys.size))
    return Click(int(xs[i]), int(ys[i]), True)


def add_corrective_clicks(gts: list[np.ndarray], preds: list[Optional[np.ndarray]], ignore: Optional[np.ndarray],
                          click_lists: list[list[Click]], active: list[int]) -> list[int]:
    """One RITM click for each active object against its previous mask, appended to its click list.
    Returns the objects that got one: an object with no error pixel left keeps its mask and drops out."""
    still = []
    for k in active:
        click = next_click(gts[k], preds[k], ignore, [(c.x, c.y) for c in click_lists[k]])
        if click is not None:
            click_lists[k].append(click)
            still.append(k)
    return still
