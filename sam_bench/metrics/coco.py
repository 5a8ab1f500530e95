"""COCO / LVIS mask evaluation, streamed per image, scored by pycocotools and lvis-api.

Both protocols are evaluated one image at a time with the reference libraries' own per-image
matching (`COCOeval.evaluateImg`, `LVISEval.evaluate_img`, run on a one-image index), and only a
compact record of the matches is kept (scores and match/ignore bits). At the end the records are
handed back to the libraries' `accumulate` / `summarize`, so AP equals what a single global
COCOeval / LVISEval run on all predictions gives, while neither the predictions nor a second copy
of the ground truth are ever held in memory.

Traps handled here (each silently changes numbers in the libraries):
- results that carry a `bbox` get the box area instead of the mask area in both `loadRes` and
  `LVISResults`, so the small/medium/large bins move: bboxes are dropped before scoring;
- LVISResults keeps the top `max_dets` (300) per image, LVISEval drops detections of categories
  in neither the image's positive nor negative list, and pycocotools with `useCats=0` still drops
  detections whose category is not in `params.catIds`: class-agnostic proposals are therefore
  scored with pycocotools, one category shared by all proposals, and `maxDets=[1000]`;
- lvis 0.5.3 uses `np.float`, removed in NumPy 1.24 (patched for the duration of accumulate).
"""
from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import logging
import math
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.types import ImageSample
from ..errors import DataError

log = logging.getLogger(__name__)

AREA_NAMES = ("all", "small", "medium", "large")
FREQUENCY_NAMES = {"f": "frequent", "c": "common", "r": "rare"}
#: Category id given to every class-agnostic proposal.
PROPOSAL_CATEGORY_ID = 1
_T = 10  # IoU thresholds .50:.05:.95 in both libraries


# ----------------------------------------------------------------------------------- helpers
def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) bool masks -> compressed RLEs with str counts (json-ready COCO segmentation)."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def image_ground_truth(sample: ImageSample) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A sample from the `coco` reader -> (COCO image record, COCO annotations of that image).

    Masks come from the reader (decoded once); re-encoding a decoded polygon or RLE gives the same
    RLE pycocotools would build, so IoUs are identical to scoring against the json itself.
    Annotation ids are renumbered 1..n: both libraries treat id 0 as "unmatched".
    """
    if "coco_image_id" not in sample.extra:
        raise DataError(f"image {sample.image_id}: no 'coco_image_id' (COCO/LVIS protocols need the "
                        "'coco' reader)")
    image_id = sample.extra["coco_image_id"]
    image = {"id": image_id, "height": sample.height, "width": sample.width,
             "neg_category_ids": list(sample.extra.get("neg_category_ids", [])),
             "not_exhaustive_category_ids": list(sample.extra.get("not_exhaustive_category_ids", []))}
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


@contextlib.contextmanager
def _quiet_lvis() -> Iterator[None]:
    """lvis-api logs (and warns about user-given results) on every call: once per image here."""
    logger = logging.getLogger("lvis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its logger.warn() calls
            yield
    finally:
        logger.setLevel(level)


def _lvis_index(dataset: dict[str, Any], results: bool = False):
    from lvis import LVIS, LVISResults

    cls = LVISResults if results else LVIS
    obj = cls.__new__(cls)
    obj.logger = logging.getLogger("lvis")
    obj.dataset = dataset  # LVIS(path) only reads files; same index, built from a dict
    obj._create_index()
    return obj


def _segm_results(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies without `bbox`, so the libraries compute each detection's area from its mask."""
    return [{k: v for k, v in r.items() if k != "bbox"} for r in results]


@contextlib.contextmanager
def _numpy_float_alias() -> Iterator[None]:
    added = not hasattr(np, "float")
    if added:
        np.float = float  # type: ignore[attr-defined]  # lvis 0.5.3 accumulate uses np.float
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


def _pack(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def _unpack(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def _bits(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    """A list over areas of (T, D) 0/1 arrays -> (D,) uint64, bit a*T+t."""
    out = np.zeros(width, np.uint64)
    for a, m in enumerate(rows):
        for t in range(m.shape[0]):
            out |= (m[t] != 0).astype(np.uint64) << np.uint64(a * _T + t)
    return out


def _unbits(bits: np.ndarray, area: int) -> np.ndarray:
    shifts = np.arange(area * _T, area * _T + _T, dtype=np.uint64)[:, None]
    return ((bits[None, :] >> shifts) & np.uint64(1)).astype(bool)


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
        entries = self._lvis_entries(image, anns, results, cats) if self.lvis else \
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

    def _lvis_entries(self, image, anns, results, cats) -> list[Optional[dict[str, Any]]]:
        from lvis import LVISEval, LVISResults

        with _quiet_lvis():
            gt = _lvis_index({"images": [image], "annotations": anns, "categories": cats})
            if results:
                dt = LVISResults(gt, results, max_dets=self.max_dets)
            else:  # LVISResults cannot be built from an empty list (it reads results[0])
                dt = _lvis_index({"images": [image], "annotations": [], "categories": cats}, results=True)
            ev = LVISEval(gt, dt, "segm")
            ev.params.img_ids = [image["id"]]
            ev.params.cat_ids = [c["id"] for c in cats]
            ev.params.max_dets = self.max_dets
            ev.evaluate()
        return [None if e is None else {"scores": e["dt_scores"], "matches": e["dt_matches"],
                                        "ignore": e["dt_ignore"], "gt_ignore": e["gt_ignore"]}
                for e in ev.eval_imgs]

    def summarize(self, records: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, float]:
        """records: (image id, evaluate_image record) for every image of the run."""
        store = _RecordStore(records, lvis=self.lvis)
        if not store.cat_ids:
            return {}
        if self.lvis:
            return self._lvis_summary(store)
        ev = COCOeval(iouType="segm")
        ev.params.imgIds = store.img_ids
        ev.params.catIds = store.cat_ids
        ev.params.maxDets = self._coco_max_dets()
        ev._paramsEval = copy.deepcopy(ev.params)
        ev.evalImgs = store
        with _quiet():
            ev.accumulate()
            ev.summarize()
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl")
        return {n: float(v) for n, v in zip(names, ev.stats[:6]) if v > -1}

    def _lvis_summary(self, store: "_RecordStore") -> dict[str, float]:
        from lvis import LVISEval
        from lvis.eval import Params

        ev = LVISEval.__new__(LVISEval)  # no LVIS/LVISResults objects: matches are already done
        ev.logger = logging.getLogger("lvis")
        ev.params = Params(iou_type="segm")
        ev.params.img_ids = store.img_ids
        ev.params.cat_ids = store.cat_ids
        ev.params.max_dets = self.max_dets
        ev.eval_imgs = store
        ev.eval, ev.results = {}, {}
        ev.lvis_gt = _lvis_index({"images": [], "annotations": [],
                                  "categories": [self.categories[c] for c in store.cat_ids]})
        ev.freq_groups = ev._prepare_freq_group()
        with _numpy_float_alias(), _quiet_lvis():
            ev.accumulate()
            ev.summarize()
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
        return {n: float(ev.results[n]) for n in names if ev.results[n] > -1}


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


# ------------------------------------------------------------------ COCO results (detections)
@dataclass
class DetectionIndex:
    """A COCO results file held as arrays, grouped by image: boxes xywh, categories, scores."""

    path: Path
    boxes: np.ndarray  # (N, 4) float64 xywh
    category_ids: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N,) float64
    _ranges: dict[int, tuple[int, int]]

    def __len__(self) -> int:
        return len(self.scores)

    def image_ids(self) -> list[int]:
        return list(self._ranges)

    def for_image(self, image_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, end = self._ranges.get(int(image_id), (0, 0))
        return self.boxes[start:end], self.category_ids[start:end], self.scores[start:end]


def iter_json_array(path: Path, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """The elements of a top-level json array, parsed one at a time (results files reach GBs)."""
    decoder = json.JSONDecoder()
    buffer, pos, started, eof = "", 0, False, False
    with open(path, "r", encoding="utf-8") as f:
        while True:
            while pos < len(buffer) and buffer[pos] in (" \t\r\n," if started else " \t\r\n"):
                pos += 1
            if not started and pos < len(buffer):
                if buffer[pos] != "[":
                    raise DataError(f"{path}: expected a json array of results (COCO results format)")
                started, pos = True, pos + 1
                continue
            if started and pos < len(buffer) and buffer[pos] == "]":
                return
            try:
                if pos >= len(buffer):
                    raise ValueError("need more data")
                value, end = decoder.raw_decode(buffer, pos)
                if end == len(buffer) and not eof:
                    raise ValueError("value may continue")  # a number cut at the chunk border
            except ValueError:
                if eof:
                    raise DataError(f"{path}: invalid or truncated json near character "
                                    f"{pos} of the last chunk") from None
                chunk = f.read(chunk_size)
                eof = not chunk
                buffer, pos = buffer[pos:] + chunk, 0
                continue
            yield value
            pos = end


def load_detections(path: str | Path, category_ids: set[int]) -> DetectionIndex:
    """Read a COCO results file (image_id, category_id, bbox xywh, score), validating each record."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: detections file not found")
    img, cat = array("q"), array("q")
    box, score = array("d"), array("d")
    for i, rec in enumerate(iter_json_array(path)):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: not an object")
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in rec]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)} (COCO results format needs "
                            "image_id, category_id, bbox [x, y, w, h], score)")
        b, s = rec["bbox"], rec["score"]
        if not (isinstance(b, list) and len(b) == 4 and all(_finite(v) for v in b)) or b[2] < 0 or b[3] < 0:
            raise DataError(f"{where}: bbox must be [x, y, w, h] with finite numbers and w, h >= 0; got {b!r}")
        if not _finite(s):
            raise DataError(f"{where}: score must be a finite number; got {s!r}")
        if not _integral(rec["image_id"]) or not _integral(rec["category_id"]):
            raise DataError(f"{where}: image_id and category_id must be integers")
        if int(rec["category_id"]) not in category_ids:
            raise DataError(f"{where}: category_id {rec['category_id']} is not a category of the "
                            "annotation file")
        img.append(int(rec["image_id"]))
        cat.append(int(rec["category_id"]))
        box.extend(float(v) for v in b)
        score.append(float(s))
    images = np.frombuffer(img, np.int64) if len(img) else np.zeros(0, np.int64)
    order = np.argsort(images, kind="stable")  # stable: the file's order within an image is kept
    images = images[order]
    starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]]) if len(images) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(images)]
    ranges = {int(images[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    boxes = np.frombuffer(box, np.float64).reshape(-1, 4) if len(box) else np.zeros((0, 4))
    cats = np.frombuffer(cat, np.int64) if len(cat) else np.zeros(0, np.int64)
    scores = np.frombuffer(score, np.float64) if len(score) else np.zeros(0)
    return DetectionIndex(path, boxes[order], cats[order], scores[order], ranges)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integral(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


class PerImageResults:
    """COCO results streamed to disk: one json per image (atomic), merged into one file at the end.

    An interrupted run keeps the files of finished images, so resuming redoes only the rest; the
    merge reads one image at a time, so memory stays flat however many masks the run produced.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def write(self, image_id: Any, records: list[dict[str, Any]]) -> None:
        from ..io import write_text

        write_text(self.dir / f"{image_id}.json", json.dumps(records))

    def merge(self, image_ids: Sequence[Any], path: Path) -> Optional[int]:
        """Concatenate the images' files (in this order) into `path`; None if already merged."""
        from ..io import atomic_write

        if not self.dir.is_dir():
            if path.is_file():
                return None  # merged by an earlier attempt that stopped before metrics.json
            raise DataError(f"{self.dir}: per-image predictions missing; rerun with --fresh")
        missing = [i for i in image_ids if not (self.dir / f"{i}.json").is_file()]
        if missing:
            raise DataError(f"{self.dir}: no predictions for {len(missing)} images (e.g. {missing[:3]}); "
                            "rerun with --fresh")
        count = 0

        def write(f) -> None:
            nonlocal count
            f.write("[")
            for image_id in image_ids:
                for rec in json.loads((self.dir / f"{image_id}.json").read_text()):
                    f.write(("," if count else "") + "\n" + json.dumps(rec))
                    count += 1
            f.write("\n]\n")

        atomic_write(path, write)
        for image_id in image_ids:
            (self.dir / f"{image_id}.json").unlink()
        for leftover in self.dir.iterdir():  # e.g. images dropped from a run resumed with --limit
            leftover.unlink()
        self.dir.rmdir()
        return count
