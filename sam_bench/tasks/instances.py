"""Zero-shot instance segmentation from detector boxes on COCO and LVIS (paper §7.4, Table 5).

Each box of a detections file (COCO results format) prompts the model; with multimask output the
most confident mask is kept, then (option `refine`, on) one more decoder pass takes the box plus
that mask's low-res logits and gives the final mask. All boxes of an image go through the decoder
in one batched call. A mask's score is the detector's box score (the paper does not say; option
`score`). Masks are scored with pycocotools (COCO json) or lvis-api (LVIS json: categories carry a
`frequency`), image by image, see `sam_bench.metrics.coco`.

Rows of Table 5: detector boxes; ground-truth boxes (`--boxes gt`, an upper bound); the `box`
model (mask = filled box, a lower bound).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd

from ..core.checkpoint import file_sha256
from ..core.types import Prompts
from ..data.coco_meta import check_crowd, coco_image_id, dataset_categories
from ..data.coco_results import PerImageResults, encode_masks, load_detections, warn_detection_coverage
from ..data.types import ImageSample
from ..detect import read_source_note
from ..detect.detectron2 import Detectron2Boxes
from ..errors import ConfigError, DataError
from ..metrics.bootstrap import UnitSample
from ..metrics.coco import SegmEvaluator, image_ground_truth
from ..models.base import PromptableSegmenter
from ..models.upsampling import upsampled_chunks
from ..reference import checkpoint, paper, peers, protocol_differences, published_label
from ..registry import TASKS
from ..reporting.markdown import markdown_table
from ..engine.context import ImageResult, RunContext
from ..reporting.entry import ReportEntry
from .base import Task


BOX_SOURCES = ("detections", "gt")
UNLABELLED = "unlabelled detections"  # box-source label of a detections file nobody named
PEERS_BLOCK = "vitdet_box_prompted_mask_ap"
VITDET_H = re.compile(r"vitdet[-_ ]?h(?![a-z])", re.IGNORECASE)  # ViTDet-H, cascade_mask_rcnn_vitdet_h_75ep
SCORES = ("detector", "predicted_iou", "detector_x_predicted_iou")


@dataclass
class InstancesOptions:
    detections: Optional[str] = None  # COCO results json: image_id, category_id, bbox xywh, score
    detector: Optional[str] = None  # detectron2:<config>:<weights> (needs detectron2 installed)
    boxes: str = "detections"  # detections (file or detector) | gt (ground-truth boxes, upper bound)
    refine: bool = True  # 2nd decoder pass: box + low-res logits of the most confident mask
    score: str = "detector"  # detector | predicted_iou | detector_x_predicted_iou
    max_dets: Optional[int] = None  # None: the official 100 per image and category (COCO) / 300 per image (LVIS)
    box_source: Optional[str] = None  # label of the boxes, e.g. ViTDet-H; default: `detect`'s note, else the file name
    path_options: ClassVar[tuple[str, ...]] = ("detections",)  # made absolute before they are recorded


def _box_source(entry: ReportEntry) -> str:
    """The box source a run recorded (runs from before box sources were recorded: the kind)."""
    opts = entry.record.get("task_options", {})
    return opts.get("box_source") or ("ground-truth boxes" if opts.get("boxes") == "gt" else "detector boxes")


@TASKS.register("instances", help="instance segmentation from detector boxes, COCO/LVIS mask AP (Table 5)")
class InstancesTask(Task):
    name = "instances"
    title = "Zero-shot instance segmentation from boxes (COCO / LVIS mask AP, Table 5)"
    headline_metrics = ("AP",)
    Options = InstancesOptions
    paper_section = (7, 4)  # report order


    def __init__(self, options: InstancesOptions) -> None:
        super().__init__(options)
        o = options
        if o.boxes not in BOX_SOURCES:
            raise ConfigError(f"task 'instances': boxes must be one of {BOX_SOURCES}, got '{o.boxes}'")
        if o.score not in SCORES:
            raise ConfigError(f"task 'instances': score must be one of {SCORES}, got '{o.score}'")
        if o.boxes == "detections" and bool(o.detections) == bool(o.detector):
            raise ConfigError("task 'instances' needs exactly one box source: --detections FILE (COCO "
                              "results format), --detector detectron2:CONFIG:WEIGHTS, or --boxes gt")
        if o.boxes == "gt" and (o.detections or o.detector):
            raise ConfigError("task 'instances': --boxes gt takes the ground-truth boxes; drop "
                              "--detections/--detector")
        if o.detector and not o.detector.startswith("detectron2:"):
            raise ConfigError(f"task 'instances': unknown detector '{o.detector}'; "
                              "expected detectron2:<config>:<weights>")
        if o.max_dets is not None and o.max_dets < 1:
            raise ConfigError("task 'instances': max_dets must be >= 1")
        if o.detections and not Path(o.detections).is_file():
            raise DataError(f"{o.detections}: detections file not found")
        self._detections_sha: Optional[str] = None

    def describe(self) -> dict[str, Any]:
        desc = asdict(self.options)
        if self.options.detections:
            if self._detections_sha is None:  # identity of the boxes: a changed file restarts a resumed run
                self._detections_sha = file_sha256(Path(self.options.detections))
            desc["detections"] = str(Path(self.options.detections).resolve())
            desc["detections_sha256"] = self._detections_sha
        desc["box_source"] = self.box_source_label()
        if self.options.detections and not self.options.box_source:
            desc["box_source_note"] = read_source_note(self.options.detections)
        desc["mask_choice"] = "highest predicted IoU of 3 (multimask), then " + (
            "one refinement pass (box + its low-res logits)" if self.options.refine else "no refinement")
        return desc

    def box_source_label(self) -> str:
        """What the boxes are, as printed beside AP: the option, `detect`'s note, or a fallback."""
        o = self.options
        if o.box_source:
            return o.box_source
        if o.boxes == "gt":
            return "ground-truth boxes"
        if o.detector:
            return f"detectron2:{Path(o.detector[len('detectron2:'):].partition(':')[0]).stem}"
        note = read_source_note(o.detections)
        return note["box_source"] if note else f"{UNLABELLED} ({Path(o.detections).name})"

    def setup(self, ctx: RunContext) -> None:
        categories = dataset_categories(ctx.dataset, self.name)
        self.is_lvis = any("frequency" in c for c in categories)
        self.evaluator = SegmEvaluator(categories, lvis=self.is_lvis, max_dets=self.options.max_dets)
        self.store = PerImageResults(ctx.out_dir / "predictions")
        self.category_ids = sorted(c["id"] for c in categories)
        self.detections = self.detector = None
        if self.options.boxes == "detections" and self.options.detections:
            self.detections = load_detections(self.options.detections, set(self.category_ids))
            ids = {str(i) for i in self.detections.image_ids()}
            if self.detections and not ids & set(ctx.dataset.image_ids()):
                raise DataError(f"{self.options.detections}: none of its {len(ids)} image ids is an image "
                                f"of dataset '{ctx.dataset.name}' (wrong file or dataset?)")
            warn_detection_coverage(self.detections, ctx.dataset.image_ids())
        elif self.options.detector:
            self.detector = Detectron2Boxes(self.options.detector, ctx.device, self.category_ids)

    def _boxes(self, ctx: RunContext, sample: ImageSample, image: Optional[np.ndarray]):
        """-> (xywh boxes (N, 4), category ids (N,), detector scores (N,))."""
        if self.options.boxes == "gt":
            objs = [o for o in sample.objects if not o.extra.get("iscrowd") and o.box is not None]
            boxes = np.array([[o.box[0], o.box[1], o.box[2] - o.box[0], o.box[3] - o.box[1]] for o in objs],
                             np.float64).reshape(-1, 4)
            return boxes, np.array([o.category_id for o in objs], np.int64), np.ones(len(objs))
        if self.detector is not None:
            with ctx.timed("detect"):
                return self.detector(image)
        return self.detections.for_image(coco_image_id(sample))

    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
        check_crowd(sample, ctx.dataset, self.name)
        image_id = coco_image_id(sample)
        image = sample.load_image() if self.detector is not None else None
        boxes, cats, det_scores = self._boxes(ctx, sample, image)
        results, ious = [], np.zeros(0)
        if len(boxes):
            image = sample.load_image() if image is None else image
            rles, ious = self.segment(ctx, model, image, boxes)
            scores = {"detector": det_scores, "predicted_iou": ious,
                      "detector_x_predicted_iou": det_scores * ious}[self.options.score]
            results = [{"image_id": image_id, "category_id": int(c), "segmentation": rle, "score": float(s)}
                       for c, rle, s in zip(cats, rles, scores)]
        self.store.write(image_id, results)
        gt_image, gt_anns = image_ground_truth(sample)
        with ctx.timed("metric"):
            record = self.evaluator.evaluate_image(gt_image, gt_anns, results)
        row = {"boxes": len(boxes), "objects": sum(1 for a in gt_anns if not a["iscrowd"]),
               "mean_predicted_iou": float(ious.mean()) if len(ious) else None}
        return ImageResult(sample.image_id, [row], {"coco_image_id": image_id, "eval": record})

    def segment(self, ctx: RunContext, model: PromptableSegmenter, image: np.ndarray,
                boxes_xywh: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Box prompts -> (RLE masks, predicted IoU of each final mask)."""
        embedding = ctx.embed(image)
        xyxy = boxes_xywh.copy()
        xyxy[:, 2:] += xyxy[:, :2]
        with ctx.timed("decode"):
            first = model.decode(embedding, Prompts(boxes=xyxy), multimask=True)
            final = first.select_masks(first.iou_predictions.argmax(dim=1).cpu().numpy())
            if self.options.refine:
                final = model.decode(embedding, Prompts(boxes=xyxy, mask_logits=final.low_res_logits),
                                     multimask=False)
        rles = []
        with ctx.timed("postprocess"):
            for _, logits in upsampled_chunks(model, embedding, final.low_res_logits):
                rles += encode_masks((logits[:, 0] > model.mask_threshold).cpu().numpy())
        return rles, final.iou_predictions[:, 0].float().cpu().numpy().astype(np.float64)

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        return self.evaluator.summarize([(r.payload["coco_image_id"], r.payload["eval"]) for r in results])

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Images: the library's accumulate re-run on resampled per-image match records."""
        return self.evaluator.unit_sample([r.image_id for r in results], [r.payload["eval"] for r in results])

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        self.store.merge([r.payload["coco_image_id"] for r in results], ctx.out_dir / "predictions.json", "masks")

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        cols = paper()["instances_box_prompted"]["columns"]  # AP APs APm APl
        header = [f"COCO {c}" for c in cols] + [f"LVIS {c}" for c in cols]
        groups: dict[tuple[Any, ...], list[ReportEntry]] = {}
        for e in entries:  # one table per protocol: published rows only beside runs of theirs
            groups.setdefault(tuple(_box_settings(e).values()), []).append(e)
        sources = _published_sources(cols)
        lines = [f"## {cls.title}", "",
                 "Mask AP (%) with boxes as prompts. COCO: pycocotools; LVIS v1: lvis-api (300 detections per "
                 "image). Box sources: " + "; ".join(sorted({_box_source(e) for e in entries})) + ".", ""]
        differs: dict[str, set[str]] = {name: set() for name, *_ in sources}
        beside: set[str] = set()  # sources whose rows sit beside some run
        extra = {}
        for members in groups.values():
            settings = _box_settings(members[0])
            rows: dict[str, dict[str, float]] = {}
            for name, stated, published, _ in sources:
                differences = protocol_differences(stated, settings)
                differs[name].update(differences)
                if not differences:
                    beside.add(name)
                    rows.update(published)
            for e in members:
                lvis = "APr" in e.metrics or e.dataset.startswith("lvis")
                label = f"{e.run_label}, {_box_source(e)}"
                if e.dataset not in ("coco", "lvis_v1"):
                    label += f" [{e.dataset}]"
                group = "LVIS" if lvis else "COCO"
                rows.setdefault(label, {}).update({f"{group} {c}": 100 * e.metrics[c] for c in cols if c in e.metrics})
                extra[f"{label} · {e.dataset}"] = {k: 100 * v for k, v in e.metrics.items()
                                                   if not k.endswith(("_ci_low", "_ci_high"))}  # in the interval table
            table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=header)
            table.index.name = "method"
            lines += [f"Boxes: {settings['boxes']}; "
                      f"{'one refinement pass' if settings['refine'] else 'no refinement pass'}; "
                      f"score: {settings['score']}.", "", markdown_table(table), ""]
        for name, stated, published, about in sources:
            if name in beside:
                lines.append(f"- {name}: {stated['text']}. {about}")
            else:
                lines.append(f"- {name} are left out: no run here has their protocol ({stated['text']}); "
                             f"differences: {'; '.join(sorted(differs[name]))}.")
        lines += ["", "All metrics (%):", ""]
        full = pd.DataFrame.from_dict(extra, orient="index")
        full.index.name = "run · dataset"
        lines.append(markdown_table(full))
        return "\n".join(lines) + "\n"


def _vitdet_boxes(entry: ReportEntry) -> bool:
    """Whether a run's boxes are ViTDet-H's, by what it recorded: never ground-truth boxes; else the
    detector it ran or `detect`'s note names; else the label given with --box-source."""
    opts = entry.record.get("task_options", {})
    if opts.get("boxes") == "gt":
        return False
    named = opts.get("detector") or (opts.get("box_source_note") or {}).get("detector")
    if named:
        return VITDET_H.search(named) is not None
    label = _box_source(entry)
    return VITDET_H.search(label) is not None and not label.startswith(UNLABELLED)


def _box_settings(entry: ReportEntry) -> dict[str, Any]:
    """The settings a published row must share with a run to sit beside it."""
    opts = entry.record.get("task_options", {})
    label = _box_source(entry)
    if _vitdet_boxes(entry):
        boxes = "ViTDet-H"
    else:  # a label that names ViTDet-H on other boxes (gt, another detector) must not match
        boxes = label + (" (not recorded as ViTDet-H boxes)" if VITDET_H.search(label) else "")
    return {"boxes": boxes, "refine": opts.get("refine", True), "score": opts.get("score", "detector")}


def _published_sources(cols: list[str]) -> list[tuple[str, dict[str, Any], dict[str, dict[str, float]], str]]:
    """(name, stated protocol, rows by label, where from) of the SAM paper's and later papers' rows."""
    ref, block = paper()["instances_box_prompted"], peers()["vitdet_box_prompted_mask_ap"]
    paper_rows = {}
    for method in ref["coco"]:
        label = published_label(method, checkpoint(paper(), "instances_box_prompted", method), "paper")
        paper_rows[label] = {f"COCO {c}": v for c, v in zip(cols, ref["coco"][method])}
        paper_rows[label].update({f"LVIS {c}": v for c, v in zip(cols, ref["lvis"].get(method, []))})
    peer_rows = {published_label(m, checkpoint(peers(), PEERS_BLOCK, m)):
                 {c: v for c, v in zip(block["columns"], values) if v is not None}
                 for m, values in block.items() if m != "columns" and isinstance(values, list)}
    return [("The SAM paper's Table 5 rows", paper()["protocols"]["instances_box_prompted"], paper_rows,
             "Kirillov et al., Segment Anything, Table 5."),
            ("The README rows of EfficientViT-SAM, EdgeSAM and MobileSAM",
             peers()["protocols"][PEERS_BLOCK], peer_rows,
             f"{block['source']}. Checkpoints: {peers()['checkpoint_notes'][PEERS_BLOCK]}")]
