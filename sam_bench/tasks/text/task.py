"""Zero-shot text-to-mask with SAM + CLIP: sam-bench's protocol (the paper shows pictures only).

Per image: SAM candidate masks (automatic mask generation, a text-conditioned detector's boxes
prompted into SAM, Grounded-SAM style, or with candidates=concepts a concept model's own instances per
phrase, SAM 3's text path; see `sam_bench.detect.candidates`), computed once; every
candidate's square mask crop embedded once by CLIP (in batches); each phrase (embedded once per
run) takes the candidate with the highest cosine similarity, optionally refined with one extra
point at that mask's centre.
Phrases: the categories present in the image (target = union of the category's instances; also
class-aware mask AP with pycocotools, CLIP score as confidence, top-k candidates per (image,
category)) or referring expressions (RefCOCO family; gIoU, cIoU, Prec@IoU).
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol, Sequence

import numpy as np
import pandas as pd
import torch

from ...detect.clip import (CATEGORY_TEMPLATES, EXPRESSION_TEMPLATES, ClipScorer, check_templates, clip_identity,
                    load_clip)
from ...data.coco_results import encode_masks
from ...data.types import ImageSample
from ...errors import ConfigError, DataError
from ...metrics.bootstrap import UnitSample
from ...metrics.text import PRECISION_AT, ciou, coco_mask_ap, giou, per_item_iou, precision_at
from ...models.base import PromptableSegmenter
from ...reference import paper
from ...registry import TASKS
from ...reporting.markdown import markdown_table
from ...data.coco_meta import coco_image_id
from ...data.coco_results import load_detections
from ...detect.candidates import (AmgCandidates, Candidates, CandidateSource, ConceptCandidates, DetectorCandidates,
                                  refine_at_centres)
from ...detect.concept_sources import build_concept_source
from ...models.concepts import ConceptSegmenter
from ...engine.context import ImageResult, RunContext
from ...reporting.entry import ReportEntry
from ..base import Task

PROTOCOL_NOTE = ("sam-bench's text-to-mask protocol (SAM candidates + CLIP crop scoring), not the paper's: "
                 "the paper's text-prompted SAM was never released and it reports no number")


@dataclass
class Query:
    """One phrase to segment in one image, with its ground truth."""

    phrase: str
    templates: tuple[str, ...]
    target: Optional[np.ndarray]  # (H, W) bool; None for AP-only queries of absent categories
    kind: str  # "category" or "expression"
    category_id: Optional[int] = None
    ids: dict[str, Any] = field(default_factory=dict)  # ref_id / sent_id / ann_id of an expression


class Scorer(Protocol):
    def score(self, image: np.ndarray, candidates: Candidates, queries: Sequence[Query]) -> np.ndarray:
        """(Q, C) scores, higher is better."""


@dataclass
class TextOptions:
    clip_model: str = "ViT-L-14-336"  # open_clip architecture of --clip-checkpoint (paper: ViT-L/14@336)
    clip_checkpoint: Optional[str] = None  # weights file, or a dir with open_clip_config.json + weights
    phrases: str = "auto"  # auto | categories | expressions
    candidates: str = "amg"  # amg | detector | concepts (the model's own text path: sam3, hf Sam3Model)
    detections: Optional[str] = None  # COCO results json (text-conditioned detector), for candidates=detector
    path_options: ClassVar[tuple[str, ...]] = ("clip_checkpoint", "detections")  # made absolute before they are recorded
    detector_class_aware: bool = True  # a category phrase only considers boxes of its category
    detector_min_score: float = 0.0
    rank_by: str = "clip"  # clip | detector | concepts (trust the detector's / concept model's own score)
    category_templates: list[str] = field(default_factory=lambda: list(CATEGORY_TEMPLATES))
    expression_templates: list[str] = field(default_factory=lambda: list(EXPRESSION_TEMPLATES))
    crop_expand: float = 1.5  # the paper's training crops: box expanded by a random factor in [1, 2]
    crop_background: str = "zero"  # zero | keep: zeroing tells a part from the whole with the same box
    clip_batch_size: int = 64
    refine: bool = False  # one more decoder pass: the candidate's prompt + a point at the mask's centre
    ap_categories: str = "present"  # present | all | none: categories asked for mask AP
    ap_top_k: int = 20  # candidates per (image, category) submitted for mask AP
    amg_points_per_side: int = 32  # AMG settings: the official SamAutomaticMaskGenerator defaults
    amg_pred_iou_thresh: float = 0.88
    amg_stability_score_thresh: float = 0.95
    amg_box_nms_thresh: float = 0.7
    amg_crop_n_layers: int = 0
    amg_min_mask_region_area: int = 0
    amg_max_masks: Optional[int] = None


CHOICES = {"phrases": ("auto", "categories", "expressions"), "candidates": ("amg", "detector", "concepts"),
           "rank_by": ("clip", "detector", "concepts"), "crop_background": ("zero", "keep"),
           "ap_categories": ("present", "all", "none")}


def phrase_of(category_name: str) -> str:
    return category_name.replace("_", " ").strip()  # LVIS names: "baseball_bat"


@TASKS.register("text", help="zero-shot text-to-mask: SAM candidates scored by CLIP (sam-bench protocol)")
class TextTask(Task):
    name = "text"
    title = "Zero-shot text-to-mask (SAM + CLIP; sam-bench protocol)"
    headline_metrics = ("mIoU", "gIoU", "cIoU")
    Options = TextOptions
    paper_section = (7, 5)  # report order
    requires = (PromptableSegmenter, ConceptSegmenter)  # concept models only with candidates=concepts


    def __init__(self, options: TextOptions, scorer: Optional[Scorer] = None,
                 candidate_source: Optional[CandidateSource] = None) -> None:
        super().__init__(options)
        for name, allowed in CHOICES.items():
            if getattr(options, name) not in allowed:
                raise ConfigError(f"option {name} of task 'text': {getattr(options, name)!r}; choose {allowed}")
        if options.candidates == "detector" and not options.detections:
            raise ConfigError("candidates=detector needs --detections FILE (COCO results json of a detector)")
        if options.rank_by in ("detector", "concepts") and options.candidates != options.rank_by:
            raise ConfigError(f"rank_by={options.rank_by} needs candidates={options.rank_by}")
        if options.crop_expand < 1.0 or options.ap_top_k < 1 or options.clip_batch_size < 1:
            raise ConfigError("crop_expand must be >= 1, ap_top_k and clip_batch_size >= 1")
        self.templates = {"category": check_templates(options.category_templates, "category_templates"),
                          "expression": check_templates(options.expression_templates, "expression_templates")}
        self.scorer = scorer
        self._injected_scorer = scorer is not None
        self.candidate_source = candidate_source  # None: built by setup from the options
        self._injected_source = candidate_source is not None
        self._clip_identity: Optional[dict[str, Any]] = None
        self.kind = "category"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"protocol": PROTOCOL_NOTE, **asdict(self.options)}
        if self._injected_scorer:
            desc["scorer"] = type(self.scorer).__name__
        elif self.options.rank_by == "clip":
            if self._clip_identity is None:
                self._clip_identity = clip_identity(self.options.clip_model, self.options.clip_checkpoint)
            desc["clip"] = self._clip_identity
        desc["choices"] = {
            "category_target": "union of the category's non-crowd instances; crowd pixels are ignored",
            "answer": "the highest-scoring candidate (one mask per phrase)",
            "crop": "box of the mask expanded by crop_expand, squared around its centre, zero-padded, "
                    "background zeroed when crop_background=zero, resized (bicubic, antialiased) to CLIP's size",
            "phrase_embedding": "templates filled, each embedding normalised, averaged, normalised again",
            "mask_ap": "pycocotools segm AP; per (image, category) the top ap_top_k candidates by score "
                       "(the first is the possibly refined answer); categories asked: ap_categories",
            "oracle": "oracle_* metrics pick the candidate with the best IoU: the candidates' ceiling",
            "detector": "box -> one SAM mask (single output); a category phrase only sees boxes of its "
                        "category when detector_class_aware; an expression sees every box of the image",
            "refine": "prompt of the chosen candidate (AMG point or detector box) + a positive point at the "
                      "mask's centre (distance-transform argmax, as the point protocol), single output",
        }
        return desc

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: RunContext) -> None:
        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
        has_expressions = bool(ctx.dataset.expressions())
        self.kind = {"auto": "expression" if has_expressions else "category",
                     "categories": "category", "expressions": "expression"}[self.options.phrases]
        if self.kind == "expression" and not has_expressions:
            raise ConfigError(f"dataset '{ctx.dataset.name}' has no referring expressions (phrases=expressions "
                              "needs a RefCOCO-format dataset)")
        self.categories = {int(c["id"]): phrase_of(c["name"]) for c in ctx.dataset.categories}
        needs_prompts = self.options.candidates != "concepts" or self.options.refine
        if needs_prompts and not isinstance(model, PromptableSegmenter):
            raise ConfigError(f"model '{model.info.name}' is not a promptable segmenter: the text task runs it with "
                              "candidates=concepts only (and refine=false)")
        if self.scorer is None:
            if self.options.rank_by in ("detector", "concepts"):
                self.scorer = DetectorScoreScorer()
            else:
                if self._clip_identity is None:
                    self._clip_identity = clip_identity(self.options.clip_model, self.options.clip_checkpoint)
                clip = load_clip(self.options.clip_model, self.options.clip_checkpoint, ctx.device,
                                 ctx.config.precision, identity=self._clip_identity)
                self.scorer = ClipScorer(clip, self.options.crop_expand,
                                         self.options.crop_background == "zero", self.options.clip_batch_size)
        if isinstance(self.scorer, ClipScorer) and self.kind == "category" and self.categories:
            self.scorer.prepare(sorted(set(self.categories.values())), self.templates["category"])
        if self.options.candidates == "concepts" and not self._injected_source:
            # Each phrase's best candidates: the answer plus ap_top_k for mask AP at most.
            self.candidate_source = ConceptCandidates(build_concept_source(model, None, None, ctx.device),
                                                      self.options.ap_top_k)
        elif self.options.candidates == "detector":
            # The category check needs the dataset's categories; datasets without them (RefCOCO) skip it.
            known = set(self.categories) or None
            detections = load_detections(self._resolve(ctx, self.options.detections), known)
            if not self._injected_source:
                self.candidate_source = DetectorCandidates(model, detections, self.options.detector_min_score)
        elif not self._injected_source:
            from ...amg import AmgSettings, AutomaticMaskGenerator

            o = self.options
            self.candidate_source = AmgCandidates(AutomaticMaskGenerator(model, AmgSettings(
                points_per_side=o.amg_points_per_side, pred_iou_thresh=o.amg_pred_iou_thresh,
                stability_score_thresh=o.amg_stability_score_thresh, box_nms_thresh=o.amg_box_nms_thresh,
                crop_n_layers=o.amg_crop_n_layers, min_mask_region_area=o.amg_min_mask_region_area,
                output_mode="binary_mask", max_masks=o.amg_max_masks)))

    @staticmethod
    def _resolve(ctx: RunContext, path: str) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute() and ctx.config.data_root and not p.exists():
            p = Path(ctx.config.data_root) / p
        return p

    # ------------------------------------------------------------------ queries
    def queries(self, sample: ImageSample) -> list[Query]:
        shape = (sample.height, sample.width)
        if self.kind == "expression":
            masks = {o.object_id: o.mask for o in sample.objects}
            out = []
            for e in sample.extra.get("expressions", []):
                if str(e["ann_id"]) not in masks:
                    raise DataError(f"image {sample.image_id}: expression {e.get('sent_id')} refers to "
                                    f"annotation {e['ann_id']}, which the sample does not have")
                out.append(Query(e["sentence"], self.templates["expression"], masks[str(e["ann_id"])],
                                 "expression", e.get("category_id"),
                                 {k: e.get(k) for k in ("ref_id", "sent_id", "ann_id")}))
            return out
        by_category: dict[int, np.ndarray] = {}
        names: dict[int, str] = {}
        for o in sample.objects:
            if o.category_id is None or o.extra.get("iscrowd"):
                continue
            cid = int(o.category_id)
            by_category.setdefault(cid, np.zeros(shape, bool))
            by_category[cid] |= o.mask
            names[cid] = self.categories.get(cid) or phrase_of(o.category or str(cid))
        return [Query(names[c], self.templates["category"], by_category[c], "category", c) for c in sorted(by_category)]

    def _ap_extra_queries(self, queries: Sequence[Query]) -> list[Query]:
        if self.kind != "category" or self.options.ap_categories != "all":
            return []
        asked = {q.category_id for q in queries}
        return [Query(n, self.templates["category"], None, "category", c)
                for c, n in sorted(self.categories.items()) if c not in asked]

    # ------------------------------------------------------------------ evaluation
    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        queries = self.queries(sample)
        all_queries = queries + self._ap_extra_queries(queries)
        if not all_queries:
            return ImageResult(sample.image_id)
        image = sample.load_image()
        embed = functools.cache(lambda: ctx.embed(image))  # only sources that need SAM pay for it
        with ctx.timed("candidates"):
            if isinstance(self.candidate_source, ConceptCandidates):
                cands = self.candidate_source.for_phrases(image, [q.phrase for q in all_queries])
            else:
                cands = self.candidate_source(ctx, sample, image, embed)
        with ctx.timed("score"):
            scores = np.asarray(self.scorer.score(image, cands, all_queries), np.float64).reshape(
                len(all_queries), len(cands))
        if cands.category_ids is not None and self.options.detector_class_aware and self.kind == "category":
            allowed = cands.category_ids[None, :] == np.array([q.category_id for q in all_queries])[:, None]
            scores = np.where(allowed, scores, -np.inf)
        if cands.phrases is not None:  # a concept candidate answers only the phrase that found it
            allowed = np.array(cands.phrases, object)[None, :] == np.array([q.phrase for q in all_queries], object)[:, None]
            scores = np.where(allowed.reshape(scores.shape), scores, -np.inf)
        choice = [int(np.argmax(s)) if np.isfinite(s).any() else -1 for s in scores]
        chosen = np.stack([cands.masks[c] if c >= 0 else np.zeros(image.shape[:2], bool) for c in choice])
        final = chosen.copy()
        if self.options.refine:
            with ctx.timed("refine"):
                model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
                final = refine_at_centres(model, embed(), cands, choice, final)
        rows = self._rows(sample, queries, cands, scores, choice, chosen, final)
        payload: dict[str, Any] = {}
        if self.kind == "category" and self.options.ap_categories != "none":
            payload = self._ap_payload(sample, cands, all_queries, scores, choice, final)
        return ImageResult(sample.image_id, rows, payload)

    def _rows(self, sample: ImageSample, queries: Sequence[Query], cands: Candidates, scores: np.ndarray,
              choice: list[int], chosen: np.ndarray, final: np.ndarray) -> list[dict[str, Any]]:
        ignore = ignored_pixels(sample)
        keep = None if ignore is None else ~ignore
        oracle = oracle_ious(cands.masks, [q.target for q in queries], keep, scores[:len(queries)])
        rows = []
        for q, query in enumerate(queries):
            target = query.target if keep is None else query.target & keep
            pred, unrefined = (final[q], chosen[q]) if keep is None else (final[q] & keep, chosen[q] & keep)
            inter, union = int(np.count_nonzero(pred & target)), int(np.count_nonzero(pred | target))
            inter0, union0 = int(np.count_nonzero(unrefined & target)), int(np.count_nonzero(unrefined | target))
            rows.append({"kind": query.kind, "phrase": query.phrase, "category_id": query.category_id,
                         **{k: query.ids.get(k) for k in ("ref_id", "sent_id", "ann_id")},
                         "candidates": len(cands), "choice": choice[q],
                         "score": float(scores[q, choice[q]]) if choice[q] >= 0 else None,
                         "intersection": inter, "union": union, "iou": per_item_iou([inter], [union])[0],
                         "iou_unrefined": per_item_iou([inter0], [union0])[0], "oracle_iou": oracle[q],
                         "target_area": int(np.count_nonzero(target)), "pred_area": int(np.count_nonzero(pred))})
        return rows

    def _ap_payload(self, sample: ImageSample, cands: Candidates, queries: Sequence[Query], scores: np.ndarray,
                    choice: list[int], final: np.ndarray) -> dict[str, Any]:
        masks: dict[str, Any] = {}
        dets = []
        for q, query in enumerate(queries):
            if choice[q] < 0:
                continue
            order = [int(c) for c in np.argsort(-scores[q], kind="stable")[: self.options.ap_top_k]
                     if np.isfinite(scores[q, c])]
            for rank, c in enumerate(order):
                key = f"q{q}" if rank == 0 else f"c{c}"  # the answer itself (refined or not) first
                if key not in masks:
                    masks[key] = encode_masks((final[q] if rank == 0 else cands.masks[c])[None])[0]
                dets.append([query.category_id, key, float(scores[q, c])])
        return {"coco_image_id": coco_image_id(sample, required=False), "masks": masks, "detections": dets}

    # ------------------------------------------------------------------ metrics
    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        rows = pd.DataFrame([row for r in results for row in r.rows])
        metrics: dict[str, float] = {"images": len(results), "queries": len(rows)}
        if rows.empty:
            return metrics
        i, u = rows["intersection"].to_numpy(), rows["union"].to_numpy()
        ious = per_item_iou(i, u)
        prefix = "gIoU" if self.kind == "expression" else "mIoU"
        metrics[prefix] = giou(i, u)
        metrics["cIoU"] = ciou(i, u)
        if self.options.refine:
            metrics[f"{prefix}_unrefined"] = float(rows["iou_unrefined"].mean())
        metrics[f"oracle_{prefix}"] = float(rows["oracle_iou"].mean())
        for t, v in precision_at(ious).items():
            metrics[f"P@{t:g}"] = v
        metrics["candidates_per_image"] = float(np.mean([r.rows[0]["candidates"] for r in results if r.rows]))
        if self.kind == "category" and self.options.ap_categories != "none":
            metrics.update(self._mask_ap(ctx, results))
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Images, each [denominator, numerator] of every ratio: gIoU / mIoU [queries, sum of IoUs],
        cIoU [union, intersection], P@t [queries, hits]. (mask AP gets no interval.)"""
        prefix = "gIoU" if self.kind == "expression" else "mIoU"
        columns: dict[str, list[list[float]]] = {prefix: [], "cIoU": [], **{f"P@{t:g}": [] for t in PRECISION_AT}}
        for r in results:
            ious = per_item_iou([row["intersection"] for row in r.rows], [row["union"] for row in r.rows])
            columns[prefix].append([len(ious), float(ious.sum())])
            columns["cIoU"].append([sum(row["union"] for row in r.rows), sum(row["intersection"] for row in r.rows)])
            for t in PRECISION_AT:
                columns[f"P@{t:g}"].append([len(ious), float(np.count_nonzero(ious >= t))])
        return UnitSample("image", [r.image_id for r in results], "ratio", columns)

    def _mask_ap(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        ann_file = ctx.dataset.annotation_file
        image_ids = [r.payload["coco_image_id"] for r in results if r.payload.get("coco_image_id") is not None]
        if ann_file is None or not image_ids:
            return {}
        gt = json.loads(Path(ann_file).read_text())
        dets = [{"image_id": r.payload["coco_image_id"], "category_id": cid, "score": score,
                 "segmentation": r.payload["masks"][key]}
                for r in results if r.payload for cid, key, score in r.payload["detections"]]
        return {f"mask_{k}": v for k, v in coco_mask_ap(gt, dets, image_ids).items()}

    # ------------------------------------------------------------------ report
    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        lines = [f"## {cls.title}", "", f"{PROTOCOL_NOTE}; paper reference: {paper()['text_to_mask']['note']}. "
                 "Numbers are percentages; oracle = best candidate per phrase (the candidates' ceiling)."]
        for kind, cols in (("expression", ["gIoU", "cIoU", "P@0.5", "P@0.7", "P@0.9", "oracle_gIoU"]),
                           ("category", ["mIoU", "cIoU", "oracle_mIoU", "mask_AP", "mask_AP50", "mask_AP75"])):
            picked = [e for e in entries if cols[0] in e.metrics]
            if not picked:
                continue
            table = pd.DataFrame([{c: 100 * e.metrics[c] if c in e.metrics else None for c in cols}
                                  for e in picked], index=[f"{e.run_label} / {e.dataset}" for e in picked])
            table.index.name = "run / dataset"
            lines += ["", "Referring expressions:" if kind == "expression" else "Category names as phrases:",
                      "", markdown_table(table)]
        lines += [""]
        for e in entries:
            o = e.record.get("task_options", {})
            clip = o.get("clip") or {}
            label = clip.get("architecture", o.get("scorer", "-"))
            if clip.get("untrained"):
                label += " (untrained)"
            ap = (f"; AP over {o.get('ap_categories')} categories, top-{o.get('ap_top_k')} candidates"
                  if "mask_AP" in e.metrics else "")
            lines.append(f"- {e.run_label} / {e.dataset}: CLIP {label}; candidates {o.get('candidates')}; "
                         f"crop x{o.get('crop_expand')} background {o.get('crop_background')}; "
                         f"refine {o.get('refine')}{ap}")
        return "\n".join(lines) + "\n"


class DetectorScoreScorer:
    """rank_by=detector / concepts: every phrase ranks the candidates by the detector's / concept model's own score."""

    def score(self, image: np.ndarray, candidates: Candidates, queries: Sequence[Query]) -> np.ndarray:
        return np.tile(np.asarray(candidates.quality, np.float64), (len(queries), 1))


def ignored_pixels(sample: ImageSample) -> Optional[np.ndarray]:
    """The sample's void pixels plus crowd regions kept as objects (minus regular objects' pixels)."""
    crowd = [o.mask for o in sample.objects if o.extra.get("iscrowd")]
    if not crowd:
        return sample.ignore
    regular = [o.mask for o in sample.objects if not o.extra.get("iscrowd")]
    ignore = np.logical_or.reduce(crowd) & ~np.logical_or.reduce(regular or [np.zeros_like(crowd[0])])
    return ignore if sample.ignore is None else ignore | sample.ignore


def oracle_ious(masks: np.ndarray, targets: Sequence[np.ndarray], keep: Optional[np.ndarray],
                scores: np.ndarray) -> list[float]:
    """Best IoU over the allowed (finite-score) candidates, per target; 0 without candidates."""
    if len(masks) == 0 or not targets:
        return [0.0] * len(targets)
    flat_keep = None if keep is None else torch.from_numpy(keep.reshape(-1))
    t = torch.from_numpy(np.stack(targets).reshape(len(targets), -1))
    t = (t if flat_keep is None else t & flat_keep).float()
    best = torch.zeros(len(targets), dtype=torch.float64)
    allowed = torch.from_numpy(np.isfinite(scores))
    for start in range(0, len(masks), 16):  # 16 masks at a time bounds the float copy
        m = torch.from_numpy(masks[start:start + 16].reshape(min(16, len(masks) - start), -1))
        m = (m if flat_keep is None else m & flat_keep).float()
        inter = (t @ m.T).double()
        union = t.sum(1, keepdim=True).double() + m.sum(1).double()[None] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        iou = torch.where(allowed[:, start:start + 16], iou, torch.zeros_like(iou))
        best = torch.maximum(best, iou.max(1).values)
    return best.tolist()
