"""gIoU / cIoU / Prec@IoU and class-aware mask AP on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam_bench.metrics.text import ciou, coco_mask_ap, giou, intersection_union, per_item_iou, precision_at


def box_mask(x0, y0, x1, y1, shape=(20, 30)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_intersection_union_with_ignore():
    pred, gt = box_mask(0, 0, 10, 10), box_mask(5, 0, 15, 10)
    assert intersection_union(pred, gt) == (50, 150)
    ignore = box_mask(0, 0, 5, 10)  # the prediction-only strip is void: counts for neither
    assert intersection_union(pred, gt, ignore) == (50, 100)


def test_giou_is_the_mean_and_ciou_the_ratio_of_sums():
    inter, union = [1, 3, 0], [2, 4, 5]
    assert giou(inter, union) == pytest.approx((0.5 + 0.75 + 0.0) / 3, abs=1e-15)
    assert ciou(inter, union) == pytest.approx(4 / 11, abs=1e-15)
    # A big object dominates cIoU but counts like any other in gIoU.
    assert giou([90, 0], [100, 10]) == pytest.approx(0.45) and ciou([90, 0], [100, 10]) == pytest.approx(90 / 110)
    assert per_item_iou([0], [0]).tolist() == [1.0]  # empty prediction of an empty target
    assert math.isnan(giou([], [])) and math.isnan(ciou([], []))


def test_precision_at_counts_iou_at_or_above_the_threshold():
    assert precision_at([0.5, 0.75, 0.0, 0.95], (0.5, 0.7, 0.9)) == {0.5: 0.75, 0.7: 0.5, 0.9: 0.25}


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(r["size"]), "counts": r["counts"].decode()}


def ground_truth() -> dict:
    gt_mask = box_mask(2, 2, 12, 12)
    return {"images": [{"id": 7, "height": 20, "width": 30}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": rle(gt_mask),
                             "area": 100.0, "bbox": [2, 2, 10, 10]}]}  # no iscrowd key, as in LVIS


def test_mask_ap_hand_cases():
    gt = ground_truth()
    hit = {"image_id": 7, "category_id": 1, "segmentation": rle(box_mask(2, 2, 12, 12))}
    miss = {"image_id": 7, "category_id": 1, "segmentation": rle(box_mask(15, 2, 25, 12))}
    # The true positive ranked first: precision 1 at every recall.
    best_first = coco_mask_ap(gt, [{**hit, "score": 0.9}, {**miss, "score": 0.5}], [7])
    assert best_first["AP"] == pytest.approx(1.0) and best_first["AP50"] == pytest.approx(1.0)
    assert best_first["APs"] == pytest.approx(1.0)  # area 100 < 32^2: small
    assert math.isnan(best_first["APm"]) and math.isnan(best_first["APl"])  # no ground truth there
    # A false positive ranked above it: precision 1/2 at the only recall level.
    worst_first = coco_mask_ap(gt, [{**hit, "score": 0.5}, {**miss, "score": 0.9}], [7])
    assert worst_first["AP"] == pytest.approx(0.5)
    # Shifted by 2 px of 10: IoU 80/120 = 2/3, a hit at thresholds 0.50..0.65, a miss at 0.70..0.95.
    shifted = {"image_id": 7, "category_id": 1, "segmentation": rle(box_mask(4, 2, 14, 12)), "score": 1.0}
    partial = coco_mask_ap(gt, [shifted], [7])
    assert partial["AP50"] == pytest.approx(1.0) and partial["AP75"] == pytest.approx(0.0)
    assert partial["AP"] == pytest.approx(4 / 10)
    # A detection in the wrong category finds nothing; no detections at all: 0.
    assert coco_mask_ap(gt, [{**hit, "category_id": 2, "score": 1.0}], [7])["AP"] == pytest.approx(0.0)
    assert coco_mask_ap(gt, [], [7])["AP"] == 0.0
