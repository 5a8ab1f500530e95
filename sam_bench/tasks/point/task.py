"""Task `point`: masks from 1 to N simulated clicks (PROTOCOLS.md §1; paper §7.1, Fig. 9).

Per image: one encoder pass (ctx.embed) for all objects and clicks. Click 1 decodes every object
in one multimask call: the mask with the highest predicted IoU continues ("SAM" choice), the best
of the candidates against ground truth is the oracle. Each later round adds one RITM click
(sam_bench/prompts/clicks.py) to every object still in play and decodes them all in one
single-output call, with the previous chosen mask's low-res logits as mask prompt by default.

IoUs are exactly those of SamPredictor.predict + full-resolution masks: the chosen mask is needed
at full resolution anyway (the click rule reads the whole false-positive map), so each round
upsamples all its candidates in one batched torch call (chunked to bound memory) and counts
intersections and unions on torch, void pixels excluded; the click rule's distance transforms run
on the error regions' bounding boxes only (exact, see clicks.py). benchmarks/point.py checks this
against the naive loop. When the decoder runs on a GPU (`on_device`), the kept masks, ground
truths and boundaries stay there and the click rule and boundary IoU run with torch (only click
coordinates and counts come back); on the CPU they run with cv2 on numpy. Both give the same
traces. Round 1's center click is always numpy: once per object, before the first decode.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ...core.timing import StageTimers
from ...core.types import ImageEmbedding, Prompts
from ...data.types import ImageSample
from ...errors import ConfigError, DataError
from ...metrics.boundary import Mask, boundary_iou
from ...metrics.ground_truth import GroundTruth, click_inputs
from ...metrics.bootstrap import UnitSample
from ...metrics.point import NOC_THRESHOLDS, REPORT_CLICKS, iou_matrix, miou_curve, number_of_clicks, point_metrics
from ...models.base import PromptableSegmenter
from ...models.upsampling import upsampled_chunks
from ...prompts.clicks import Click, add_corrective_clicks, center_click, on_device, random_click
from ...registry import TASKS
from ...engine.context import ImageResult, RunContext
from ...reporting.entry import ReportEntry
from ..base import Task

log = logging.getLogger(__name__)

FIRST_CLICKS = ("center", "random")


@dataclass
class PointOptions:
    first_click: str = "center"  # center: farthest from the boundary; random: uniform in the mask
    max_clicks: int = 20  # NoC is capped here; mIoU@N is reported for N <= max_clicks
    feedback: bool = True  # feed the previous chosen mask's low-res logits back as a mask prompt

    def __post_init__(self) -> None:
        if self.first_click not in FIRST_CLICKS:
            raise ConfigError(f"option first_click of task 'point': {self.first_click!r}; choose {FIRST_CLICKS}")
        if not 1 <= int(self.max_clicks) <= 100:
            raise ConfigError(f"option max_clicks of task 'point': {self.max_clicks}; need 1..100")


@dataclass
class ObjectTrace:
    """One object's interactive session."""

    clicks: list[Click] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)  # IoU after each click
    pred_ious: list[float] = field(default_factory=list)  # the model's predicted IoU of that mask
    # Best click-1 candidate against ground truth; None when the model returns one mask under
    # multimask output (HQ-SAM): there is nothing to choose from, so no oracle is reported.
    iou_oracle: Optional[float] = None
    bious: list[float] = field(default_factory=list)  # boundary IoU after each click (void removed)


def masks_and_ious(model: PromptableSegmenter, embedding: ImageEmbedding, low_res: torch.Tensor,
                   gt: GroundTruth, objects: list[int], keep: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """IoU (A, M) of every candidate of objects[a] against its ground truth, void pixels excluded,
    and the full-res candidate keep[a] of each as (A, H, W) bool on the device. Upsampled in chunks."""
    ious, kept = [], []
    for sl, logits in upsampled_chunks(model, embedding, low_res):
        pred = logits > model.mask_threshold
        if gt.valid is not None:
            pred &= gt.valid
        index = torch.as_tensor(objects[sl], device=pred.device)
        # IoU counts on torch, with each object's area counted once per image.
        inter = (pred & gt.masks[index][:, None]).flatten(2).sum(2)
        union = pred.flatten(2).sum(2) + gt.areas[index][:, None] - inter
        ious.append(torch.where(union > 0, inter.double() / union.clamp(min=1), 1.0).cpu())
        rows = torch.arange(pred.shape[0], device=pred.device)
        kept.append(pred[rows, torch.as_tensor(keep[sl], device=pred.device)])
    return torch.cat(ious).numpy(), torch.cat(kept)


def interactive_session(model: PromptableSegmenter, embedding: ImageEmbedding, gts: list[np.ndarray],
                        ignore: Optional[np.ndarray], first_click: str = "center", max_clicks: int = 20,
                        feedback: bool = True, rng: Optional[np.random.Generator] = None,
                        timed: Optional[StageTimers] = None) -> list[ObjectTrace]:
    """Run the click protocol on all objects of one image; every object must have a non-void pixel."""
    timed = timed if timed is not None else StageTimers()
    truth: Optional[GroundTruth] = None  # built on the decoder's device at the first round
    traces = [ObjectTrace() for _ in gts]
    with timed("clicks"):
        for trace, gt in zip(traces, gts):
            click = center_click(gt, ignore) if first_click == "center" else random_click(gt, ignore, rng)
            if click is None:
                raise ValueError("object without a clickable pixel")
            trace.clicks.append(click)
    active = list(range(len(gts)))
    pred_masks: list[Optional[Mask]] = [None] * len(gts)
    # The click rule's inputs and the ground-truth boundaries (reused every click), set at round 1.
    click_gts: list[Mask] = gts
    click_ignore: Optional[Mask] = ignore
    gt_boundaries: list[Mask] = []
    prev_logits: Optional[torch.Tensor] = None  # (K, 1, h, w): each object's last chosen logits
    for round_ in range(1, max_clicks + 1):
        if round_ > 1:
            with timed("clicks"):
                active = add_corrective_clicks(click_gts, pred_masks, click_ignore, [t.clicks for t in traces], active)
            if not active:
                break
        points = np.array([[(c.x, c.y) for c in traces[k].clicks] for k in active], dtype=np.float64)
        labels = np.array([[int(c.positive) for c in traces[k].clicks] for k in active], dtype=np.int64)
        mask_in = prev_logits[active] if feedback and round_ > 1 else None
        with timed("decode"):
            decoded = model.decode(embedding, Prompts(points, labels, mask_logits=mask_in), multimask=round_ == 1)
        low_res = decoded.low_res_logits
        pred_iou = decoded.iou_predictions.float().cpu().numpy()
        choice = pred_iou.argmax(axis=1)  # first maximum, as numpy on SamPredictor's scores
        with timed("masks"):
            if truth is None:
                truth = GroundTruth(gts, ignore, low_res.device)
                device = on_device(low_res)  # clicks and boundaries on the decoder's device, or numpy
            ious, kept = masks_and_ious(model, embedding, low_res, truth, active, choice)
            kept = kept if device else kept.cpu().numpy()
        if round_ == 1:
            with timed("metric"):
                click_gts, click_ignore, gt_boundaries = click_inputs(gts, ignore, truth if device else None)
        chosen = low_res[torch.arange(len(active), device=low_res.device),
                         torch.as_tensor(choice, device=low_res.device)][:, None]
        if prev_logits is None:
            prev_logits = chosen.detach().clone()
        else:
            prev_logits[active] = chosen.to(prev_logits.device)
        for i, k in enumerate(active):
            trace = traces[k]
            trace.ious.append(float(ious[i, choice[i]]))
            trace.pred_ious.append(float(pred_iou[i, choice[i]]))
            pred_masks[k] = kept[i]
            with timed("metric"):
                trace.bious.append(boundary_iou(gts[k], kept[i], gt_boundary=gt_boundaries[k]))
            if round_ == 1 and model.masks_per_multimask_output > 1:
                trace.iou_oracle = float(ious[i].max())
    return traces


@TASKS.register("point", help="masks from 1..N simulated clicks: mIoU@N, oracle, NoC/NoF (paper §7.1)")
class PointTask(Task):
    name = "point"
    title = "Point-prompted valid masks (paper §7.1, Fig. 9)"
    headline_metrics = ("mIoU@1", "mIoU@5", "NoC@90")
    Options = PointOptions
    paper_section = (7, 1)  # report order

    def evaluate_image(self, ctx: RunContext, sample: ImageSample) -> ImageResult:
        model: PromptableSegmenter = ctx.model  # type: ignore[assignment]  # runner checked Task.requires
        shape = (sample.height, sample.width)
        ignore = sample.ignore
        if ignore is not None and ignore.shape != shape:
            raise DataError(f"image {sample.image_id} ({sample.path}): ignore map {ignore.shape} != image {shape}")
        targets, skipped = [], []
        for obj in sample.objects:
            if obj.mask.shape != shape:
                raise DataError(f"image {sample.image_id} ({sample.path}): mask of object {obj.object_id} "
                                f"is {obj.mask.shape}, image is {shape}")
            clickable = obj.mask if ignore is None else obj.mask & ~ignore
            (targets if clickable.any() else skipped).append(obj)
        payload: dict[str, Any] = {"objects": [], "skipped": [o.object_id for o in skipped]}
        if skipped:
            found = "".join(f"; {o.extra['encoding_problem']}" for o in skipped if o.extra.get("encoding_problem"))
            log.warning("%s image %s: skipping %d object(s) with no clickable pixel (empty or void-only mask): %s%s",
                        ctx.dataset.name, sample.image_id, len(skipped), ", ".join(str(o.object_id) for o in skipped),
                        found)
        if not targets:
            return ImageResult(sample.image_id, [], payload)
        image = sample.load_image()
        if image.shape[:2] != shape:
            raise DataError(f"{sample.path}: image is {image.shape[1]}x{image.shape[0]} but its annotations "
                            f"(masks / label map) are {shape[1]}x{shape[0]}; they must have the image's size")
        embedding = ctx.embed(image)
        opts = self.options
        rng = ctx.rng(sample.image_id, "point-first-click") if opts.first_click == "random" else None
        traces = interactive_session(model, embedding, [o.mask for o in targets], ignore, opts.first_click,
                                     opts.max_clicks, opts.feedback, rng, ctx.timed)
        rows = []
        for obj, trace in zip(targets, traces):
            payload["objects"].append({"object_id": obj.object_id, "ious": trace.ious,
                                       "iou_oracle": trace.iou_oracle, "bious": trace.bious})
            for n, (click, iou, pred, biou) in enumerate(zip(trace.clicks, trace.ious, trace.pred_ious, trace.bious),
                                                         start=1):
                rows.append({"object_id": obj.object_id, "click": n, "x": click.x, "y": click.y,
                             "positive": int(click.positive), "iou": iou, "biou": biou, "pred_iou": pred,
                             "iou_oracle": trace.iou_oracle if n == 1 else None})
        return ImageResult(sample.image_id, rows, payload)

    def _ious(self, results: list[ImageResult]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        objects = [o for r in results for o in r.payload["objects"]]
        if not objects:
            raise DataError("task 'point': no object with a non-void pixel in this dataset")
        oracle = [o["iou_oracle"] for o in objects]
        return (iou_matrix([o["ious"] for o in objects], self.options.max_clicks),
                None if None in oracle else np.array(oracle))

    def compute_metrics(self, ctx: RunContext, results: list[ImageResult]) -> dict[str, float]:
        ious, oracle = self._ious(results)
        metrics = point_metrics(ious, oracle)
        objects = [o for r in results for o in r.payload["objects"]]
        bious = iou_matrix([o["bious"] for o in objects], self.options.max_clicks)  # boundary IoU, same layout
        metrics.update({f"mBIoU@{n}": float(bious[:, n - 1].mean()) for n in REPORT_CLICKS if n <= bious.shape[1]})
        metrics["skipped_objects"] = sum(len(r.payload["skipped"]) for r in results)
        return metrics

    def bootstrap_units(self, ctx: RunContext, results: list[ImageResult]) -> UnitSample:
        """Objects: each headline metric is a mean of per-object values."""
        ious, oracle = self._ious(results)
        objects = [(r.image_id, o) for r in results for o in r.payload["objects"]]
        bious = iou_matrix([o["bious"] for _, o in objects], self.options.max_clicks)
        columns = {f"mIoU@{n}": ious[:, n - 1] for n in REPORT_CLICKS if n <= ious.shape[1]}
        columns.update({f"NoC@{t}": number_of_clicks(ious, t / 100) for t in NOC_THRESHOLDS})
        columns.update({f"mBIoU@{n}": bious[:, n - 1] for n in REPORT_CLICKS if n <= bious.shape[1]})
        if oracle is not None:
            columns["oracle_mIoU@1"] = oracle
        return UnitSample("object", [f"{image}/{o['object_id']}" for image, o in objects], "mean",
                          {name: [float(v) for v in values] for name, values in columns.items()})

    def finalize(self, ctx: RunContext, results: list[ImageResult], metrics: dict[str, float]) -> None:
        from matplotlib.figure import Figure  # no pyplot: no global backend state

        ious, oracle = self._ious(results)
        curve = 100 * miou_curve(ious)
        clicks = np.arange(1, len(curve) + 1)
        fig = Figure(figsize=(4.5, 3.4))
        ax = fig.add_subplot()
        ax.plot(clicks, curve, marker="o", label=f"{ctx.model.info.label}")
        if oracle is not None:
            ax.plot([1], [100 * oracle.mean()], marker="*", linestyle="none", markersize=10, label="oracle @1")
        ax.set_xlabel("number of points")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(f"{ctx.dataset.name}: {len(ious)} objects")
        ax.set_xticks([n for n in REPORT_CLICKS if n <= len(curve)] + ([len(curve)] if len(curve) > 9 else []))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(ctx.out_dir / "miou_curve.png", dpi=110)

    @classmethod
    def report_section(cls, entries: list[ReportEntry]) -> str:
        from .report import point_report

        return point_report(cls.title, entries)
