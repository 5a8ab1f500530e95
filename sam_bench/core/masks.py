"""Mask helpers shared by all tasks: binarise, stability score, IoU."""
from __future__ import annotations

import numpy as np
import torch
from segment_anything.utils.amg import calculate_stability_score


def binarize(logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    return logits > threshold


def stability_score(logits: torch.Tensor, threshold: float = 0.0, offset: float = 1.0) -> torch.Tensor:
    """IoU of the masks thresholded at threshold+offset and threshold-offset (the official formula)."""
    return calculate_stability_score(logits, threshold, offset)


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two boolean masks; pixels in `ignore` count for neither. Empty union -> 1.0."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    if ignore is not None:
        keep = ~ignore.astype(bool)
        pred, gt = pred & keep, gt & keep
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def batched_mask_iou(pred: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of (..., H, W) boolean predictions against (..., H, W) ground truth, broadcasting."""
    if ignore is not None:
        keep = ~ignore
        pred, gt = pred & keep, gt & keep
    inter = (pred & gt).flatten(-2).sum(-1).double()
    union = (pred | gt).flatten(-2).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
