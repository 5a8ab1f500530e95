"""cgF1 (SAM 3's concept-segmentation metric), computed as `sam3.eval.cgf1_eval.CGF1Evaluator` does.

A query is an (image, noun phrase) pair. Each query is scored on its own (`score_query`): predictions
scoring below 0.5 are dropped, crowd annotations are dropped (the evaluator marks them `ignore`), the
remaining masks are matched one-to-one by Hungarian assignment on mask IoU (pycocotools' IoU, scipy's
`linear_sum_assignment`), and TP / FP / FN are counted at each IoU threshold 0.50:0.95 together with
the image-level outcome (TP: truth and prediction both present, FP, TN, FN). With several annotator
files (SA-Co Gold's three) the query keeps its best one, by the same rule as the evaluator's
`_select_best_scoring` ("oracle"). `accumulate` sums the per-query records with the evaluator's
formulas and epsilons: cgF1 = positive micro F1 x image-level MCC, at each threshold, then averaged.

Why not call the evaluator: it ships in the `sam3` wheel, an optional extra whose import builds
sam3's model modules (about 10 s, torch), and it works on whole files at once, while the runner scores
image by image and keeps per-query counts (so a run resumes, and queries can be resampled later).
tests/test_concepts_scoring.py checks this module equal to `CGF1Evaluator` on the same files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import Params
from scipy.optimize import linear_sum_assignment

from ..data.concepts import TruthMask

#: The evaluator's prediction threshold (`CGF1Eval(threshold=0.5)`).
SCORE_THRESHOLD = 0.5
#: pycocotools' thresholds 0.50:0.05:0.95, the very array the evaluator compares against.
IOU_THRESHOLDS = Params(iouType="segm").iouThrs
CROWD_MODES = ("official", "ignore")


@dataclass
class PredictedMask:
    rle: dict[str, Any]
    score: float


def _ious(dts: Sequence[dict], gts: Sequence[dict], crowd: bool = False) -> np.ndarray:
    if not dts or not gts:
        return np.zeros((len(dts), len(gts)))
    return np.asarray(mask_utils.iou(list(dts), list(gts), [int(crowd)] * len(gts)), np.float64)


def _evaluate(truth: Sequence[TruthMask], kept: Sequence[PredictedMask]) -> dict[str, Any]:
    """One query against one annotator file: the evaluator's `CGF1Eval.evaluateImg`, as a json-ready record."""
    gts = [t.rle for t in truth if not t.iscrowd]  # crowd annotations are `ignore`d
    dts = [p.rle for p in kept]
    n = len(IOU_THRESHOLDS)
    if not gts and not dts:
        return {"il": "TN", "num_dt": 0}  # no box-level counts: they are undefined here
    if not dts:
        return {"il": "FN", "num_dt": 0, "tp": [0] * n, "fp": [0] * n, "fn": [len(gts)] * n, "f1": [0.0] * n}
    ious = _ious(dts, gts)
    rows, cols = linear_sum_assignment(-ious)
    matched = ious[rows, cols]
    tp = np.array([(matched >= t).sum() for t in IOU_THRESHOLDS], np.int64)
    fp, fn = len(dts) - tp, len(gts) - tp
    precision = tp / (tp + fp + 1e-4)
    recall = tp / (tp + fn + 1e-4)
    f1 = 2 * precision * recall / (precision + recall + 1e-4)
    return {"il": "TP" if gts else "FP", "num_dt": len(dts), "tp": tp.tolist(), "fp": fp.tolist(),
            "fn": fn.tolist(), "f1": f1.tolist()}


def _drop_inside_crowd(truth: Sequence[TruthMask], kept: list[PredictedMask]) -> list[PredictedMask]:
    """`--crowd ignore`: predictions lying in a crowd region (at least half of the prediction inside
    one, COCO's crowd IoU = intersection / prediction area) that match no instance at IoU 0.5 leave
    the count, as COCO evaluation ignores detections matched to crowd regions."""
    crowd = [t.rle for t in truth if t.iscrowd]
    if not crowd or not kept:
        return kept
    dts = [p.rle for p in kept]
    inside = _ious(dts, crowd, crowd=True).max(axis=1) >= 0.5
    instances = _ious(dts, [t.rle for t in truth if not t.iscrowd])
    matches = instances.max(axis=1) >= 0.5 if instances.shape[1] else np.zeros(len(kept), bool)
    return [p for p, drop in zip(kept, inside & ~matches) if not drop]


def score_query(truths: Sequence[Sequence[TruthMask]], predictions: Sequence[PredictedMask],
                crowd: str = "official") -> dict[str, Any]:
    """The query's record (json-ready): image-level outcome `il`, `num_dt`, and per IoU threshold
    `tp` / `fp` / `fn` / `f1` (absent for a true negative), `annotator` (the file kept), `dropped`
    (predictions below the score threshold) and `crowd_dropped` (`ignore` mode)."""
    if crowd not in CROWD_MODES:
        raise ValueError(f"crowd must be one of {CROWD_MODES}, got {crowd!r}")
    kept = [p for p in predictions if p.score >= SCORE_THRESHOLD]
    best, best_k, crowd_dropped = None, 0, 0
    for k, truth in enumerate(truths):
        mine = _drop_inside_crowd(truth, kept) if crowd == "ignore" else kept
        record = _evaluate(truth, mine)
        record["crowd_dropped"] = len(kept) - len(mine)
        # CGF1Evaluator._select_best_scoring: a true negative wins; otherwise a strictly higher mean F1
        if best is None or record["il"] == "TN" or (
                "f1" in best and np.mean(record["f1"]) > np.mean(best["f1"])):
            best, best_k = record, k
    if best is None:
        raise ValueError("a query needs at least one annotator's truth (possibly empty)")
    return {**best, "annotator": best_k, "dropped": len(predictions) - len(kept)}


#: The metrics the bootstrap gives an interval (queries resampled; tasks/concepts).
INTERVAL_METRICS = ("cgF1", "cgF1@0.5", "cgF1@0.75", "pmF1", "IL_MCC")
_IL = ("TP", "FP", "TN", "FN")
_WIDTH = 5 * len(IOU_THRESHOLDS) + 1 + len(_IL)


def query_counts(record: dict[str, Any]) -> np.ndarray:
    """One query's contribution to `accumulate`'s sums, as one vector (json-ready as a list):
    tp, fp, fn, positive fp, positive F1 (each per IoU threshold), positive-with-a-prediction (1),
    image-level outcome one-hot (TP, FP, TN, FN). Sums of these vectors are all `from_totals` needs,
    so resampled queries are one sum per replicate (the bootstrap's `cgf1` statistic)."""
    n = len(IOU_THRESHOLDS)
    out = np.zeros(_WIDTH, np.float64)
    out[5 * n + 1 + _IL.index(record["il"])] = 1
    if "tp" in record:  # a true negative has no box-level counts
        out[0:n], out[n:2 * n], out[2 * n:3 * n] = record["tp"], record["fp"], record["fn"]
        if record["il"] in ("TP", "FN"):  # the evaluator's `local_positive_F1s`: truth present
            out[3 * n:4 * n], out[4 * n:5 * n] = record["fp"], record["f1"]
            out[5 * n] = record["num_dt"] > 0
    return out


def accumulate(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Metrics over the queries' records, by `CGF1Eval.accumulate` and `summarize`: fractions; the
    averaged ones (`cgF1`, `pmF1`, ...) are means over the IoU thresholds, `@0.5` / `@0.75` single ones."""
    counts = np.array([query_counts(r) for r in records], np.float64).reshape(len(records), _WIDTH)
    return from_totals(counts.sum(axis=0))


def from_totals(total: np.ndarray) -> dict[str, float]:
    """`accumulate`'s metrics from the sum of the queries' `query_counts` vectors."""
    n = len(IOU_THRESHOLDS)
    tp, fp, fn, pm_fp, local_f1 = (total[k * n:(k + 1) * n] for k in range(5))
    f1_count = total[5 * n]
    il = dict(zip(_IL, (float(v) for v in total[5 * n + 1:])))
    precision = tp / (tp + fp + 1e-4)
    pm_precision = tp / (tp + pm_fp + 1e-4)
    recall = tp / (tp + fn + 1e-4)
    f1 = 2 * precision * recall / (precision + recall + 1e-4)
    pm_f1 = 2 * pm_precision * recall / (pm_precision + recall + 1e-4)
    il_recall = il["TP"] / (il["TP"] + il["FN"] + 1e-6)
    il_precision = il["TP"] / (il["TP"] + il["FP"] + 1e-6)
    il_f1 = 2 * il_precision * il_recall / (il_precision + il_recall + 1e-6)
    il_fpr = il["FP"] / (il["FP"] + il["TN"] + 1e-6)
    il_mcc = (il["TP"] * il["TN"] - il["FP"] * il["FN"]) / (
        ((il["TP"] + il["FP"]) * (il["TP"] + il["FN"]) * (il["TN"] + il["FP"]) * (il["TN"] + il["FN"])) ** 0.5 + 1e-6)
    per_threshold = {"cgF1": pm_f1 * il_mcc, "precision": precision, "recall": recall, "F1": f1,
                     "pmF1": pm_f1, "positive_micro_precision": pm_precision}
    if f1_count:
        per_threshold["positive_macro_F1"] = local_f1 / f1_count
    out: dict[str, float] = {}
    for name, values in per_threshold.items():
        out[name] = _mean_defined(values)
        for t in (0.5, 0.75):
            out[f"{name}@{t}"] = _mean_defined(values[np.where(t == IOU_THRESHOLDS)[0]])
    out.update({"IL_precision": il_precision, "IL_recall": il_recall, "IL_F1": il_f1, "IL_FPR": il_fpr,
                "IL_MCC": il_mcc})
    return out


def _mean_defined(values: np.ndarray) -> Optional[float]:
    """`summarize`'s mean over entries > -1 (its marker of an undefined value)."""
    defined = values[values > -1]
    return float(np.mean(defined)) if len(defined) else None
