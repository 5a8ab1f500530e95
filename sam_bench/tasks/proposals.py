"""Zero-shot object proposals on LVIS v1 (paper §7.3, D.3, Table 4): class-agnostic mask AR@1000.

Proposals are the automatic mask generator's masks. Default settings are the paper's: 64x64 point
grid, no crops, no predicted-IoU or stability filter, box NMS 0.9, rank by mean(predicted IoU,
stability score), keep at most 1000. `--preset single_output` is the paper's "single output"
variant: 128x128 grid, one mask per point, NMS 0.95, random ranking (seeded per image).
Each proposal's score is its ranking score (mean of predicted IoU and stability; for random
ranking, its rank), so the saved results rank the proposals as the run did.
Scoring: `sam_bench.metrics.coco.ProposalRecall` (pycocotools matching, image by image).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import pandas as pd

from ..data.coco_meta import check_crowd, coco_image_id, dataset_categories
from ..data.coco_results import PerImageResults, json_rle
from ..data.types import ImageSample
from ..errors import ConfigError
from ..metrics.bootstrap import UnitSample
from ..metrics.coco import PROPOSAL_CATEGORY_ID, ProposalRecall, image_ground_truth
from ..models.base import PromptableSegmenter
from ..reference import paper
from ..registry import TASKS
from ..reporting.markdown import markdown_table
from ..engine.context import ImageResult, RunContext
from ..reporting.entry import ReportEntry
from .base import Task


AR_MAX_DETS = 1000  # the metric is AR@1000 whatever the number of proposals kept
RANKINGS = ("mean_iou_stability", "random")
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"points_per_side": 64, "box_nms_thresh": 0.9, "rank_by": "mean_iou_stability", "multimask": True},
    "single_output": {"points_per_side": 128, "box_nms_thresh": 0.95, "rank_by": "random", "multimask": False},
}


@dataclass
class ProposalsOptions:
    preset: str = "paper"  # paper | single_output; the settings below override it when given
    points_per_side: Optional[int] = None  # paper 64, single_output 128
    box_nms_thresh: Optional[float] = None  # paper 0.9, single_output 0.95
    rank_by: Optional[str] = None  # mean_iou_stability (paper) | random (single_output)
    multimask: Optional[bool] = None  # 3 masks per point (paper) | 1 (single_output)
    max_masks: int = 1000  # proposals kept per image after ranking


def resolve_settings(o: ProposalsOptions) -> dict[str, Any]:
    if o.preset not in PRESETS:
        raise ConfigError(f"task 'proposals': preset must be one of {sorted(PRESETS)}, got '{o.preset}'")
    chosen = dict(PRESETS[o.preset])
    for key in chosen:
        if getattr(o, key) is not None:
            chosen[key] = getattr(o, key)
    if chosen["rank_by"] not in RANKINGS:
        raise ConfigError(f"task 'proposals': rank_by must be one of {RANKINGS}, got '{chosen['rank_by']}'")
    if chosen["points_per_side"] < 1 or o.max_masks < 1 or not 0 < chosen["box_nms_thresh"] <= 1:
        raise ConfigError("task 'proposals': points_per_side and max_masks must be >= 1 and "
                          "box_nms_thresh in (0, 1]")
    # No crops and no filters in either variant (paper D.3).
    return {**chosen, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "crop_n_layers": 0,
            "max_masks": o.max_masks, "output_mode": "coco_rle"}


@TASKS.register("proposals", help="class-agnostic object proposals, mask AR@1000 on LVIS v1 (Table 4)")
class ProposalsTask(Task):
    name = "proposals"
    title = "Zero-shot object proposals (LVIS v1 mask AR@1000, Table 4)"
    headline_metrics = (f"AR@{AR_MAX_DETS}",)
    Options = ProposalsOptions
    paper_section = (7, 3)  # report order


    def __init__(self, options: ProposalsOptions) -> None:
        super().__init__(options)
        self.settings = resolve_settings(options)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.options), "amg": self.settings, "metric": f"class-agnostic mask AR@{AR_MAX_DETS}"}

    def setup(self, ctx: RunContext) -> None:
        from ..amg import AmgSettings, AutomaticMaskGenerator

        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
        self.recall = ProposalRecall(dataset_categories(ctx.dataset, self.name), max_dets=AR_MAX_DETS)
        self.generator = AutomaticMaskGenerator(model, AmgSettings(**self.settings))
        self.store = PerImageResults(ctx.out_dir / "predictions")

    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        check_crowd(sample, ctx.dataset, self.name)
        image_id = coco_image_id(sample)
        image = sample.load_image()
        embedding = ctx.embed(image)
        with ctx.timed("amg"):
            generated = self.generator.generate(image, embedding=embedding,
                                                rng=ctx.rng(sample.image_id, "proposals"))
        records = generated.records
        n = len(records)
        results = []
        for rank, rec in enumerate(records):  # the generator returns them best first
            if self.settings["rank_by"] == "random":
                score = (n - rank) / n
            else:
                # an empty mask has no logit > -1: its stability is 0/0 = NaN (it can match nothing)
                stability = float(rec["stability_score"])
                score = (float(rec["predicted_iou"]) + (stability if math.isfinite(stability) else 0.0)) / 2
            results.append({"image_id": image_id, "category_id": PROPOSAL_CATEGORY_ID,
                            "segmentation": json_rle(rec["segmentation"]), "score": score})
        self.store.write(image_id, results)
        gt_image, gt_anns = image_ground_truth(sample)
        with ctx.timed("metric"):
            counts_by_metric = self.recall.evaluate_image(gt_image, gt_anns, results)
        row = {"proposals": n, "objects": sum(1 for a in gt_anns if not a["iscrowd"])}
        return ImageResult(sample.image_id, [row], {"coco_image_id": image_id, "recall": counts_by_metric})

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        return self.recall.summarize([r.payload["recall"] for r in results])

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Images: AR is matched over non-ignored ground truth, summed over images (a ratio)."""
        empty = [0] * 11  # an image without that breakdown: no ground truth, nothing matched
        return UnitSample("image", [r.image_id for r in results], "ratio",
                          {name: [r.payload["recall"].get(name, empty) for r in results]
                           for name in self.recall.metric_names()})

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        self.store.merge([r.payload["coco_image_id"] for r in results], ctx.out_dir / "predictions.json", "proposals")

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        ref = paper()["proposals_lvis_ar1000"]
        cols = ref["columns"]  # all small medium large frequent common rare
        keys = [f"AR@{AR_MAX_DETS}"] + [f"AR@{AR_MAX_DETS}_{c}" for c in cols[1:]]
        # The paper's rows are LVIS v1 val numbers: left out beside runs on any other data.
        on_lvis = any(e.dataset == "lvis_v1" for e in entries)
        rows = {f"{m} (paper{', ViT-H' if m.startswith('SAM') else ''})": dict(zip(cols, ref[m]))
                for m in ref if m != "columns" and on_lvis}
        for e in entries:
            preset = e.record.get("task_options", {}).get("preset", "paper")
            label = e.run_label + (f", {preset}" if preset != "paper" else "")
            if e.dataset != "lvis_v1":
                label += f" [{e.dataset}]"
            rows[label] = {c: 100 * e.metrics[k] for c, k in zip(cols, keys) if k in e.metrics}
        table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
        table.index.name = "method"
        return "\n".join([f"## {cls.title}", "",
                          "Class-agnostic mask AR@1000 (%), IoU .50:.95; frequency columns restrict the "
                          "ground truth to that LVIS group." + ("" if on_lvis else
                          " The paper's rows (LVIS v1 val) are left out: no run here is on LVIS v1."),
                          "", markdown_table(table)]) + "\n"
