"""Mask encodings and the final clean-up steps of automatic mask generation."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from segment_anything.utils.amg import batched_mask_to_box, remove_small_regions
from torchvision.ops.boxes import batched_nms


def boxes_from_rles(rles: list[dict]) -> torch.Tensor:
    """(K, 4) int64 xyxy boxes as segment_anything's batched_mask_to_box gives them (x1/y1 are the
    last mask pixel, [0, 0, 0, 0] for an empty mask), from pycocotools' C bbox of the RLEs."""
    if not rles:
        return torch.zeros(0, 4, dtype=torch.int64)
    xywh = mask_utils.toBbox(rles).astype(np.int64)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], axis=1)
    boxes[(xywh[:, 2] == 0) | (xywh[:, 3] == 0)] = 0
    return torch.from_numpy(boxes)


def to_image_frame(rle: dict, crop_box: list[int], size: tuple[int, int]) -> dict:
    """RLE of a crop's mask -> RLE of the same mask placed in the (H, W) image."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, size[1], size[0]):
        return rle
    full = np.zeros(size, np.uint8, order="F")
    full[y0:y1, x0:x1] = mask_utils.decode(rle)
    return mask_utils.encode(full)


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """The official 'uncompressed_rle': plain column-major run lengths, starting with a 0-run.

    pycocotools only writes the compressed string form, so the runs are counted here.
    """
    flat = np.asarray(mask, bool).ravel(order="F")
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def segmentation(rle: dict, output_mode: str) -> Any:
    if output_mode == "coco_rle":
        counts = rle["counts"]
        return {"size": [int(v) for v in rle["size"]],
                "counts": counts.decode("utf-8") if isinstance(counts, bytes) else counts}
    mask = mask_utils.decode(rle).astype(bool)
    return mask if output_mode == "binary_mask" else uncompressed_rle(mask)


def remove_small_regions_and_duplicates(rles: list[dict], boxes: torch.Tensor, min_area: int,
                                        nms_thresh: float) -> tuple[torch.Tensor, list[dict], torch.Tensor]:
    """The official post-processing: fill small holes, drop small islands, then box NMS preferring
    unchanged masks. Returns (kept indices in their new order, updated RLEs, updated boxes)."""
    masks, scores = [], []
    for rle in rles:
        mask = mask_utils.decode(rle).astype(bool)
        mask, filled = remove_small_regions(mask, min_area, mode="holes")
        mask, cut = remove_small_regions(mask, min_area, mode="islands")
        masks.append(mask)
        scores.append(float(not (filled or cut)))
    new_boxes = torch.stack([batched_mask_to_box(torch.from_numpy(np.ascontiguousarray(m))) for m in masks])
    keep = batched_nms(new_boxes.float(), torch.as_tensor(scores), torch.zeros(len(masks)), iou_threshold=nms_thresh)
    rles, boxes = list(rles), boxes.clone()
    for i in keep.tolist():
        if scores[i] == 0.0:  # only changed masks get a new RLE and box
            rles[i] = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            boxes[i] = new_boxes[i].to(boxes)
    return keep, rles, boxes


def rank_order(iou: np.ndarray, stability: np.ndarray, rank_by: str, rng: np.random.Generator) -> np.ndarray:
    """Indices best first; ties keep the NMS order (stable sort)."""
    if rank_by == "random":
        return rng.permutation(len(iou))
    score = {"predicted_iou": iou, "stability_score": stability,
             "mean_iou_stability": (iou + stability) / 2}[rank_by]
    return np.argsort(-score, kind="stable")


def xyxy_to_xywh(box: list) -> list:
    """Official convention: x1/y1 are the last mask pixel, so w = x1 - x0 (not + 1)."""
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]
