"""Task `miou`: prompted per-instance mIoU with COCO size bins and boundary IoU.

The protocol later SAM-family papers print (EfficientViT-SAM, EdgeSAM, the efficient-SAM survey:
ground-truth box or clicks on COCO / LVIS / SA-1B; HQ-SAM: box, single output, mIoU and boundary
IoU on DIS5K / COIFT / HRSOD / ThinObject-5K). Every non-crowd instance with a non-empty mask is
prompted (see session.py); the kept mask's IoU and boundary IoU (dilation 0.02 of the image
diagonal) against the instance's mask are averaged over instances, and per COCO size bin of the
annotation's area (metrics/miou.py). Crowd annotations (`iscrowd`, kept as objects by the COCO and
LVIS configs' `crowd: keep`) and empty masks are excluded and counted; a reader that merges crowd
regions into the ignore mask (`crowd: ignore`) makes them void pixels instead, uncounted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...data.types import ImageSample
from ...errors import ConfigError, DataError
from ...io import atomic_write
from ...metrics.boundary import DILATION_RATIO
from ...metrics.bootstrap import UnitSample
from ...metrics.miou import AREA_RANGES, in_range, size_bins, miou_metrics
from ...models.base import PromptableSegmenter
from ...registry import TASKS
from ...engine.context import ImageResult, RunContext
from ...reporting.entry import ReportEntry
from ..base import Task
from .session import MASK_CHOICES, PROMPTS, prompted_session


@dataclass
class MiouOptions:
    prompt: str = "box"  # box (ground-truth box) | center | random (seeded point in the mask) | box+center
    clicks: int = 1  # rounds: the prompt, then clicks-1 RITM follow-up clicks (EfficientViT-SAM's --num_click)
    mask_choice: str = "predicted_iou"  # multimask + highest predicted IoU | single (one output) | oracle (best of 3)

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise ConfigError(f"option prompt of task 'miou': {self.prompt!r}; choose {PROMPTS}")
        if self.mask_choice not in MASK_CHOICES:
            raise ConfigError(f"option mask_choice of task 'miou': {self.mask_choice!r}; choose {MASK_CHOICES}")
        if not 1 <= int(self.clicks) <= 100:
            raise ConfigError(f"option clicks of task 'miou': {self.clicks}; need 1..100")


@TASKS.register("miou", help="prompted per-instance mIoU (box / clicks), size bins, boundary IoU (EfficientViT-SAM, HQ-SAM)")
class MiouTask(Task):
    name = "miou"
    title = "Prompted per-instance mIoU (EfficientViT-SAM / EdgeSAM / HQ-SAM protocols)"
    headline_metrics = ("mIoU", "mBIoU")
    Options = MiouOptions

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.options), "boundary_dilation_ratio": DILATION_RATIO,
                "size_bins": "pycocotools areaRng on the annotation's area, bounds inclusive"}

    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
        if self.options.mask_choice == "oracle" and model.masks_per_multimask_output < 2:
            raise ConfigError(f"task 'miou': model '{model.info.name}' returns one mask under multimask output, "
                              f"so there is no oracle to pick; use --mask-choice predicted_iou or single")
        shape = (sample.height, sample.width)
        ignore = sample.ignore
        where = f"image {sample.image_id} ({sample.path})"
        if ignore is not None and ignore.shape != shape:
            raise DataError(f"{where}: ignore map {ignore.shape} != image {shape}")
        targets, crowd, empty = [], 0, 0
        for obj in sample.objects:
            if obj.mask.shape != shape:
                raise DataError(f"{where}: mask of object {obj.object_id} is {obj.mask.shape}, image is {shape}")
            if obj.extra.get("iscrowd"):
                crowd += 1
            elif (obj.mask if ignore is None else obj.mask & ~ignore).any():
                targets.append(obj)
            else:
                empty += 1
        payload: dict[str, Any] = {"instances": [], "crowd": crowd, "empty": empty}
        if not targets:
            return ImageResult(sample.image_id, [], payload)
        image = sample.load_image()
        if image.shape[:2] != shape:
            raise DataError(f"{where}: pixels {image.shape[:2]} != declared {shape}")
        embedding = ctx.embed(image)
        opts = self.options
        rng = ctx.rng(sample.image_id, "miou-random-click") if opts.prompt == "random" else None
        boxes = np.array([o.box for o in targets], np.float64)
        results = prompted_session(model, embedding, [o.mask for o in targets], boxes, ignore, opts.prompt,
                                   opts.clicks, opts.mask_choice, rng, ctx.timed)
        rows = []
        for obj, res in zip(targets, results):
            area = float(obj.area)
            record = {"object_id": obj.object_id, "category_id": obj.category_id, "category": obj.category,
                      "area": area, "size": "+".join(size_bins(area)), "iou": res.ious[-1],
                      "biou": res.bious[-1], "pred_iou": res.pred_ious[-1], "clicks": len(res.clicks)}
            rows.append(record)
            payload["instances"].append({k: record[k] for k in ("area", "iou", "biou")})
        return ImageResult(sample.image_id, rows, payload)

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        instances = [i for r in results for i in r.payload["instances"]]
        if not instances:
            raise DataError(f"task 'miou': no non-crowd instance with a non-empty mask in '{ctx.dataset.name}'")
        metrics = miou_metrics([i["iou"] for i in instances], [i["area"] for i in instances],
                               [i["biou"] for i in instances])
        metrics["crowd_excluded"] = sum(r.payload["crowd"] for r in results)
        metrics["empty_excluded"] = sum(r.payload["empty"] for r in results)
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Instances (objects); a size bin's column is NaN outside the bin (not counted in its mean)."""
        rows = [(r.image_id, row) for r in results for row in r.rows]
        columns = {"mIoU": [row["iou"] for _, row in rows], "mBIoU": [row["biou"] for _, row in rows]}
        for size in AREA_RANGES:
            columns[f"mIoU_{size}"] = [row["iou"] if in_range(row["area"], size) else None for _, row in rows]
        return UnitSample("object", [f"{image}/{row['object_id']}" for image, row in rows], "mean", columns)

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        """categories.csv: mIoU / mBIoU / instances per category (datasets with categories)."""
        rows = [row for r in results for row in r.rows if row.get("category_id") is not None]
        if not rows:
            return
        table = (pd.DataFrame(rows).groupby(["category_id", "category"], dropna=False)
                 .agg(instances=("iou", "size"), mIoU=("iou", "mean"), mBIoU=("biou", "mean")).reset_index())
        atomic_write(ctx.out_dir / "categories.csv", lambda f: table.to_csv(f, index=False))

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        from .report import miou_report

        return miou_report(cls.title, entries)
