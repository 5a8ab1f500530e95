"""Per-instance mIoU with COCO size bins, as EfficientViT-SAM / EdgeSAM report prompted masks.

Bins follow pycocotools' `COCOeval.params.areaRng` ([0, 32^2], [32^2, 96^2], [96^2, 1e10]) with
its inclusive test (an object is out of a range only when `area < lo or area > hi`), so an object
of area exactly 32^2 counts as small *and* medium, exactly 96^2 as medium *and* large, as in
COCO AP; EfficientViT-SAM's `filter_results_by_area` bins the same way. The area is the
annotation's (COCO `area`, i.e. the polygon area for polygon annotations), not the mask's count.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# Exactly pycocotools' default areaRng for segm/bbox evaluation (all range left out: it is "mIoU").
AREA_RANGES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}


def in_range(area: float, size: str) -> bool:
    """pycocotools' test: an annotation is inside a range unless area < lo or area > hi."""
    lo, hi = AREA_RANGES[size]
    return not (area < lo or area > hi)


def size_bins(area: float) -> list[str]:
    """Every bin the annotation's area falls in (two at exactly 32^2 or 96^2)."""
    return [size for size in AREA_RANGES if in_range(area, size)]


def miou_metrics(ious: Sequence[float], areas: Sequence[float],
                 bious: Optional[Sequence[float]] = None) -> dict[str, float]:
    """metrics.json entries: mIoU, mIoU_<size>, mBIoU (fractions) and instance counts.

    A size bin without instances has no mIoU entry (the report prints '-'); needs >= 1 instance.
    """
    ious_a, areas_a = np.asarray(ious, float), np.asarray(areas, float)
    if not len(ious_a):
        raise ValueError("no instance to average")
    metrics: dict[str, float] = {"mIoU": float(ious_a.mean())}
    for size in AREA_RANGES:
        keep = np.array([in_range(a, size) for a in areas_a], bool)
        if keep.any():
            metrics[f"mIoU_{size}"] = float(ious_a[keep].mean())
        metrics[f"instances_{size}"] = int(keep.sum())
    if bious is not None:
        metrics["mBIoU"] = float(np.mean(bious))
    metrics["instances"] = len(ious_a)
    return metrics
