"""Candidate masks of the text-to-mask task (`sam_bench.tasks.text`) and the CLIP concept source, computed
once per image.

Three sources: SAM's automatic mask generation over the whole image (each candidate's prompt is its
grid point), a text-conditioned detector's boxes prompted into SAM, one mask per box
(Grounded-SAM style), or a concept segmenter's instances for each phrase (SAM 3's text path), each
candidate belonging to the phrase that found it. Refinement gives chosen candidates one more decoder pass: the candidate's
own prompt plus a positive point at its mask's centre.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core.types import ImageEmbedding, Prompts
from ..data.coco_meta import coco_image_id
from ..data.coco_results import DetectionIndex
from ..data.types import ImageSample
from ..models.base import PromptableSegmenter
from ..models.concepts import ConceptSegmenter
from ..models.upsampling import upsampled_chunks
from ..prompts.clicks import center_click
from ..engine.context import RunContext


@dataclass
class Candidates:
    """Candidate masks of one image, shared by all of its phrases."""

    masks: np.ndarray  # (C, H, W) bool
    boxes: np.ndarray  # (C, 4) x0 y0 x1 y1
    quality: np.ndarray  # (C,) SAM predicted IoU (AMG) or detector score
    prompts: Optional[Prompts] = None  # what produced each candidate (refinement adds a point to it)
    category_ids: Optional[np.ndarray] = None  # (C,) detector class per candidate
    phrases: Optional[list[str]] = None  # (C,) the phrase a concept segmenter found each candidate for

    def __len__(self) -> int:
        return len(self.masks)


# (ctx, sample, image, embed) -> Candidates; embed() gives the image's SAM embedding, computed on first use.
CandidateSource = Callable[[RunContext, ImageSample, np.ndarray, Callable[[], ImageEmbedding]], Candidates]


def empty_candidates(h: int, w: int) -> Candidates:
    return Candidates(np.zeros((0, h, w), bool), np.zeros((0, 4)), np.zeros(0))


def single_output_masks(model: PromptableSegmenter, embedding: ImageEmbedding, prompts: Prompts) -> np.ndarray:
    """One decoder pass without multimask output -> (B, H, W) bool masks at image size."""
    decoded = model.decode(embedding, prompts, multimask=False)
    return np.concatenate([(logits[:, 0] > model.mask_threshold).cpu().numpy()
                           for _, logits in upsampled_chunks(model, embedding, decoded.low_res_logits)])


class AmgCandidates:
    """Candidate source: the automatic mask generator's masks (`sam_bench.amg`), scored by predicted IoU."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def __call__(self, ctx: RunContext, sample: ImageSample, image: np.ndarray,
                 embed: Callable[[], ImageEmbedding]) -> Candidates:
        return self.of_image(image, embed())

    def of_image(self, image: np.ndarray, embedding: ImageEmbedding) -> Candidates:
        records = self.generator.generate(image, embedding=embedding).records
        h, w = image.shape[:2]
        if not records:
            return empty_candidates(h, w)
        boxes = np.array([r["bbox"] for r in records], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        points = np.array([r["point_coords"] for r in records], np.float64).reshape(len(records), -1, 2)
        return Candidates(masks=np.stack([np.asarray(r["segmentation"], bool) for r in records]), boxes=boxes,
                          quality=np.array([r["predicted_iou"] for r in records], np.float64),
                          prompts=Prompts(points=points, labels=np.ones(points.shape[:2], np.int64)))


class DetectorCandidates:
    """Candidate source: the image's detector boxes scoring at least `min_score`, best first, one SAM
    mask per box."""

    def __init__(self, model: PromptableSegmenter, detections: DetectionIndex, min_score: float) -> None:
        self.model = model
        self.detections = detections
        self.min_score = min_score

    def __call__(self, ctx: RunContext, sample: ImageSample, image: np.ndarray,
                 embed: Callable[[], ImageEmbedding]) -> Candidates:
        h, w = image.shape[:2]
        image_id = coco_image_id(sample, required=False)
        if image_id is None:
            return empty_candidates(h, w)
        xywh, cats, scores = self.detections.for_image(image_id)
        keep = np.flatnonzero(scores >= self.min_score)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        if not len(keep):
            return empty_candidates(h, w)
        boxes = np.concatenate([xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]], axis=1)
        prompts = Prompts(boxes=boxes)
        masks = single_output_masks(self.model, embed(), prompts)  # box prompt: one mask, as Grounded-SAM
        return Candidates(masks=masks, boxes=boxes, quality=scores[keep], prompts=prompts, category_ids=cats[keep])


class ConceptCandidates:
    """Candidate source: a concept segmenter's instances for each asked phrase (all scores, the best
    `per_phrase` kept: the most the text task reads of one phrase), scored by the segmenter."""

    def __init__(self, source: ConceptSegmenter, per_phrase: int) -> None:
        self.source = source
        self.source.min_score = 0.0  # rank every instance; the task picks the best per phrase
        self.per_phrase = per_phrase

    def for_phrases(self, image: np.ndarray, phrases: Sequence[str]) -> Candidates:
        asked = list(dict.fromkeys(phrases))
        found = self.source.segment_concepts(image, asked) if asked else []
        masks, boxes, scores, owners = [], [], [], []
        for phrase, f in zip(asked, found):
            best = np.argsort(-f.scores, kind="stable")[: self.per_phrase]
            masks.append(f.masks[best])
            boxes.append(f.boxes[best])
            scores.append(f.scores[best])
            owners += [phrase] * len(best)
        if not owners:
            return Candidates(np.zeros((0, *image.shape[:2]), bool), np.zeros((0, 4)), np.zeros(0), phrases=[])
        return Candidates(np.concatenate(masks), np.concatenate(boxes), np.concatenate(scores), phrases=owners)


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
