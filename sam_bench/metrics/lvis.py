"""The LVISEval (lvis-api) half of the streamed mask AP in `sam_bench.metrics.coco`.

Per image: LVISEval's own matching on a one-image index. At the end: its `accumulate` /
`summarize` run on the stored matches, with no LVIS / LVISResults objects of the whole dataset.

Traps handled here (each silently changes numbers or floods the log):
- LVISResults keeps the top `max_dets` (300) per image and cannot be built from no results;
- lvis-api logs (and warns about user-given results) on every call: once per image here;
- lvis 0.5.3 uses `np.float`, removed in NumPy 1.24 (patched for the duration of accumulate).
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator, Optional, Sequence

import numpy as np


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


def lvis_image_entries(image: dict[str, Any], anns: list[dict[str, Any]], results: list[dict[str, Any]],
                       cats: Sequence[dict[str, Any]], max_dets: int) -> list[Optional[dict[str, Any]]]:
    """LVISEval's per-(category, area) matches of one image (None where it has no entry)."""
    from lvis import LVISEval, LVISResults

    with _quiet_lvis():
        gt = _lvis_index({"images": [image], "annotations": anns, "categories": cats})
        if results:
            dt = LVISResults(gt, results, max_dets=max_dets)
        else:  # LVISResults cannot be built from an empty list (it reads results[0])
            dt = _lvis_index({"images": [image], "annotations": [], "categories": cats}, results=True)
        ev = LVISEval(gt, dt, "segm")
        ev.params.img_ids = [image["id"]]
        ev.params.cat_ids = [c["id"] for c in cats]
        ev.params.max_dets = max_dets
        ev.evaluate()
    return [None if e is None else {"scores": e["dt_scores"], "matches": e["dt_matches"],
                                    "ignore": e["dt_ignore"], "gt_ignore": e["gt_ignore"]}
            for e in ev.eval_imgs]


def lvis_accumulate(eval_imgs: Sequence[Optional[dict[str, Any]]], img_ids: list[Any],
                    categories: Sequence[dict[str, Any]], max_dets: int) -> Any:
    """LVISEval after its `accumulate` on the stored per-image matches (no LVIS / LVISResults objects).

    `eval_imgs`: LVISEval's flat per-(category, area, image) list over `categories` x `img_ids`.
    """
    from lvis import LVISEval
    from lvis.eval import Params

    ev = LVISEval.__new__(LVISEval)  # no LVIS/LVISResults objects: matches are already done
    ev.logger = logging.getLogger("lvis")
    ev.params = Params(iou_type="segm")
    ev.params.img_ids = img_ids
    ev.params.cat_ids = [c["id"] for c in categories]
    ev.params.max_dets = max_dets
    ev.eval_imgs = eval_imgs
    ev.eval, ev.results = {}, {}
    ev.lvis_gt = _lvis_index({"images": [], "annotations": [], "categories": list(categories)})
    ev.freq_groups = ev._prepare_freq_group()
    with _numpy_float_alias(), _quiet_lvis():
        ev.accumulate()
    return ev


def lvis_summarize(ev: Any) -> dict[str, float]:
    """LVIS `AP AP50 AP75 APs APm APl APr APc APf` (fractions) of an accumulated LVISEval."""
    with _numpy_float_alias(), _quiet_lvis():
        ev.summarize()
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
    return {n: float(ev.results[n]) for n in names if ev.results[n] > -1}
