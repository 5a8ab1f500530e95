"""Automatic mask generation (AMG): segment_anything's SamAutomaticMaskGenerator algorithm, driven
through the PromptableSegmenter interface, so it runs any segmenter (SAM, tiny, future adapters).

Same masks as the official generator for the same model and settings (tests/test_amg.py). Where
the official generator spends its time beside the model, and what this one does instead:
- it upsamples all 3 masks of every prompt to full resolution before the predicted-IoU filter;
  here only masks that pass that filter (an exact test on the decoder's scores) are upsampled,
  in bounded sub-batches;
- it run-length encodes every candidate in a Python loop; here pycocotools' C encoder does it,
  boxes come from the RLEs (pycocotools' C bbox), and masks are decoded back only for the records.
Stability scores and boxes stay on the full-resolution logits of segmenter.upsample, as in the
official code: on SAM's 256x256 logits they differ (stability by 2e-3 typically, up to 3e-2; boxes
by up to 20 px), which changes which masks pass the stability filter, the crop-edge filter and NMS.
On CPU the model's mask decoder is most of the time (benchmarks/amg.py); this file's share is small.

SAM 2 (sam2's SAM2AutomaticMaskGenerator) runs the same algorithm through SAM2ImagePredictor, so
with the `sam2` segmenter this generator gives its masks (tests/test_sam2.py). Where it differs
from SAM 1's generator, this one follows it: `use_m2m` (refinement pass) is its option; its
multimask=False path gets the dynamic multimask fallback inside the sam2 decoder. One difference is
refused rather than imitated: SAM 2 turns min_mask_region_area into hole/sprinkle filling of the
low-res logits with its CUDA extension (skipped, with a warning, when sam2 is built without it)
and does not run SAM 1's full-resolution small-region removal; sam2 segmenters need 0 here.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from pycocotools import mask as mask_utils
from segment_anything.utils.amg import (
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
)
from torchvision.ops.boxes import batched_nms, box_area

from ..core.timing import StageTimers
from ..core.types import Decoded, ImageEmbedding, Prompts
from ..data.coco_results import rle_encode
from ..errors import ConfigError
from ..models.base import PromptableSegmenter
from .output import (
    boxes_from_rles,
    rank_order,
    remove_small_regions_and_duplicates,
    segmentation,
    to_image_frame,
    xyxy_to_xywh,
)
from .settings import AmgResult, AmgSettings

# Masks upsampled at once: bounds memory (SAM's upsample goes through a 4 MB 1024x1024 map a mask).
UPSAMPLE_BATCH = 32


@dataclass
class _Candidates:
    """Masks that passed the filters, in the official generator's order."""

    boxes: torch.Tensor  # (K, 4) int64 xyxy, x1/y1 inclusive
    iou: torch.Tensor  # (K,) predicted IoU
    stability: torch.Tensor  # (K,)
    points: np.ndarray  # (K, 2) float64 (x, y)
    rles: list[dict]  # pycocotools RLEs, in their crop's frame until the records are written
    crop_boxes: torch.Tensor  # (K, 4) int64 xyxy
    low_res: Optional[torch.Tensor]  # (K, 1, h, w) when return_low_res_logits

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, index: torch.Tensor) -> "_Candidates":
        index = index.cpu()
        rows = index.tolist()
        return _Candidates(self.boxes[index.to(self.boxes.device)], self.iou[index.to(self.iou.device)],
                           self.stability[index.to(self.stability.device)], self.points[index.numpy()],
                           [self.rles[i] for i in rows], self.crop_boxes[index],
                           None if self.low_res is None else self.low_res[index.to(self.low_res.device)])

    @staticmethod
    def cat(parts: list["_Candidates"]) -> "_Candidates":
        low = [p.low_res for p in parts]
        return _Candidates(torch.cat([p.boxes for p in parts]), torch.cat([p.iou for p in parts]),
                           torch.cat([p.stability for p in parts]), np.concatenate([p.points for p in parts]),
                           [r for p in parts for r in p.rles], torch.cat([p.crop_boxes for p in parts]),
                           None if low[0] is None else torch.cat(low))


class AutomaticMaskGenerator:
    def __init__(self, segmenter: PromptableSegmenter, settings: AmgSettings = AmgSettings()) -> None:
        settings.validate()
        if settings.min_mask_region_area > 0 and _family(segmenter) == "sam2":
            raise ConfigError("AMG: min_mask_region_area > 0 is not supported for SAM 2 (its generator fills "
                              "holes in the low-res logits with a CUDA extension instead); use 0")
        self.segmenter = segmenter
        self.settings = settings
        if settings.point_grids is not None:
            self.point_grids = [np.asarray(g, np.float64) for g in settings.point_grids]
        else:
            self.point_grids = build_all_layer_point_grids(
                settings.points_per_side, settings.crop_n_layers, settings.crop_n_points_downscale_factor)

    @torch.no_grad()
    def generate(self, image: np.ndarray, embedding: ImageEmbedding | None = None,
                 rng: np.random.Generator | None = None, timed: StageTimers | None = None) -> AmgResult:
        """image (H, W, 3) uint8 RGB. `embedding`: a precomputed full-image embedding (e.g. from the
        run's embedding cache via ctx.embed) used for the full-image crop layer; crops of deeper
        layers are encoded here. `rng` for rank_by="random" (default: seed 0). `timed` sums wall
        seconds per stage: encode (crops), decode, postprocess, nms, output."""
        s = self.settings
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"AMG: image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        size = (int(image.shape[0]), int(image.shape[1]))
        if embedding is not None and tuple(embedding.original_size) != size:
            raise ValueError(f"AMG: embedding is for a {embedding.original_size} image, the image is {size}")
        timed = timed if timed is not None else StageTimers()

        crop_boxes, layer_idxs = generate_crop_boxes(size, s.crop_n_layers, s.crop_overlap_ratio)
        parts, full_embedding = [], embedding
        for crop_box, layer in zip(crop_boxes, layer_idxs):
            crop_embedding = embedding if layer == 0 else None
            if crop_embedding is None:
                x0, y0, x1, y1 = crop_box
                with timed("encode"):
                    crop_embedding = self.segmenter.encode(image[y0:y1, x0:x1])
                if layer == 0:
                    full_embedding = crop_embedding
            parts.append(self._process_crop(crop_embedding, crop_box, layer, size, timed))
        found = _Candidates.cat(parts)

        with timed("nms"):
            if len(crop_boxes) > 1 and len(found):
                # Between crops, prefer masks from smaller crops (official rule).
                scores = 1 / box_area(found.crop_boxes)
                keep = batched_nms(found.boxes.float().cpu(), scores, torch.zeros(len(found)),
                                   iou_threshold=s.crop_nms_thresh)
                found = found.select(keep)
        with timed("output"):
            records, low_res = self._records(found, size, rng)
        return AmgResult(records, low_res, full_embedding)

    def _process_crop(self, embedding: ImageEmbedding, crop_box: list[int], layer: int,
                      size: tuple[int, int], timed: StageTimers) -> _Candidates:
        s, seg = self.settings, self.segmenter
        crop_h, crop_w = int(crop_box[3] - crop_box[1]), int(crop_box[2] - crop_box[0])
        if tuple(embedding.original_size) != (crop_h, crop_w):
            raise ValueError(f"AMG: embedding of a {embedding.original_size} image for a {(crop_h, crop_w)} crop")
        points = self.point_grids[layer] * np.array([crop_w, crop_h], np.float64)[None]
        full_box = [0, 0, size[1], size[0]]
        found: dict[str, list] = defaultdict(list)
        low_shape: tuple[int, ...] = ()
        for start in range(0, len(points), s.points_per_batch):
            batch = points[start:start + s.points_per_batch]
            with timed("decode"):
                decoded = seg.decode(embedding, Prompts(batch[:, None, :], np.ones((len(batch), 1), np.int64)),
                                     multimask=s.multimask)
                if s.use_m2m:
                    decoded = self._refine(embedding, batch, decoded)
            with timed("postprocess"):
                n_out, low_shape = decoded.low_res_logits.shape[1], tuple(decoded.low_res_logits.shape[2:])
                low = decoded.low_res_logits.flatten(0, 1)
                iou = decoded.iou_predictions.flatten(0, 1)
                batch_points = np.repeat(batch, n_out, axis=0)
                # The predicted-IoU filter needs no mask: apply it before upsampling anything.
                index = torch.arange(len(iou), device=iou.device)
                if s.pred_iou_thresh > 0.0:
                    index = index[iou > s.pred_iou_thresh]
                for sub in index.split(UPSAMPLE_BATCH):
                    logits = seg.upsample(embedding, low[sub][:, None])[:, 0]
                    stability = calculate_stability_score(logits, seg.mask_threshold, s.stability_score_offset)
                    masks = logits > seg.mask_threshold
                    del logits
                    if s.stability_score_thresh > 0.0:
                        keep = stability >= s.stability_score_thresh
                        sub, stability, masks = sub[keep.to(sub.device)], stability[keep], masks[keep]
                    rles = rle_encode(masks)
                    boxes = boxes_from_rles(rles)
                    inside = ~is_box_near_crop_edge(boxes, crop_box, full_box)
                    kept = sub[inside.to(sub.device)]
                    found["boxes"].append(boxes[inside])
                    found["iou"].append(iou[kept].cpu())
                    found["stability"].append(stability[inside.to(stability.device)].cpu())
                    found["points"].append(batch_points[kept.cpu().numpy()])
                    found["rles"].extend(r for r, ok in zip(rles, inside.tolist()) if ok)
                    if s.return_low_res_logits:
                        found["low_res"].append(low[kept][:, None].cpu())
        if not found["rles"]:
            return _Candidates(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0), torch.zeros(0),
                               np.zeros((0, 2)), [], torch.zeros(0, 4, dtype=torch.int64),
                               torch.zeros(0, 1, *low_shape) if s.return_low_res_logits else None)
        cand = _Candidates(torch.cat(found["boxes"]), torch.cat(found["iou"]), torch.cat(found["stability"]),
                           np.concatenate(found["points"]), found["rles"],
                           torch.tensor([crop_box] * len(found["rles"]), dtype=torch.int64),
                           torch.cat(found["low_res"]) if s.return_low_res_logits else None)
        with timed("nms"):
            keep = batched_nms(cand.boxes.float(), cand.iou, torch.zeros(len(cand)), iou_threshold=s.box_nms_thresh)
            cand = cand.select(keep)
        # Back to the image frame (RLEs stay in the crop's frame until the records are written).
        offset = torch.tensor([crop_box[0], crop_box[1]] * 2, dtype=torch.int64)
        cand.boxes = cand.boxes + offset
        cand.points = cand.points + np.array(crop_box[:2], np.float64)
        return cand

    def _refine(self, embedding: ImageEmbedding, points: np.ndarray, decoded: Decoded) -> Decoded:
        """SAM2AutomaticMaskGenerator.refine_with_m2m: every mask's low-res logits go back in with
        its point as a single-output prompt."""
        n, m = decoded.low_res_logits.shape[:2]
        prompts = Prompts(np.repeat(points, m, axis=0)[:, None, :], np.ones((n * m, 1), np.int64),
                          mask_logits=decoded.low_res_logits.flatten(0, 1)[:, None])
        refined = self.segmenter.decode(embedding, prompts, multimask=False)
        return Decoded(refined.low_res_logits.unflatten(0, (n, m))[:, :, 0], refined.iou_predictions.view(n, m))

    def _records(self, found: _Candidates, size: tuple[int, int],
                 rng: np.random.Generator | None) -> tuple[list[dict], Optional[torch.Tensor]]:
        s = self.settings
        found.rles = [to_image_frame(r, c, size) for r, c in zip(found.rles, found.crop_boxes.tolist())]
        if s.min_mask_region_area > 0 and len(found):
            keep, found.rles, found.boxes = remove_small_regions_and_duplicates(
                found.rles, found.boxes, s.min_mask_region_area, max(s.box_nms_thresh, s.crop_nms_thresh))
            found = found.select(keep)
        iou, stability = found.iou.double().numpy(), found.stability.double().numpy()
        order = np.arange(len(found))
        if s.max_masks is not None:
            order = rank_order(iou, stability, s.rank_by, rng or np.random.default_rng(0))[:s.max_masks]
        boxes, crop_boxes = found.boxes.tolist(), found.crop_boxes.tolist()
        records = [{
            "segmentation": segmentation(found.rles[i], s.output_mode),
            "area": int(mask_utils.area(found.rles[i])),
            "bbox": xyxy_to_xywh(boxes[i]),
            "predicted_iou": float(iou[i]),
            "point_coords": [found.points[i].tolist()],
            "stability_score": float(stability[i]),
            "crop_box": xyxy_to_xywh(crop_boxes[i]),
        } for i in order.tolist()]
        low_res = None
        if found.low_res is not None:
            low_res = found.low_res[torch.as_tensor(order, dtype=torch.long)]
        return records, low_res


def _family(segmenter: PromptableSegmenter) -> str:
    info = getattr(segmenter, "info", None)
    return getattr(info, "details", {}).get("family", "sam")
