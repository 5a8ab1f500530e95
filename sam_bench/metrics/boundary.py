"""Boundary IoU (Cheng et al., CVPR 2021), as HQ-SAM evaluates it (dilation 0.02 of the diagonal).

A mask's boundary region is its pixels within `d` of the background, the image border counting as
background: `mask - erode(pad(mask, 1), 3x3, iterations=d)`, exactly the `mask_to_boundary` of the
boundary-iou reference code and of HQ-SAM's `utils/misc.py` (3x3 erosions compose into a
(2d+1)-square, so "within d" is chessboard distance). d = round(ratio * image diagonal), at least 1.
Boundary IoU = |G_d ∩ P_d| / |G_d ∪ P_d|.

Masks may be numpy (cv2) or torch bool tensors (max pooling on their device, the same regions).
"""
from __future__ import annotations

from typing import Optional, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Mask = Union[np.ndarray, torch.Tensor]

DILATION_RATIO = 0.02


def boundary_width(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """Dilation in pixels: round(ratio * diagonal), at least 1 (the reference's rule)."""
    return max(1, int(round(ratio * float(np.sqrt(height ** 2 + width ** 2)))))


def mask_boundary(mask: Mask, dilation: int) -> Mask:
    """(H, W) bool boundary region of `mask`: its pixels within `dilation` of the background.

    The erosion runs on the mask's bounding box only: pixels outside it are background anyway, so
    zero padding of the box (the reference pads the whole image) gives the same result, faster
    for small objects in large images. A torch mask gives a torch region on its device.
    """
    if isinstance(mask, torch.Tensor):
        return _mask_boundary_torch(mask.bool(), dilation)
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[y0:y1, x0:x1].astype(np.uint8)
    padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:-1, 1:-1]
    out[y0:y1, x0:x1] = (crop > 0) & (eroded == 0)
    return out


def _mask_boundary_torch(mask: torch.Tensor, dilation: int) -> torch.Tensor:
    """`mask_boundary` on the tensor's device: a mask pixel is boundary iff its (2d+1)-square holds
    a background pixel, beyond the border included (padding with background; max_pool2d's own
    padding would be -inf, i.e. ignored). Erosion by a square is separable: two 1-D poolings,
    on the whole image (no bounding box, so no sync with the host)."""
    k = 2 * dilation + 1
    background = F.pad((~mask).float()[None, None], (dilation,) * 4, value=1.0)
    near = F.max_pool2d(F.max_pool2d(background, (1, k), stride=1), (k, 1), stride=1)[0, 0]
    return mask & (near > 0)


def boundary_iou(gt: Mask, pred: Mask, ratio: float = DILATION_RATIO, gt_boundary: Optional[Mask] = None) -> float:
    """Boundary IoU of two (H, W) masks (tasks remove void pixels from both masks first), numpy or
    torch tensors on one device (then only the two counts leave it).

    `gt_boundary` may pass a precomputed boundary of `gt` (it is reused across clicks). Two empty
    boundaries give 1.0 (nothing to get wrong), as the point task's IoU does for empty unions.
    """
    d = boundary_width(*np.shape(gt), ratio=ratio)
    g = mask_boundary(gt, d) if gt_boundary is None else gt_boundary
    p = mask_boundary(pred, d)
    if isinstance(p, torch.Tensor):
        inter, union = torch.stack([(g & p).sum(), (g | p).sum()]).tolist()
    else:
        inter, union = np.count_nonzero(g & p), np.count_nonzero(g | p)
    return float(inter) / union if union else 1.0
