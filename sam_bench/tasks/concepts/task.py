"""Promptable concept segmentation (SAM 3's task): per (image, noun phrase) query, every instance or
none, scored with cgF1 as `sam3.eval.cgf1_eval.CGF1Evaluator` scores it (`sam_bench.metrics.cgf1`).

Sources: a ConceptSegmenter model (SAM 3's text path, transformers' Sam3Model), a promptable model
turned into one by `detect.concept_sources.build_concept_source` (an open-vocabulary detector's boxes
or CLIP-scored candidates), or a predictions file made elsewhere (`--predictions`: no model, images
not read). Each image's queries are scored as the image is done; the per-query records (image-level
outcome, TP / FP / FN per IoU threshold) stay in the results so queries can be resampled later.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ...data.coco_meta import check_crowd
from ...data.coco_results import PerImageResults, encode_masks
from ...data.concepts import ConceptQuery, sample_queries
from ...data.types import Dataset, ImageSample
from ...detect.concept_sources import build_concept_source
from ...engine.context import ImageResult, RunContext
from ...errors import ConfigError, DataError
from ...metrics.bootstrap import UnitSample
from ...metrics.cgf1 import (CROWD_MODES, INTERVAL_METRICS, IOU_THRESHOLDS, PredictedMask, accumulate,
                              query_counts, score_query)
from ...models.base import PromptableSegmenter
from ...models.concepts import ConceptMasks, ConceptSegmenter
from ...registry import TASKS
from ...reporting.entry import ReportEntry
from ..base import Task
from .predictions import PredictionIndex, load_predictions
from .report import concepts_section

log = logging.getLogger(__name__)
# Columns of items.csv: the counts at IoU 0.5 and 0.75 (the record holds all ten thresholds).
AT = {"0.5": int(np.argmin(abs(IOU_THRESHOLDS - 0.5))), "0.75": int(np.argmin(abs(IOU_THRESHOLDS - 0.75)))}

PROTOCOL_NOTE = ("cgF1 as sam3.eval.cgf1_eval.CGF1Evaluator: predictions with score < 0.5 dropped; Hungarian "
                 "matching on mask IoU; cgF1 = positive micro F1 x image-level MCC, mean over IoU 0.50:0.95; "
                 "several annotator files: best per query (oracle); only instance-exhaustive queries scored")
CROWD_NOTE = {"official": "crowd annotations dropped before matching (the official evaluator): a correct "
                          "prediction inside a crowd region counts as a false positive",
              "ignore": "predictions inside a crowd region (>= half their area) that match no instance at IoU "
                        "0.5 are removed from the count"}


@dataclass
class ConceptOptions:
    predictions: Optional[str] = None  # COCO results json (image_id = query id, RLE, score): score it, no model
    crowd: str = "official"  # official | ignore
    detector: Optional[str] = None  # promptable models: transformers:DIR open-vocabulary detector
    clip_checkpoint: Optional[str] = None  # promptable models: CLIP-scored SAM candidates instead
    clip_model: str = "ViT-L-14-336"  # open_clip architecture of --clip-checkpoint (a weights file)
    negatives_per_image: int = 5  # COCO: absent categories asked per image (seeded by --seed and image id)
    save_predictions: bool = True  # model runs: write predictions.json (the same format) for rescoring


@TASKS.register("concepts", help="promptable concept segmentation (SAM 3, SA-Co / COCO / LVIS noun phrases), cgF1")
class ConceptsTask(Task):
    name = "concepts"
    title = "Promptable concept segmentation (noun phrases; cgF1 as SAM 3's evaluator)"
    Options = ConceptOptions
    requires = (ConceptSegmenter, PromptableSegmenter)
    paper_section = (99, 20)
    headline_metrics = INTERVAL_METRICS

    def __init__(self, options: ConceptOptions) -> None:
        super().__init__(options)
        if options.crowd not in CROWD_MODES:
            raise ConfigError(f"option crowd of task 'concepts': {options.crowd!r}; choose {CROWD_MODES}")
        if options.negatives_per_image < 0:
            raise ConfigError("option negatives_per_image of task 'concepts' must be >= 0")
        if options.predictions and (options.detector or options.clip_checkpoint):
            raise ConfigError("--predictions scores a file made elsewhere: drop --detector / --clip-checkpoint")
        self.source: Optional[ConceptSegmenter] = None
        self.predictions: Optional[PredictionIndex] = None
        self.coco_rule: Optional[dict[str, Any]] = None
        self.store: Optional[PerImageResults] = None

    def scores_predictions(self) -> bool:
        return bool(self.options.predictions)

    def input_files(self, dataset: Dataset, index: int) -> list[Path]:
        if not self.scores_predictions():
            return dataset.input_files(index)
        # Scoring a file reads the annotation files and the predictions, never the image.
        annotations = getattr(dataset, "annotation_files", None) or [dataset.annotation_file]
        return [Path(p) for p in annotations if p is not None] + [Path(self.options.predictions)]

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"protocol": PROTOCOL_NOTE, "crowd_rule": CROWD_NOTE[self.options.crowd],
                                **vars(self.options)}
        if self.source is not None:
            desc["source"] = self.source.source_label or self.source.info.label
        return desc

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: RunContext) -> None:
        dataset = ctx.dataset
        if not hasattr(dataset, "query_ids"):  # not SA-Co: COCO / LVIS categories as phrases
            if not dataset.categories:
                raise ConfigError(f"task 'concepts' needs an SA-Co dataset or a COCO/LVIS-format one; "
                                  f"'{dataset.name}' has neither queries nor categories")
            self.coco_rule = {"categories": {int(c["id"]): str(c["name"]) for c in dataset.categories},
                              "negatives": self.options.negatives_per_image, "seed": ctx.config.seed,
                              "federated": dataset.metadata.get("format") == "lvis"}
        if self.options.predictions:
            self.predictions = load_predictions(self.options.predictions, self._is_query(dataset),
                                                f"dataset '{dataset.name}'")
            return
        model, o = ctx.model, self.options
        if isinstance(model, ConceptSegmenter) and not (o.detector or o.clip_checkpoint):
            self.source = model
        else:
            # the composed sources (detector + promptable family, CLIP candidates)
            self.source = build_concept_source(model, o.detector, o.clip_checkpoint, ctx.device, clip_model=o.clip_model)
        if self.options.save_predictions:
            self.store = PerImageResults(ctx.out_dir / "predictions")

    def _is_query(self, dataset: Any) -> Callable[[str], bool]:
        if self.coco_rule is None:
            known = dataset.query_ids()
            return known.__contains__
        categories = self.coco_rule["categories"]

        def coco_query(qid: str) -> bool:  # "<image id>_<category id>"
            image, _, category = qid.rpartition("_")
            return bool(image) and category.isdigit() and int(category) in categories
        return coco_query

    # ------------------------------------------------------------------ evaluation
    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        if self.coco_rule is not None:
            check_crowd(sample, ctx.dataset, self.name)
        queries = list(sample_queries(sample, self.coco_rule))
        scored = [q for q in queries if q.exhaustive]
        size = (sample.height, sample.width)
        if self.predictions is not None:
            preds = [self.predictions.for_query(q.query_id, size) for q in scored]
        else:
            preds = self._segment(ctx, sample, scored)
        records, rows = [], []
        for q, pred in zip(scored, preds):
            rec = score_query(q.truths, pred, self.options.crowd)
            records.append({"query_id": q.query_id, "positive": q.positive, **rec})
            rows.append({"query_id": q.query_id, "phrase": q.phrase, "positive": q.positive,
                         "predictions": len(pred), "kept": rec["num_dt"], "il": rec["il"],
                         "annotator": rec["annotator"], "crowd_dropped": rec["crowd_dropped"],
                         **{f"{k}@{t}": rec[k][i] if k in rec else None
                            for k in ("tp", "fp", "fn") for t, i in AT.items()}})
        excluded = [q.query_id for q in queries if not q.exhaustive]
        return ImageResult(sample.image_id, rows, {"queries": records, "excluded": excluded})

    def _segment(self, ctx: RunContext, sample: ImageSample, queries: Sequence[ConceptQuery]) -> list[list[PredictedMask]]:
        if not queries:
            if self.store is not None:
                self.store.write(_file_key(sample.image_id), [])
            return []
        image = sample.load_image()
        with ctx.timed("segment"):
            found = self.source.segment_concepts(image, [q.phrase for q in queries])
        if len(found) != len(queries):
            raise DataError(f"{self.source.info.label}: {len(found)} results for {len(queries)} phrases "
                            f"(image {sample.image_id})")
        out, records = [], []
        for q, masks in zip(queries, found):
            self._check(masks, image.shape[:2], q, sample)
            rles = encode_masks(masks.masks)
            out.append([PredictedMask(rle, float(s)) for rle, s in zip(rles, masks.scores)])
            boxes = np.asarray(masks.boxes, np.float64)
            for rle, score, box in zip(rles, masks.scores, boxes):
                records.append({"image_id": q.source_id, "category_id": q.extra.get("category_id", 1),
                                "segmentation": rle, "score": float(score),
                                "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
        if self.store is not None:
            self.store.write(_file_key(sample.image_id), records)
        return out

    def _check(self, masks: ConceptMasks, size: tuple[int, int], query: ConceptQuery, sample: ImageSample) -> None:
        where = f"{self.source.info.label} on image {sample.image_id}, phrase {query.phrase!r}"
        if tuple(masks.masks.shape[1:]) != tuple(size) and len(masks.scores):
            raise DataError(f"{where}: masks of size {tuple(masks.masks.shape[1:])}, the image is {size}")
        if not np.isfinite(np.asarray(masks.scores, np.float64)).all():
            raise DataError(f"{where}: a score is not finite (NaN weights?)")

    # ------------------------------------------------------------------ metrics
    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        records = [r for res in results for r in res.payload.get("queries", [])]
        metrics: dict[str, Any] = accumulate(records) if records else {}
        positives = sum(1 for r in records if r["positive"])
        metrics.update({"queries": len(records), "queries_positive": positives,
                        "queries_negative": len(records) - positives,
                        "queries_excluded": sum(len(res.payload.get("excluded", [])) for res in results)})
        if self.predictions is not None:
            asked = {r["query_id"] for r in records}
            outside = {q: v for q, v in self.predictions.by_query.items() if q not in asked}
            metrics["predictions_not_scored"] = sum(len(v) for v in outside.values())
            if outside:
                log.warning("%s: %d predictions for %d query ids are not scored (queries outside this run's images, "
                            "not instance-exhaustive, or not asked), e.g. %s", self.predictions.path,
                            metrics["predictions_not_scored"], len(outside), ", ".join(sorted(outside)[:3]))
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> Optional[UnitSample]:
        """Queries, each its vector of counts (`metrics.cgf1.query_counts`): a resample sums them and
        recomputes cgF1 with `accumulate`'s own arithmetic."""
        records = [r for res in results for r in res.payload.get("queries", [])]
        if not records:
            return None
        return UnitSample("query", [r["query_id"] for r in records], "cgf1",
                          {"counts": [query_counts(r).tolist() for r in records]})

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        if self.store is not None:
            self.store.merge([_file_key(r.image_id) for r in results], ctx.out_dir / "predictions.json")

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        return concepts_section(cls.title, entries)


def _file_key(image_id: str) -> str:
    """A file name for an image id (SA-Co's are paths)."""
    return hashlib.sha1(image_id.encode()).hexdigest()[:20]

