"""Simulated clicks of the interactive protocol (PROTOCOLS.md §1), as RITM's evaluation clicker.

First click "center": the pixel farthest from the object's boundary, i.e. the argmax of the
distance transform of the ground-truth mask zero-padded by 1 px (the image border is boundary).
That is RITM's error rule applied to an empty prediction, so both use `next_click`.
Later clicks: distance transforms of the false-negative and false-positive regions (each padded
by 1 px); positive at argmax DT(FN) if max DT(FN) > max DT(FP), else negative at argmax DT(FP).
Ties go to the first pixel in row-major order (RITM's `np.where(...)[0]`). Void pixels are never
error pixels, so they are never clicked, and a pixel clicked once is never clicked again.

Masks may be numpy arrays (cv2's transform, fastest on the CPU) or torch bool tensors (an exact
integer transform on the tensor's device, so a GPU harness keeps its masks there and only the
click's coordinates come back); both give the same clicks. `on_device` is the tasks' choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Union

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

Mask = Union[np.ndarray, torch.Tensor]


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
# Bytes of the (rows, K, W) sums of the torch transform's column pass computed at once.
_CHUNK_BYTES = 64 << 20


def on_device(tensor: torch.Tensor) -> bool:
    """Whether the click rule and boundary IoU should run with torch where `tensor` lives (a GPU,
    sparing a copy of every full-resolution mask to the host each round) rather than with cv2 on
    numpy copies (faster when the tensor is on the CPU anyway)."""
    return tensor.device.type != "cpu"


def _as_bool(mask: Mask) -> Mask:
    return mask.bool() if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=bool)


def _bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def farthest_pixel(mask: Mask, clicked: Iterable[tuple[int, int]] = ()) -> tuple[int, int, int]:
    """(squared distance, y, x) of the mask pixel farthest from any pixel outside the mask, the
    area beyond the image border counting as outside (RITM's 1 px zero padding); clicked (x, y)
    pixels are skipped. Ties go to the first pixel in row-major order. (0, -1, -1) if none.

    The transform runs on the mask's bounding box padded by 1 px, which is exact: every pixel
    outside the box is outside the mask, and the clamp of any such pixel onto the padding ring is
    at least as close. Row-major order inside the box is row-major order in the image.
    A torch mask is transformed on its device (`_farthest_pixel_torch`), with the same answer.
    """
    if isinstance(mask, torch.Tensor):
        return _farthest_pixel_torch(mask, clicked)
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


def next_click(gt: Mask, pred: Optional[Mask], ignore: Optional[Mask] = None,
               clicked: Iterable[tuple[int, int]] = ()) -> Optional[Click]:
    """RITM's next click for ground truth `gt` and prediction `pred` (None = nothing predicted).

    All numpy, or all torch tensors on one device. Returns None when no error pixel is left that
    is neither void nor already clicked.
    """
    gt = _as_bool(gt)
    valid = None if ignore is None else ~_as_bool(ignore)
    if pred is None:
        fn, fp = gt, None
    else:
        pred = _as_bool(pred)
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


def add_corrective_clicks(gts: list[Mask], preds: list[Optional[Mask]], ignore: Optional[Mask],
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


def _farthest_pixel_torch(mask: torch.Tensor, clicked: Iterable[tuple[int, int]]) -> tuple[int, int, int]:
    """`farthest_pixel` of a torch bool mask, on its device, in exact integer arithmetic; only the
    box and the answer (a few ints) come back to the host."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    if rows.numel() == 0:
        return 0, -1, -1
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    y0, y1, x0, x1 = torch.stack([rows[0], rows[-1] + 1, cols[0], cols[-1] + 1]).tolist()
    padded = torch.nn.functional.pad(mask[y0:y1, x0:x1], (1, 1, 1, 1))  # False = outside
    # The transform is symmetric: brute force over the shorter side (its cost is rows^2 * cols).
    dist = _squared_edt(padded.T).T if y1 - y0 > x1 - x0 else _squared_edt(padded)
    inside = [(y - y0, x - x0) for x, y in clicked if y0 <= y < y1 and x0 <= x < x1]
    if inside:
        dist[tuple(torch.tensor(inside, device=mask.device).T)] = 0
    flat = dist.flatten()
    top = flat.max()
    order = torch.arange(flat.numel(), device=mask.device)
    first = torch.where(flat == top, order, flat.numel()).min()  # first maximum in row-major order
    best, first = torch.stack([top.long(), first]).tolist()
    if best == 0:
        return 0, -1, -1
    y, x = divmod(first, x1 - x0)
    return best, y0 + y, x0 + x


def _squared_edt(padded: torch.Tensor) -> torch.Tensor:
    """Exact squared Euclidean distance of each inner pixel of `padded` (bool, False on its
    1 px border) to the nearest False pixel, as an (H - 2, W - 2) integer tensor.

    Separable: the row pass gives g(k, x), the distance from (k, x) to the nearest False pixel of
    row k (cummax / cummin of their column indices; the border columns are False); the column pass
    takes D(y, x) = min over every row k (border rows included, g = 0 there) of g(k, x)^2 + (y - k)^2,
    by brute force over k, for chunks of rows y that bound memory.
    """
    n_rows, n_cols = padded.shape
    device = padded.device
    # int32 is exact while g^2 + (y - k)^2 < 2^31: g < n_cols / 2 and |y - k| < n_rows.
    dtype = torch.int32 if max(n_rows, n_cols) < 1 << 15 else torch.int64
    index = torch.arange(n_cols, device=device, dtype=dtype).expand(n_rows, n_cols)
    left = torch.where(padded, -1, index).cummax(dim=1).values  # last False at or before x
    right = torch.where(padded, n_cols, index).flip(1).cummin(dim=1).values.flip(1)  # first at or after
    g2 = torch.minimum(index - left, right - index)[:, 1:-1].square()  # (K, W - 2): inner columns
    k = torch.arange(n_rows, device=device, dtype=dtype)
    ys = torch.arange(1, n_rows - 1, device=device, dtype=dtype)  # inner rows
    step = max(1, _CHUNK_BYTES // (g2.numel() * g2.element_size()))
    return torch.cat([(g2 + (y[:, None] - k).square()[:, :, None]).amin(dim=1) for y in ys.split(step)])
