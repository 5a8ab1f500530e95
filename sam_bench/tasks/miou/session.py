"""Prompted masks for every instance of one image: one prompt, then optional RITM follow-up clicks.

Round 1 prompts each instance with its ground-truth box, its center click, a random click inside
it, or box + center click. Each later round adds one RITM click (sam_bench/prompts/clicks.py)
computed against the instance's previous mask, and decodes with every click so far (plus the box),
as EfficientViT-SAM's `--num_click` does (no mask prompt fed back). All active instances go
through the decoder in one batched call per round. Masks are compared at the image's resolution
(the model's upsampled logits > threshold, as SamPredictor.predict returns them); void pixels
(`sample.ignore`) are excluded from IoU and boundary IoU. As in the point task, the kept masks
stay on the decoder's device for the click rule and boundary IoU when it is a GPU (`on_device`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ...core.timing import StageTimers
from ...core.types import ImageEmbedding, Prompts
from ...metrics.boundary import Mask, boundary_iou
from ...metrics.ground_truth import GroundTruth, click_inputs
from ...models.base import PromptableSegmenter
from ...models.upsampling import upsampled_chunks
from ...prompts.clicks import Click, add_corrective_clicks, center_click, on_device, random_click

PROMPTS = ("box", "center", "random", "box+center")
MASK_CHOICES = ("predicted_iou", "single", "oracle")


@dataclass
class InstanceResult:
    """One instance's masks over the rounds (IoU / boundary IoU / predicted IoU of the kept mask)."""

    clicks: list[Click] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    bious: list[float] = field(default_factory=list)
    pred_ious: list[float] = field(default_factory=list)


def first_clicks(prompt: str, gts: list[np.ndarray], ignore: Optional[np.ndarray],
                 rng: Optional[np.random.Generator]) -> list[list[Click]]:
    """The round-1 click of each instance (none for a box prompt)."""
    if prompt == "box":
        return [[] for _ in gts]
    clicks = []
    for gt in gts:
        click = random_click(gt, ignore, rng) if prompt == "random" else center_click(gt, ignore)
        if click is None:
            raise ValueError("instance without a clickable pixel")
        clicks.append([click])
    return clicks


def choose(mask_choice: str, pred_iou: torch.Tensor, ious: torch.Tensor) -> torch.Tensor:
    """Index of the kept candidate per prompt: highest predicted IoU (first maximum, as numpy's
    argmax on SamPredictor's scores), the only one (single output), or the best vs ground truth."""
    if mask_choice == "oracle":
        return ious.argmax(dim=1)
    return pred_iou.argmax(dim=1)  # single output: one candidate, index 0


def prompted_session(model: PromptableSegmenter, embedding: ImageEmbedding, gts: list[np.ndarray],
                     boxes: np.ndarray, ignore: Optional[np.ndarray], prompt: str = "box", clicks: int = 1,
                     mask_choice: str = "predicted_iou", rng: Optional[np.random.Generator] = None,
                     timed: Optional[StageTimers] = None) -> list[InstanceResult]:
    """Run `clicks` rounds on the instances `gts` ((H, W) bool, non-empty off void) of one image.

    boxes: (K, 4) x0 y0 x1 y1 ground-truth boxes (used when the prompt has a box).
    """
    timed = timed if timed is not None else StageTimers()
    results = [InstanceResult() for _ in gts]
    with timed("clicks"):
        for result, first in zip(results, first_clicks(prompt, gts, ignore, rng)):
            result.clicks += first
    use_box = prompt.startswith("box")
    pred_masks: list[Optional[Mask]] = [None] * len(gts)
    # The click rule's inputs and the ground-truth boundaries (reused every round), set at round 1.
    click_gts: list[Mask] = gts
    click_ignore: Optional[Mask] = ignore
    gt_boundaries: list[Mask] = []
    active = list(range(len(gts)))
    for round_ in range(1, clicks + 1):
        if round_ > 1:
            with timed("clicks"):
                active = add_corrective_clicks(click_gts, pred_masks, click_ignore, [r.clicks for r in results], active)
            if not active:
                break
        points = labels = None
        if results[active[0]].clicks:
            points = np.array([[(c.x, c.y) for c in results[k].clicks] for k in active], np.float64)
            labels = np.array([[int(c.positive) for c in results[k].clicks] for k in active], np.int64)
        prompts = Prompts(points, labels, boxes=boxes[active] if use_box else None)
        with timed("decode"):
            decoded = model.decode(embedding, prompts, multimask=mask_choice != "single")
        if round_ == 1:  # ground truth on the decoder's device once; clicks and boundaries there too, or numpy
            device = on_device(decoded.low_res_logits)
            with timed("metric"):
                truth = GroundTruth(gts, ignore, decoded.low_res_logits.device)
                click_gts, click_ignore, gt_boundaries = click_inputs(gts, ignore, truth if device else None)
        with timed("masks"):
            ious, pred_iou, kept = _score(model, embedding, decoded.low_res_logits,
                                          decoded.iou_predictions, truth, active, mask_choice)
            kept = kept if device else kept.cpu().numpy()
        with timed("metric"):
            for i, k in enumerate(active):
                results[k].ious.append(float(ious[i]))
                results[k].pred_ious.append(float(pred_iou[i]))
                results[k].bious.append(boundary_iou(gts[k], kept[i], gt_boundary=gt_boundaries[k]))
                pred_masks[k] = kept[i]
    return results


def _score(model: PromptableSegmenter, embedding: ImageEmbedding, low_res: torch.Tensor,
           iou_predictions: torch.Tensor, truth: GroundTruth, objects: list[int],
           mask_choice: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(IoU, predicted IoU, full-res mask on the device) of the kept candidate of each prompt, void
    pixels removed.

    Candidates are upsampled in chunks that bound memory; IoUs are counted on the decoder's device.
    """
    ious, preds, kept = [], [], []
    for sl, logits in upsampled_chunks(model, embedding, low_res):
        pred = logits > model.mask_threshold  # (c, M, H, W)
        gt = truth.masks[torch.as_tensor(objects[sl], device=pred.device)][:, None]  # void removed
        if truth.valid is not None:  # prediction without void too, as the point task
            pred = pred & truth.valid
        inter = (pred & gt).flatten(2).sum(2)
        union = (pred | gt).flatten(2).sum(2)
        cand = torch.where(union > 0, inter.double() / union.clamp(min=1), 1.0)
        score = iou_predictions[sl].float().to(pred.device)
        pick = choose(mask_choice, score, cand)
        rows = torch.arange(len(pick), device=pred.device)
        ious.append(cand[rows, pick].cpu())
        preds.append(score[rows, pick].cpu())
        kept.append(pred[rows, pick])
    return torch.cat(ious).numpy(), torch.cat(preds).numpy(), torch.cat(kept)
