"""Mask AP of resampled image sets, from the per-image match records of `SegmEvaluator`.

The bootstrap re-runs the accumulation, never the matching: `COCOeval.evaluateImg` /
`LVISEval.evaluate_img` ran once per image during the task (the records hold their scores and
match / ignore bits). Handing 1,000 resampled record lists to the libraries' own `accumulate`
(`SegmEvaluator.summarize`) is exact but takes seconds per resample (2.2 s for 1,000 COCO-like
images, `benchmarks/bootstrap_ap.py`): both walk a Python list of every (category, area, image)
entry, sort, and run a Python loop per detection for the precision envelope. Here the same
arithmetic is reorganised so one pass serves all resamples at once (`ResampledAP.many`):

- A resample is a multiset of images, i.e. a weight per image, listed in image order (the libraries'
  result depends on the listing only through the order of tied scores, which a multiset does not
  have; the full set, the point estimate, is listed in image order anyway). The libraries
  concatenate the detections in listing order and stable-sort by score: that is the global score
  order with each detection repeated `weight` times, except for scores tied within one image
  drawn more than once (d1 d2 d1 d2, not d1 d1 d2 d2). Categories where such a tie touches a
  detection that matters (below) are accumulated per resample as the libraries do (`_accumulate_one`).
- Of the precision-recall points only true positives matter: a false positive's point has the
  recall and at most the precision of the point before it, and an ignored one repeats it, so the
  interpolated precision (the envelope) and the recall-threshold lookup never land on them. Their
  only effect is the count of false positives before each true positive. So per (category, area)
  the points are the detections that are a true positive at some IoU threshold; the number of
  counted detections up to each point is one sparse matrix product (images x points, with every
  resample as a column) plus a correction for the few detections whose counted status changes
  with the threshold.
- Precision and recall at each point are computed with the libraries' float expressions on the
  same integer counts, so the interpolated precisions are bit-identical (`precision` gives the
  libraries' (T, R, K, A) array; tests compare it). `many` sums them per resample, so its means
  may differ from `summarize`'s in the last bits (another summation order); `__call__` (the
  point estimate) averages the full array as the libraries do.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np
from pycocotools.cocoeval import Params
from scipy import sparse

from ..core.workers import available_cpus
from .coco_records import AREA_NAMES, _T, _unbits, _unpack

_PARAMS = Params(iouType="segm")
IOU_THRESHOLDS = _PARAMS.iouThrs
RECALL_THRESHOLDS = _PARAMS.recThrs
FREQUENCIES = ("r", "c", "f")  # LVIS's img_count_lbl order
_A, _R = len(AREA_NAMES), len(RECALL_THRESHOLDS)
_T50, _T75 = (int(np.where(IOU_THRESHOLDS == v)[0][0]) for v in (0.5, 0.75))
_CHUNK_BYTES = 200 * 2 ** 20  # resamples evaluated together: their image weights stay under this
_BATCH_ELEMENTS = 2 ** 22  # a category's thresholds are computed together while their arrays stay this small


class _Area:
    """What one area of a category needs: its points (detections that are a true positive at some
    IoU threshold), per threshold which points are true positives, and the detections whose counted
    status at a threshold differs from their usual one."""

    def __init__(self, image: np.ndarray, counted: np.ndarray, true_positive: np.ndarray, n_images: int) -> None:
        rank = np.arange(len(image))  # detections come in the libraries' order
        usual = counted.sum(axis=0) * 2 >= _T  # the status at most thresholds
        change = counted.astype(np.int8) - usual.astype(np.int8)  # (T, D)
        on_curve = true_positive.any(axis=0)
        point_rank = rank[on_curve]
        self.point_image = image[on_curve]
        # every detection counts (at its usual status) toward the points at or after it
        gap = np.searchsorted(point_rank, rank, side="left")
        keep = usual & (gap < len(point_rank))
        self.before = sparse.csr_matrix((np.ones(keep.sum()), (gap[keep], image[keep])),
                                        shape=(len(point_rank), n_images))
        rows = [np.flatnonzero(true_positive[t, on_curve]) for t in range(_T)]
        self.lengths = np.array([len(r) for r in rows])
        # thresholds of similar length share one array, each padded with the index of an empty point
        self.groups: list[tuple[np.ndarray, np.ndarray]] = []  # (thresholds, point indices (G, width))
        by_length = sorted(range(_T), key=lambda t: -self.lengths[t])
        while by_length:
            longest = self.lengths[by_length[0]]
            ts = np.array([t for t in by_length if self.lengths[t] * 4 >= longest * 3])
            width = max(1, longest)
            index = np.full((len(ts), width), len(point_rank))
            for g, t in enumerate(ts):
                index[g, :len(rows[t])] = rows[t]
            self.groups.append((ts, index))
            by_length = [t for t in by_length if t not in ts]
        self.changes = []  # (t, images, signs, changed detections at or before each true positive)
        for t in range(_T):
            changed = np.flatnonzero(change[t])
            if len(changed):
                upto = np.searchsorted(changed, point_rank[rows[t]], side="right")
                self.changes.append((t, image[changed], change[t, changed].astype(np.float64), upto))


class _Category:
    """One category's detections over all images, and what the accumulation needs of them."""

    def __init__(self, images: list[int], blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 npig: list[list[int]]) -> None:
        self.images = np.asarray(images)  # unit indices, increasing
        self.npig = np.asarray(npig, np.int64)  # (images, areas)
        lengths = np.array([len(b[0]) for b in blocks])
        self.lengths = lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.score = np.concatenate([b[0] for b in blocks])
        self.match = np.concatenate([b[1] for b in blocks])
        self.ignore = np.concatenate([b[2] for b in blocks])
        self.exact_only = False
        self.areas: list[_Area] = []
        self._prepare(np.repeat(np.arange(len(images)), lengths))

    def _prepare(self, image: np.ndarray) -> None:
        order = np.argsort(-self.score, kind="mergesort")  # the libraries' order for the full set
        image, score = image[order], self.score[order]
        match, ignore = self.match[order], self.ignore[order]
        matters = np.zeros(len(order), bool)
        per_area = []
        for a in range(_A):
            counted = ~_unbits(ignore, a)  # (T, D)
            true_positive = _unbits(match, a) & counted
            per_area.append((counted, true_positive))
            matters |= true_positive.any(axis=0) | (counted != counted[:1]).any(axis=0)
        # Tied scores of two images keep the image order in both the listing and the global order;
        # two tied detections of one image drawn twice come as d1 d2 d1 d2 in the listing, d1 d1 d2 d2
        # here: where either is a point or changes status, this category goes per resample.
        tied = np.flatnonzero((score[1:] == score[:-1]) & (image[1:] == image[:-1]))
        if len(tied) and (matters[tied] | matters[tied + 1]).any():
            self.exact_only = True
            return
        self.areas = [_Area(image, counted, true_positive, len(self.images)) for counted, true_positive in per_area]
        del self.score, self.match, self.ignore  # only the per-resample path reads the detections again

    # ------------------------------------------------------------------ all resamples at once
    def accumulate(self, weights: np.ndarray, curve: bool) -> tuple[np.ndarray, np.ndarray]:
        """weights (n_images, S) of this category's images in S resamples ->
        (defined (S, A), sums (S, A, T) of the interpolated precision over recall thresholds), or
        with `curve` the precisions themselves (S, T, R, A)."""
        S = weights.shape[1]
        npig = weights.T @ self.npig  # (S, A)
        defined = npig > 0
        out = np.zeros((S, _T, _R, _A)) if curve else np.zeros((S, _A, _T))
        if self.exact_only:
            for s in range(S):
                q = np.zeros((_T, _R, _A))
                _accumulate_one(self, np.repeat(np.arange(len(self.images)), weights[:, s].astype(np.int64)), q)
                out[s] = q if curve else q.sum(axis=1).T
            return defined, out
        weights_t = weights.T.astype(np.int32)  # (S, images): resamples first, points last
        for a, area in enumerate(self.areas):
            if not defined[:, a].any():
                continue
            # one extra point with no weight and infinitely many counted: precision 0, recall unchanged
            counted_before = np.hstack([np.cumsum(area.before @ weights, axis=0).T, np.full((S, 1), np.inf)])
            point_weight = np.hstack([weights_t[:, area.point_image], np.zeros((S, 1), np.int32)])
            reached_at = _thresholds_reached(npig[:, a])  # (S, most ground truth + 1); tp never exceeds it
            for ts, index in area.groups:
                if len(ts) > 1 and index.size * S > _BATCH_ELEMENTS:  # large: one threshold at a time, unpadded
                    parts = [(ts[g:g + 1], index[g:g + 1, :max(1, area.lengths[t])]) for g, t in enumerate(ts)]
                else:
                    parts = [(ts, index)]
                for part_ts, part_index in parts:
                    self._thresholds(area, part_ts, part_index, weights_t, counted_before, point_weight,
                                     reached_at, out[..., a] if curve else out[:, a])
        return defined, out

    @staticmethod
    def _thresholds(area: _Area, ts: np.ndarray, index: np.ndarray, weights_t: np.ndarray, counted_before: np.ndarray,
                    point_weight: np.ndarray, reached_at: np.ndarray, out: np.ndarray) -> None:
        """Fill `out` (S, T) sums, or (S, T, R) curves, at the thresholds `ts` of one area; `index`
        (len(ts), L) holds each threshold's true positives (points), padded with the empty point."""
        S = len(weights_t)
        tp = np.cumsum(point_weight[:, index], axis=-1)  # (S, thresholds, points)
        counted = counted_before[:, index]
        for t, images, signs, upto in area.changes:
            for g in np.flatnonzero(ts == t):
                changes = np.hstack([np.zeros((S, 1)), np.cumsum(weights_t[:, images] * signs, axis=1)])
                counted[:, g, :len(upto)] += changes[:, upto]
        # the libraries' tp / (fp + tp + eps): fp + tp is exactly the counted number
        precision = tp / (counted + np.spacing(1))
        envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
        # per point: how many recall thresholds its recall tp / npig reaches
        reached = np.take(reached_at, tp + (np.arange(S) * reached_at.shape[1]).reshape(S, 1, 1), mode="clip")
        if out.ndim == 3:
            for g, t in enumerate(ts):
                out[:, t] = _interpolated(envelope[:, g:g + 1], reached[:, g:g + 1])[:, 0]
        else:  # sum over thresholds r of envelope[first point reaching r]
            out[:, ts] = np.einsum("sgl,sgl->sg", envelope, np.diff(reached, axis=-1, prepend=0))


def _thresholds_reached(npig: np.ndarray) -> np.ndarray:
    """(S, most + 1), most = max(npig): for k = 0..most true positives, how many recall thresholds the recall k / npig
    reaches in the libraries' float arithmetic (`searchsorted(thresholds, k / npig, "right")`).
    Columns with no ground truth are left 0 (the caller ignores them)."""
    S, most = len(npig), int(npig.max())
    with np.errstate(divide="ignore", invalid="ignore"):
        npig = np.where(npig > 0, npig, np.nan)[:, None]
        need = np.ceil(RECALL_THRESHOLDS * npig)  # fewest true positives reaching each threshold
        need -= (need - 1) / npig >= RECALL_THRESHOLDS  # ceil of a rounded product: one step either way
        need += need / npig < RECALL_THRESHOLDS
    need = np.where(np.isnan(need), most + 1, np.minimum(need, most + 1)).astype(np.int64)
    counts = np.bincount((need + np.arange(S)[:, None] * (most + 2)).ravel(), minlength=S * (most + 2))
    return np.cumsum(counts.reshape(S, most + 2)[:, :most + 1], axis=1)


def _interpolated(envelope: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """(S, G, R): the envelope at the first point reaching each recall threshold (0 past the last
    point), as the libraries' `searchsorted(recall, thresholds, "left")`. envelope, reached (S, G, L)."""
    first = (reached[..., None] <= np.arange(_R)).sum(axis=-2)  # (S, G, R): points that reach no further
    padded = np.concatenate([envelope, np.zeros(envelope.shape[:-1] + (1,))], axis=-1)
    return np.take_along_axis(padded, first, axis=-1)


def _accumulate_one(cat: _Category, index: np.ndarray, out: np.ndarray) -> None:
    """out (T, R, A): the libraries' own per-resample accumulation for this category; `index` lists
    the category's images (local indices) in the resample's listing order."""
    if not len(index):
        return
    lengths = cat.lengths[index]
    first = np.cumsum(lengths) - lengths
    gather = np.repeat(cat.starts[index] - first, lengths) + np.arange(lengths.sum())
    order = np.argsort(-cat.score[gather], kind="mergesort")  # the libraries' sort
    match, ignore = cat.match[gather][order], cat.ignore[gather][order]
    npig = cat.npig[index].sum(axis=0)
    for a in range(_A):
        if npig[a] == 0:
            continue
        matched, counted = _unbits(match, a), ~_unbits(ignore, a)
        tp_count = np.cumsum(matched & counted, axis=1, dtype=np.int32)
        tp = tp_count.astype(float)
        fp = (np.cumsum(counted, axis=1, dtype=np.int32) - tp_count).astype(float)
        recall = tp / npig[a]
        prec = tp / (fp + tp + np.spacing(1))
        prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # their envelope loop
        for t in range(_T):
            at = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
            ok = at < prec.shape[1]  # their try/except: thresholds past the last recall stay 0
            out[t, ok, a] = prec[t, at[ok]]


class ResampledAP:
    """COCO `AP AP50 AP75 APs APm APl` or LVIS `... APr APc APf` of any multiset of the images
    (an index array with repeats; its order does not matter: the images are listed in index order)."""

    def __init__(self, records: Sequence[dict[str, Any]], lvis: bool, categories: Sequence[dict[str, Any]],
                 max_dets: int) -> None:
        self.lvis = lvis
        self.n_units = len(records)
        # COCOeval.summarize reads its first AP at maxDets=100 whatever params.maxDets holds: with
        # another limit that AP is -1 there (and left out), so here too.
        self.coco_ap_undefined = not lvis and max_dets != 100
        parts: dict[int, tuple[list[int], list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[list[int]]]] = {}
        for image, rec in enumerate(records):
            if not rec["cats"]:
                continue
            det_cat = _unpack(rec["det_cat"], np.int64)
            score = _unpack(rec["score"], np.float64)
            match, ignore = _unpack(rec["match"], np.uint64), _unpack(rec["ignore"], np.uint64)
            for cat, npig in zip(rec["cats"], rec["npig"]):
                where = np.flatnonzero(det_cat == cat)
                images, blocks, npigs = parts.setdefault(int(cat), ([], [], []))
                images.append(image)
                blocks.append((score[where], match[where], ignore[where]))
                npigs.append(npig)
        self.cat_ids = sorted(parts)
        self.cats = [_Category(*parts[c]) for c in self.cat_ids]
        frequency = {int(c["id"]): c.get("frequency") for c in categories}
        self.freq_groups = [[k for k, c in enumerate(self.cat_ids) if frequency.get(c) == f] for f in FREQUENCIES]

    def _accumulated(self, indices: Sequence[np.ndarray], curve: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(k, defined, sums or curves) of every category for these resamples, in category order.
        Categories run on threads: the work is numpy calls that release the GIL."""
        weights = self._weights(indices)

        def one(cat: _Category) -> tuple[np.ndarray, np.ndarray]:
            return cat.accumulate(np.ascontiguousarray(weights[cat.images]), curve)

        with ThreadPoolExecutor(max(1, min(len(self.cats), available_cpus()))) as pool:
            for k, (defined, out) in enumerate(pool.map(one, self.cats)):
                yield k, defined, out

    def _weights(self, indices: Sequence[np.ndarray]) -> np.ndarray:
        """(units, S) float: how often each image is drawn in each resample."""
        S = len(indices)
        flat = np.concatenate([np.asarray(i, np.int64) + s * self.n_units for s, i in enumerate(indices)])
        return np.bincount(flat, minlength=S * self.n_units).reshape(S, self.n_units).T.astype(np.float64)

    def precision(self, index: np.ndarray) -> np.ndarray:
        """The libraries' `precision` array (T, R, K, A) at the last maxDets, for one resample."""
        precision = -np.ones((_T, _R, len(self.cats), _A))
        for k, defined, curve in self._accumulated([index], curve=True):
            for a in np.flatnonzero(defined[0]):
                precision[:, :, k, a] = curve[0, :, :, a]
        return precision

    def __call__(self, index: np.ndarray) -> dict[str, float]:
        return self._summarize(self.precision(np.asarray(index)))

    def many(self, indices: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """The metrics of every resample in `indices` (lists of unit indices, repeats allowed)."""
        chunk = max(1, _CHUNK_BYTES // (8 * max(1, self.n_units)))
        out: list[dict[str, float]] = []
        for begin in range(0, len(indices), chunk):
            out += self._many(indices[begin:begin + chunk])
        return out

    def _many(self, indices: Sequence[np.ndarray]) -> list[dict[str, float]]:
        S = len(indices)
        totals, n_defined = np.zeros((S, _A, _T)), np.zeros((S, _A))  # over categories
        group_of = {k: g for g, group in enumerate(self.freq_groups) for k in group}
        group_totals, group_defined = np.zeros((S, len(FREQUENCIES))), np.zeros((S, len(FREQUENCIES)))
        for k, defined, sums in self._accumulated(indices, curve=False):
            sums = np.where(defined[..., None], sums, 0.0)
            totals += sums
            n_defined += defined
            if k in group_of:
                group_totals[:, group_of[k]] += sums[:, 0].sum(axis=1)
                group_defined[:, group_of[k]] += defined[:, 0]

        def mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
            return np.where(count > 0, total / np.maximum(count, 1), -1.0)

        every = _T * _R
        every_ap = mean(totals[:, 0].sum(axis=1), n_defined[:, 0] * every)
        values = {"AP": np.full(S, -1.0) if self.coco_ap_undefined else every_ap,
                  "AP50": mean(totals[:, 0, _T50], n_defined[:, 0] * _R),
                  "AP75": mean(totals[:, 0, _T75], n_defined[:, 0] * _R)}
        values.update({f"AP{n[0]}": mean(totals[:, a].sum(axis=1), n_defined[:, a] * every)
                       for a, n in enumerate(AREA_NAMES) if a})
        if self.lvis:
            values.update({f"AP{f}": mean(group_totals[:, g], group_defined[:, g] * every) if self.freq_groups[g]
                           else np.full(S, -1.0) for g, f in enumerate(FREQUENCIES)})
        return [{n: float(v[s]) for n, v in values.items() if v[s] > -1} for s in range(S)]

    def _summarize(self, precision: np.ndarray) -> dict[str, float]:
        """The libraries' `_summarize` selections: mean of the defined (> -1) precisions."""
        def mean(s: np.ndarray) -> float:
            return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0

        values = {"AP": -1.0 if self.coco_ap_undefined else mean(precision[:, :, :, 0]),
                  "AP50": mean(precision[[_T50]][:, :, :, 0]), "AP75": mean(precision[[_T75]][:, :, :, 0])}
        values.update({f"AP{n[0]}": mean(precision[:, :, :, a]) for a, n in enumerate(AREA_NAMES) if a})
        if self.lvis:
            values.update({f"AP{f}": mean(precision[:, :, group, [0]]) if group else -1.0
                           for f, group in zip(FREQUENCIES, self.freq_groups)})
        return {n: v for n, v in values.items() if v > -1}
