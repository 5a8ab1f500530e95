"""Metrics of the interactive point protocol: mIoU after N clicks, NoC and NoF (RITM's definitions)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

REPORT_CLICKS = (1, 2, 3, 5, 9)  # the paper's Fig. 9c x-axis
NOC_THRESHOLDS = (85, 90)  # percent
NOF_THRESHOLDS = (90,)


def iou_matrix(per_object: Sequence[Sequence[float]], max_clicks: int) -> np.ndarray:
    """(objects, max_clicks) IoU after each click. An object whose clicks stopped early (no error
    pixel left to click) keeps its last IoU: its mask can no longer change."""
    out = np.empty((len(per_object), max_clicks), dtype=np.float64)
    for i, ious in enumerate(per_object):
        if len(ious) == 0:
            raise ValueError(f"object {i} has no IoU")
        k = min(len(ious), max_clicks)
        out[i, :k] = ious[:k]
        out[i, k:] = ious[k - 1]
    return out


def number_of_clicks(ious: np.ndarray, threshold: float) -> np.ndarray:
    """Clicks needed to reach IoU >= threshold (a fraction); the maximum when never reached (RITM)."""
    reached = ious >= threshold
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, ious.shape[1])


def point_metrics(ious: np.ndarray, oracle_first: np.ndarray | None) -> dict[str, float]:
    """Flat metrics.json entries from the (objects, max_clicks) IoU matrix (fractions in [0, 1])."""
    n_objects, max_clicks = ious.shape
    metrics: dict[str, float] = {}
    for n in REPORT_CLICKS:
        if n <= max_clicks:
            metrics[f"mIoU@{n}"] = float(ious[:, n - 1].mean())
    if oracle_first is not None:  # None: one mask under multimask output, nothing to pick from
        metrics["oracle_mIoU@1"] = float(np.mean(oracle_first))
    for t in NOC_THRESHOLDS:
        metrics[f"NoC@{t}"] = float(number_of_clicks(ious, t / 100).mean())
    for t in NOF_THRESHOLDS:
        # Objects that never reach the IoU. RITM counts NoC == max instead, which also counts an
        # object that reaches it exactly at the last click; the protocol asks for "never reaching".
        metrics[f"NoF@{t}"] = int((ious < t / 100).all(axis=1).sum())
    metrics["max_clicks"] = max_clicks
    metrics["objects"] = n_objects
    return metrics


def miou_curve(ious: np.ndarray) -> np.ndarray:
    """mIoU after 1..max_clicks clicks."""
    return ious.mean(axis=0)
