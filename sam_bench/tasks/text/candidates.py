"""Candidate masks of the text-to-mask task (`sam_bench.tasks.text`), computed once per image.

Two sources: SAM's automatic mask generation over the whole image (each candidate's prompt is its
grid point), or a text-conditioned detector's boxes prompted into SAM, one mask per box
(Grounded-SAM style). Refinement gives chosen candidates one more decoder pass: the candidate's
own prompt plus a positive point at its mask's centre.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ...core.types import ImageEmbedding, Prompts
from ...data.types import ImageSample
from ...errors import DataError
from ...models.base import PromptableSegmenter
from ...prompts.clicks import center_click
from ...engine.context import RunContext


@dataclass
class Candidates:
    """Candidate masks of one image, shared by all of its phrases."""

    masks: np.ndarray  # (C, H, W) bool
    boxes: np.ndarray  # (C, 4) x0 y0 x1 y1
    quality: np.ndarray  # (C,) SAM predicted IoU (AMG) or detector score
    prompts: Optional[Prompts] = None  # what produced each candidate (refinement adds a point to it)
    category_ids: Optional[np.ndarray] = None  # (C,) detector class per candidate
    source: str = "amg"

    def __len__(self) -> int:
        return len(self.masks)


# (ctx, sample, image, embed) -> Candidates; embed() gives the image's SAM embedding, computed on first use.
CandidateSource = Callable[[RunContext, ImageSample, np.ndarray, Callable[[], ImageEmbedding]], Candidates]


def empty_candidates(h: int, w: int, source: str) -> Candidates:
    return Candidates(np.zeros((0, h, w), bool), np.zeros((0, 4)), np.zeros(0), None, None, source)


def coco_image_id(sample: ImageSample) -> Any:
    return sample.extra.get("coco_image_id")


def single_output_masks(model: PromptableSegmenter, embedding: ImageEmbedding, prompts: Prompts) -> np.ndarray:
    """One decoder pass without multimask output -> (B, H, W) bool masks at image size."""
    decoded = model.decode(embedding, prompts, multimask=False)
    return (model.upsample(embedding, decoded.low_res_logits)[:, 0] > model.mask_threshold).cpu().numpy()


class AmgCandidates:
    """Candidate source: the automatic mask generator's masks (`sam_bench.amg`), scored by predicted IoU."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def __call__(self, ctx: RunContext, sample: ImageSample, image: np.ndarray,
                 embed: Callable[[], ImageEmbedding]) -> Candidates:
        records = self.generator.generate(image, embedding=embed()).records
        h, w = image.shape[:2]
        if not records:
            return empty_candidates(h, w, "amg")
        boxes = np.array([r["bbox"] for r in records], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        points = np.array([r["point_coords"] for r in records], np.float64).reshape(len(records), -1, 2)
        return Candidates(masks=np.stack([np.asarray(r["segmentation"], bool) for r in records]), boxes=boxes,
                          quality=np.array([r["predicted_iou"] for r in records], np.float64),
                          prompts=Prompts(points=points, labels=np.ones(points.shape[:2], np.int64)), source="amg")


class DetectorCandidates:
    """Candidate source: the image's detector boxes (see `load_detection_boxes`), one SAM mask per box."""

    def __init__(self, model: PromptableSegmenter,
                 detections: dict[Any, list[tuple[list[float], float, int]]]) -> None:
        self.model = model
        self.detections = detections

    def __call__(self, ctx: RunContext, sample: ImageSample, image: np.ndarray,
                 embed: Callable[[], ImageEmbedding]) -> Candidates:
        h, w = image.shape[:2]
        dets = self.detections.get(coco_image_id(sample), [])
        if not dets:
            return empty_candidates(h, w, "detector")
        boxes = np.array([d[0] for d in dets], np.float64)
        prompts = Prompts(boxes=boxes)
        masks = single_output_masks(self.model, embed(), prompts)  # box prompt: one mask, as Grounded-SAM
        return Candidates(masks=masks, boxes=boxes, quality=np.array([d[1] for d in dets]), prompts=prompts,
                          category_ids=np.array([d[2] for d in dets], np.int64), source="detector")


def load_detection_boxes(path: Path, min_score: float) -> dict[Any, list[tuple[list[float], float, int]]]:
    """COCO results json -> {image_id: [(x0 y0 x1 y1, score, category_id)]}, best score first."""
    if not path.is_file():
        raise DataError(f"{path}: detections file not found")
    try:
        dets = json.loads(path.read_text())
        out: dict[Any, list] = {}
        for d in dets:
            if float(d["score"]) < min_score:
                continue
            x, y, w, h = (float(v) for v in d["bbox"])
            out.setdefault(d["image_id"], []).append(([x, y, x + w, y + h], float(d["score"]), int(d["category_id"])))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a COCO results json (image_id, category_id, bbox, score): {exc}") from None
    for v in out.values():
        v.sort(key=lambda d: -d[1])
    return out


def refine_at_centres(model: PromptableSegmenter, embedding: ImageEmbedding, cands: Candidates, choice: list[int],
           final: np.ndarray) -> np.ndarray:
    """`final` with each chosen candidate (choice >= 0, non-empty mask) re-decoded from its prompt
    plus a positive point at its mask's centre (single output)."""
    todo, centers = [], []
    for q, c in enumerate(choice):
        click = center_click(cands.masks[c]) if c >= 0 else None
        if click is not None:
            todo.append(q)
            centers.append([[click.x, click.y]])
    if not todo:
        return final
    picked = [choice[q] for q in todo]
    centers = np.array(centers, np.float64)
    base = cands.prompts.select(picked) if cands.prompts is not None else None
    if base is not None and base.points is not None:
        points = np.concatenate([base.points, centers], 1)
        labels = np.concatenate([base.labels, np.ones((len(todo), 1), np.int64)], 1)
    else:
        points, labels = centers, np.ones((len(todo), 1), np.int64)
    prompts = Prompts(points=points, labels=labels, boxes=None if base is None else base.boxes)
    masks = single_output_masks(model, embedding, prompts)  # > 1 prompt: SAM's single output
    final = final.copy()
    final[todo] = masks
    return final
