"""Mask AP of resampled image sets, from the per-image match records of `SegmEvaluator`.

The bootstrap re-runs the accumulation, never the matching: `COCOeval.evaluateImg` /
`LVISEval.evaluate_img` ran once per image during the task (the records hold their scores and
match / ignore bits). Handing 1,000 resampled record lists to the libraries' own `accumulate`
(`SegmEvaluator.summarize`) is exact but slow: both walk a Python list of every (category, area,
image) entry and run a Python loop per detection for the precision envelope, 6 s per
accumulation for 5,000 images of 4 categories (measured), so hours for COCO val. `ResampledAP`
does the same arithmetic on arrays: detections of a category concatenated in the resample's
image order, the same stable (mergesort) sort by score, cumulative true / false positives,
the envelope loop as a suffix maximum, `searchsorted` at the 101 recall thresholds, and the
libraries' `summarize` selections; tests check it equal to `SegmEvaluator.summarize` on resamples.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pycocotools.cocoeval import Params

from .coco_records import AREA_NAMES, _T, _unbits, _unpack

_PARAMS = Params(iouType="segm")
IOU_THRESHOLDS = _PARAMS.iouThrs
RECALL_THRESHOLDS = _PARAMS.recThrs
FREQUENCIES = ("r", "c", "f")  # LVIS's img_count_lbl order


class _Category:
    """One category's detections over all images, in image order, and its per-image counts."""

    def __init__(self) -> None:
        self.images: list[int] = []
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.npig: list[list[int]] = []
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def freeze(self) -> None:
        self.images_a = np.asarray(self.images)
        self.lengths_a = np.asarray(self.lengths)
        self.starts_a = np.concatenate([[0], np.cumsum(self.lengths_a)[:-1]]).astype(np.int64)
        self.npig_a = np.asarray(self.npig, np.int64)
        self.score = np.concatenate([b[0] for b in self.blocks])
        self.match = np.concatenate([b[1] for b in self.blocks])
        self.ignore = np.concatenate([b[2] for b in self.blocks])
        del self.blocks


class ResampledAP:
    """COCO `AP AP50 AP75 APs APm APl` or LVIS `... APr APc APf` of any multiset of the images."""

    def __init__(self, records: Sequence[dict[str, Any]], lvis: bool, categories: Sequence[dict[str, Any]],
                 max_dets: int) -> None:
        self.lvis = lvis
        # COCOeval.summarize reads its first AP at maxDets=100 whatever params.maxDets holds: with
        # another limit that AP is -1 there (and left out), so here too.
        self.coco_ap_undefined = not lvis and max_dets != 100
        by_cat: dict[int, _Category] = {}
        for image, rec in enumerate(records):
            if not rec["cats"]:
                continue
            det_cat = _unpack(rec["det_cat"], np.int64)
            score = _unpack(rec["score"], np.float64)
            match, ignore = _unpack(rec["match"], np.uint64), _unpack(rec["ignore"], np.uint64)
            for cat, npig in zip(rec["cats"], rec["npig"]):
                where = np.flatnonzero(det_cat == cat)
                entry = by_cat.setdefault(int(cat), _Category())
                entry.images.append(image)
                entry.lengths.append(len(where))
                entry.npig.append(npig)
                entry.blocks.append((score[where], match[where], ignore[where]))
        self.cat_ids = sorted(by_cat)
        self.cats = [by_cat[c] for c in self.cat_ids]
        for entry in self.cats:
            entry.freeze()
        frequency = {int(c["id"]): c.get("frequency") for c in categories}
        self.freq_groups = [[k for k, c in enumerate(self.cat_ids) if frequency.get(c) == f] for f in FREQUENCIES]

    def __call__(self, index: np.ndarray) -> dict[str, float]:
        index = np.asarray(index)
        precision = -np.ones((_T, len(RECALL_THRESHOLDS), len(self.cat_ids), len(AREA_NAMES)))
        for k, cat in enumerate(self.cats):
            self._accumulate(cat, index, precision[:, :, k, :])
        return self._summarize(precision)

    @staticmethod
    def _accumulate(cat: _Category, index: np.ndarray, out: np.ndarray) -> None:
        """out (T, R, A): the libraries' precision at each recall threshold, for this category."""
        slot = np.searchsorted(cat.images_a, index)
        slot = np.minimum(slot, len(cat.images_a) - 1)
        rows = slot[cat.images_a[slot] == index]  # the category's images in resample order
        if not len(rows):
            return
        lengths = cat.lengths_a[rows]
        first = np.cumsum(lengths) - lengths
        gather = np.repeat(cat.starts_a[rows] - first, lengths) + np.arange(lengths.sum())
        order = np.argsort(-cat.score[gather], kind="mergesort")  # the libraries' sort
        match, ignore = cat.match[gather][order], cat.ignore[gather][order]
        npig = cat.npig_a[rows].sum(axis=0)
        for a in range(len(AREA_NAMES)):
            if npig[a] == 0:
                continue  # no ground truth: the libraries leave -1
            matched, counted = _unbits(match, a), ~_unbits(ignore, a)
            # int32 counts, then float: the same integers the libraries' float cumsum holds
            tp_count = np.cumsum(matched & counted, axis=1, dtype=np.int32)
            tp = tp_count.astype(float)
            fp = (np.cumsum(counted, axis=1, dtype=np.int32) - tp_count).astype(float)
            recall = tp / npig[a]
            prec = tp / (fp + tp + np.spacing(1))
            prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # their envelope loop
            for t in range(_T):
                at = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
                q = np.zeros(len(RECALL_THRESHOLDS))
                ok = at < prec.shape[1]  # their try/except: thresholds past the last recall stay 0
                q[ok] = prec[t, at[ok]]
                out[t, :, a] = q

    def _summarize(self, precision: np.ndarray) -> dict[str, float]:
        """The libraries' `_summarize` selections: mean of the defined (> -1) precisions."""
        def mean(s: np.ndarray) -> float:
            return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0

        t50, t75 = (np.where(IOU_THRESHOLDS == v)[0] for v in (0.5, 0.75))
        values = {"AP": -1.0 if self.coco_ap_undefined else mean(precision[:, :, :, 0]), "AP50": mean(precision[t50][:, :, :, 0]),
                  "AP75": mean(precision[t75][:, :, :, 0])}
        values.update({f"AP{n[0]}": mean(precision[:, :, :, a]) for a, n in enumerate(AREA_NAMES) if a})
        if self.lvis:
            values.update({f"AP{f}": mean(precision[:, :, group, [0]]) if group else -1.0
                           for f, group in zip(FREQUENCIES, self.freq_groups)})
        return {n: v for n, v in values.items() if v > -1}
