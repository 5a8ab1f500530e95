"""Metrics of the text-to-mask protocol: gIoU / cIoU / precision@IoU (referring segmentation) and
class-aware mask AP through pycocotools.
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Any, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def intersection_union(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int]:
    """Pixel counts of pred & gt and pred | gt, leaving out `ignore` pixels."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    if ignore is not None:
        keep = ~ignore.astype(bool)
        pred, gt = pred & keep, gt & keep
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def per_item_iou(intersections: Sequence[float], unions: Sequence[float]) -> np.ndarray:
    """IoU per item; an empty union (empty prediction of an empty target) counts as 1."""
    i, u = np.asarray(intersections, np.float64), np.asarray(unions, np.float64)
    return np.where(u > 0, i / np.maximum(u, 1), 1.0)


def giou(intersections: Sequence[float], unions: Sequence[float]) -> float:
    """Mean of the per-expression IoUs (the referring-segmentation literature's mIoU / gIoU)."""
    if len(intersections) == 0:
        return float("nan")
    return float(per_item_iou(intersections, unions).mean())


def ciou(intersections: Sequence[float], unions: Sequence[float]) -> float:
    """Cumulative IoU: total intersection over total union (the literature's overall IoU / cIoU)."""
    total = float(np.sum(unions))
    if len(intersections) == 0:
        return float("nan")
    return float(np.sum(intersections)) / total if total > 0 else 1.0


PRECISION_AT = (0.5, 0.7, 0.9)


def precision_at(ious: Sequence[float], thresholds: Sequence[float] = PRECISION_AT) -> dict[float, float]:
    """Fraction of items with IoU >= t (Prec@t, as LAVT/CRIS count it)."""
    ious = np.asarray(ious, np.float64)
    return {t: float(np.mean(ious >= t)) if len(ious) else float("nan") for t in thresholds}


AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_mask_ap(ground_truth: dict[str, Any], detections: list[dict[str, Any]], image_ids: Sequence[int],
                 category_ids: Sequence[int] | None = None) -> dict[str, float]:
    """Class-aware mask AP of `detections` (COCO results, RLE segmentations) with pycocotools.

    `ground_truth` is a COCO instance json (as a dict); evaluation is restricted to `image_ids`
    (and to `category_ids` when given). Annotations without `iscrowd` (LVIS) count as non-crowd.
    """
    data = copy.copy(ground_truth)
    data["annotations"] = [a if "iscrowd" in a else {**a, "iscrowd": 0} for a in ground_truth["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        if not detections:
            return {name: 0.0 for name in AP_NAMES}
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="segm")
        ev.params.imgIds = sorted(int(i) for i in image_ids)
        if category_ids is not None:
            ev.params.catIds = sorted(int(c) for c in category_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # stats: AP, AP50, AP75, APs, APm, APl; -1 means "no ground truth in that bin".
    return {name: float(v) if v >= 0 else float("nan") for name, v in zip(AP_NAMES, ev.stats[:6])}
