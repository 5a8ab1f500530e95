"""COCO / LVIS mask evaluation, streamed per image, scored by pycocotools and lvis-api.

Both protocols are evaluated one image at a time with the reference libraries' own per-image
matching (`COCOeval.evaluateImg`, `LVISEval.evaluate_img` in `sam_bench.metrics.lvis`, run on a
one-image index), and only a compact record of the matches is kept (scores and match/ignore bits).
At the end the records are handed back to the libraries' `accumulate` / `summarize`, so AP equals
what a single global COCOeval / LVISEval run on all predictions gives, while neither the
predictions nor a second copy of the ground truth are ever held in memory.

Traps handled here (each silently changes numbers in the libraries):
- results that carry a `bbox` get the box area instead of the mask area in both `loadRes` and
  `LVISResults`, so the small/medium/large bins move: bboxes are dropped before scoring;
- LVISResults keeps the top `max_dets` (300) per image, LVISEval drops detections of categories
  in neither the image's positive nor negative list, and pycocotools with `useCats=0` still drops
  detections whose category is not in `params.catIds`: class-agnostic proposals are therefore
  scored with pycocotools, one category shared by all proposals, and `maxDets=[1000]`;
- lvis 0.5.3 uses `np.float`, removed in NumPy 1.24 (see `sam_bench.metrics.lvis`).
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.coco_meta import coco_image_id
from ..data.coco_results import encode_masks
from ..data.types import ImageSample
from ..errors import DataError
from .bootstrap import UnitSample
from .coco_records import AREA_NAMES, _T, _bits, _pack, _unbits, _unpack
from .lvis import lvis_accumulate, lvis_image_entries, lvis_summarize

FREQUENCY_NAMES = {"f": "frequent", "c": "common", "r": "rare"}
#: Category id given to every class-agnostic proposal.
PROPOSAL_CATEGORY_ID = 1


# ----------------------------------------------------------------------------------- helpers
def image_ground_truth(sample: ImageSample) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A sample from the `coco` reader -> (COCO image record, COCO annotations of that image).

    Masks come from the reader (decoded once); re-encoding a decoded polygon or RLE gives the same
    RLE pycocotools would build, so IoUs are identical to scoring against the json itself.
    Annotation ids are renumbered 1..n: both libraries treat id 0 as "unmatched".
    """
    image_id = coco_image_id(sample)
    image = {"id": image_id, "height": sample.height, "width": sample.width,
             "neg_category_ids": list(sample.coco.neg_category_ids),
             "not_exhaustive_category_ids": list(sample.coco.not_exhaustive_category_ids)}
    objects = [o for o in sample.objects if o.category_id is not None]
    rles = encode_masks(np.stack([o.mask for o in objects])) if objects else []
    anns = []
    for i, (obj, rle) in enumerate(zip(objects, rles)):
        anns.append({"id": i + 1, "image_id": image_id, "category_id": obj.category_id,
                     "segmentation": rle, "area": float(obj.area), "iscrowd": int(obj.extra.get("iscrowd", 0)),
                     "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    return image, anns


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints progress for every call; per image that would flood the terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _coco_index(dataset: dict[str, Any]) -> COCO:
    coco = COCO()  # COCO(path) only reads files; the per-image index is built from a dict
    coco.dataset = dataset
    with _quiet():
        coco.createIndex()
    return coco


def _segm_results(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies without `bbox`, so the libraries compute each detection's area from its mask."""
    return [{k: v for k, v in r.items() if k != "bbox"} for r in results]


# ------------------------------------------------------------------------- instance AP (segm)
class SegmEvaluator:
    """Mask AP of category-labelled predictions: COCOeval (COCO json) or LVISEval (LVIS json).

    `evaluate_image` returns a small json-able record; `summarize` turns all records into
    COCO `AP AP50 AP75 APs APm APl` or LVIS `AP AP50 AP75 APs APm APl APr APc APf` (fractions).
    """

    def __init__(self, categories: Sequence[dict[str, Any]], lvis: bool, max_dets: Optional[int] = None) -> None:
        self.lvis = lvis
        self.categories = {c["id"]: c for c in categories}
        self.max_dets = max_dets if max_dets is not None else (300 if lvis else 100)
        if lvis and any("frequency" not in c for c in categories):
            raise DataError("LVIS evaluation needs a 'frequency' for every category")

    def evaluate_image(self, image: dict[str, Any], gt_anns: list[dict[str, Any]],
                       results: list[dict[str, Any]]) -> dict[str, Any]:
        results = _segm_results(results)
        cat_ids = sorted({a["category_id"] for a in gt_anns} | {r["category_id"] for r in results})
        if not cat_ids:
            return {"cats": [], "npig": [], "det_cat": "", "score": "", "match": "", "ignore": ""}
        unknown = [c for c in cat_ids if c not in self.categories]
        if unknown:
            raise DataError(f"image {image['id']}: category ids {unknown} are not in the annotation "
                            "file's categories")
        cats = [self.categories[c] for c in cat_ids]
        anns = [dict(a) for a in gt_anns]  # the libraries write into annotation dicts
        entries = lvis_image_entries(image, anns, results, cats, self.max_dets) if self.lvis else \
            self._coco_entries(image, anns, results, cats)
        A = len(AREA_NAMES)
        record_cats, npig, det_cat, score, match, ignore = [], [], [], [], [], []
        for k, cat in enumerate(cat_ids):
            per_area = entries[k * A:(k + 1) * A]
            if per_area[0] is None:
                continue
            scores = np.asarray(per_area[0]["scores"], np.float64)
            record_cats.append(cat)
            npig.append([int(np.count_nonzero(np.asarray(e["gt_ignore"]) == 0)) for e in per_area])
            det_cat.append(np.full(len(scores), cat, np.int64))
            score.append(scores)
            match.append(_bits([e["matches"] for e in per_area], len(scores)))
            ignore.append(_bits([e["ignore"] for e in per_area], len(scores)))
        cat_arr = np.concatenate(det_cat) if det_cat else np.zeros(0, np.int64)
        return {"cats": record_cats, "npig": npig, "det_cat": _pack(cat_arr),
                "score": _pack(np.concatenate(score) if score else np.zeros(0)),
                "match": _pack(np.concatenate(match) if match else np.zeros(0, np.uint64)),
                "ignore": _pack(np.concatenate(ignore) if ignore else np.zeros(0, np.uint64))}

    def _coco_max_dets(self) -> list[int]:
        # summarize() reads AP at maxDets[2]: keep the official [1, 10, 100] shape for any limit
        return [1, min(10, self.max_dets), self.max_dets]

    def _coco_entries(self, image, anns, results, cats) -> list[Optional[dict[str, Any]]]:
        gt = _coco_index({"images": [image], "annotations": anns, "categories": cats})
        with _quiet():
            dt = gt.loadRes(results) if results else _coco_index(
                {"images": [image], "annotations": [], "categories": cats})
            ev = COCOeval(gt, dt, "segm")
            ev.params.imgIds = [image["id"]]
            ev.params.catIds = [c["id"] for c in cats]
            ev.params.maxDets = self._coco_max_dets()
            ev.evaluate()
        return [None if e is None else {"scores": e["dtScores"], "matches": e["dtMatches"],
                                        "ignore": e["dtIgnore"], "gt_ignore": e["gtIgnore"]}
                for e in ev.evalImgs]

    def unit_sample(self, image_ids: Sequence[str], records: Sequence[dict[str, Any]]) -> UnitSample:
        """The per-image records as bootstrap units: each resample re-runs only the accumulation."""
        categories = [{k: c[k] for k in ("id", "frequency") if k in c} for c in self.categories.values()]
        return UnitSample("image", list(image_ids), "coco_segm", {"records": list(records)},
                          {"categories": categories, "lvis": self.lvis, "max_dets": self.max_dets})

    def summarize(self, records: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, float]:
        """records: (image id, evaluate_image record) for every image of the run."""
        accumulated = self.accumulate(records)
        if accumulated is None:
            return {}
        if self.lvis:
            return lvis_summarize(accumulated)
        with _quiet():
            accumulated.summarize()
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl")
        return {n: float(v) for n, v in zip(names, accumulated.stats[:6]) if v > -1}

    def accumulate(self, records: Sequence[tuple[Any, dict[str, Any]]]) -> Optional[Any]:
        """The library's evaluator (COCOeval / LVISEval) after its `accumulate` on these records
        (None when no image has a category); its eval["precision"] is what AP averages."""
        store = _RecordStore(records, lvis=self.lvis)
        if not store.cat_ids:
            return None
        if self.lvis:
            return lvis_accumulate(store, store.img_ids, [self.categories[c] for c in store.cat_ids], self.max_dets)
        ev = COCOeval(iouType="segm")
        ev.params.imgIds = store.img_ids
        ev.params.catIds = store.cat_ids
        ev.params.maxDets = self._coco_max_dets()
        ev._paramsEval = copy.deepcopy(ev.params)
        ev.evalImgs = store
        with _quiet():
            ev.accumulate()
        return ev


class _RecordStore:
    """The libraries' flat per-(category, area, image) evaluation list, built lazily from records.

    Only images and categories that have an entry are listed: the others are None in a global run
    and both `accumulate`s skip them, so the numbers are unchanged.
    """

    def __init__(self, records: Sequence[tuple[Any, dict[str, Any]]], lvis: bool) -> None:
        self.lvis = lvis
        self._by_image: dict[Any, tuple[dict[int, tuple[int, int, list[int]]], dict[str, np.ndarray]]] = {}
        cats: set[int] = set()
        for image_id, rec in records:
            if not rec["cats"]:
                continue
            det_cat = _unpack(rec["det_cat"], np.int64)
            arrays = {"score": _unpack(rec["score"], np.float64), "match": _unpack(rec["match"], np.uint64),
                      "ignore": _unpack(rec["ignore"], np.uint64)}
            where = {}
            for cat, npig in zip(rec["cats"], rec["npig"]):
                idx = np.flatnonzero(det_cat == cat)  # contiguous: one block per category
                start = int(idx[0]) if len(idx) else 0
                where[int(cat)] = (start, start + len(idx), npig)
            cats.update(where)
            self._by_image[image_id] = (where, arrays)
        self.img_ids = sorted(self._by_image)
        self.cat_ids = sorted(cats)
        self._areas = len(AREA_NAMES)

    def __len__(self) -> int:
        return len(self.cat_ids) * self._areas * len(self.img_ids)

    def __getitem__(self, index: int) -> Optional[dict[str, Any]]:
        n_img = len(self.img_ids)
        k, rest = divmod(index, self._areas * n_img)
        a, i = divmod(rest, n_img)
        where, arrays = self._by_image[self.img_ids[i]]
        hit = where.get(self.cat_ids[k])
        if hit is None:
            return None
        start, end, npig = hit
        scores = arrays["score"][start:end]
        matches = _unbits(arrays["match"][start:end], a).astype(np.float64)
        ignore = _unbits(arrays["ignore"][start:end], a)
        gt_ignore = np.zeros(npig[a])
        if self.lvis:
            return {"dt_scores": scores, "dt_ids": np.arange(start, end), "dt_matches": matches,
                    "dt_ignore": ignore, "gt_ignore": gt_ignore}
        return {"dtScores": scores, "dtMatches": matches, "dtIgnore": ignore, "gtIgnore": gt_ignore}


# --------------------------------------------------------------- class-agnostic proposal AR
class ProposalRecall:
    """Class-agnostic mask AR@max_dets over IoU .50:.95, with area and frequency breakdowns.

    Per image, pycocotools (`useCats=0`, `maxDets=[max_dets]`) matches the proposals to the ground
    truth; the record keeps, per breakdown, the number of non-ignored ground-truth objects and of
    those matched at each IoU threshold. Recall is what `COCOeval.accumulate` computes from them
    (matched / non-ignored, summed over images), summed here so no per-proposal data is kept.
    Frequency breakdowns restrict the ground truth to one LVIS frequency group.
    """

    def __init__(self, categories: Sequence[dict[str, Any]], max_dets: int = 1000) -> None:
        self.max_dets = max_dets
        self.frequency = {c["id"]: c["frequency"] for c in categories if "frequency" in c}

    def metric_names(self) -> list[str]:
        key = f"AR@{self.max_dets}"
        names = [key] + [f"{key}_{a}" for a in AREA_NAMES[1:]]
        return names + ([f"{key}_{g}" for g in FREQUENCY_NAMES.values()] if self.frequency else [])

    def evaluate_image(self, image: dict[str, Any], gt_anns: list[dict[str, Any]],
                       results: list[dict[str, Any]]) -> dict[str, list[int]]:
        """-> {metric name: [non-ignored GT, matched at IoU .50, .55, ..., .95]}."""
        results = _segm_results(results)
        names = self.metric_names()
        out = dict(zip(names, self._match(image, gt_anns, results, areas=True)))
        if self.frequency:
            for code, group in FREQUENCY_NAMES.items():
                subset = [a for a in gt_anns if self.frequency.get(a["category_id"]) == code]
                out[f"AR@{self.max_dets}_{group}"] = self._match(image, subset, results, areas=False)[0]
        return out

    def _match(self, image, gt_anns, results, areas: bool) -> list[list[int]]:
        cats = sorted({a["category_id"] for a in gt_anns} | {PROPOSAL_CATEGORY_ID})
        dataset = {"images": [image], "annotations": [dict(a) for a in gt_anns],
                   "categories": [{"id": c} for c in cats]}
        gt = _coco_index(dataset)
        dets = [{**r, "category_id": PROPOSAL_CATEGORY_ID} for r in results]
        with _quiet():
            dt = gt.loadRes(dets) if dets else _coco_index({**dataset, "annotations": []})
            ev = COCOeval(gt, dt, "segm")
            ev.params.useCats = 0
            ev.params.imgIds = [image["id"]]
            ev.params.maxDets = [self.max_dets]
            if not areas:
                ev.params.areaRng, ev.params.areaRngLbl = ev.params.areaRng[:1], ev.params.areaRngLbl[:1]
            ev.evaluate()
        counts = []
        for e in ev.evalImgs:  # one per area range (a single image, a single pseudo-category)
            if e is None:
                counts.append([0] * (_T + 1))
                continue
            tps = np.logical_and(e["dtMatches"] != 0, np.logical_not(e["dtIgnore"]))
            counts.append([int(np.count_nonzero(e["gtIgnore"] == 0))] + [int(v) for v in tps.sum(axis=1)])
        return counts

    def summarize(self, records: Sequence[dict[str, list[int]]]) -> dict[str, float]:
        metrics = {}
        for name in self.metric_names():
            total = np.sum([r[name] for r in records if name in r], axis=0) if records else np.zeros(_T + 1)
            if np.ndim(total) == 0 or total[0] == 0:
                continue  # no ground truth in this breakdown: COCOeval reports -1
            metrics[name] = float(np.mean(total[1:].astype(float) / total[0]))
        return metrics
