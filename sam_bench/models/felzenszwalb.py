"""`felzenszwalb`: a weight-free promptable segmenter and edge detector (Felzenszwalb-Huttenlocher
graph segmentation from scikit-image), the baseline row of the point and edge protocols.

`encode` segments the image at three scales (fine, medium, coarse: subpart, part, whole).
- One click, multimask: the segment containing the click at each scale. Confidence = the
  segment's mean IoU with the segments containing the same click at the other two scales: a region
  that persists across scales is a salient one (the same idea as SAM's stability score).
- Several clicks, single output: each positive click takes its most stable segment among those
  containing no negative click; the union, minus the finest segment of each negative click (when
  that segment holds no positive click).
- A box: at each scale, the union of the segments with at least half their area inside the box.
Its "low-res logits" are +-LOGIT maps at the original size (`upsample` is the identity); a mask
prompt fed back is ignored when clicks or a box are given (the clicks carry all the state).
`detect_edges` averages the three scales' segment boundaries (the edge protocol's Felz-Hutt row).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from skimage.segmentation import felzenszwalb, find_boundaries

from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..registry import MODELS
from .base import EdgeDetector, PromptableSegmenter, weight_free

# (name, scale, min_size) at the working resolution (longest side <= MAX_SIDE); sigma as in the
# original paper's experiments. The scales span the subpart/part/whole levels on BSDS-sized images.
SCALES: tuple[tuple[str, float, int], ...] = (("fine", 100.0, 50), ("medium", 400.0, 200),
                                              ("coarse", 1200.0, 600))
SIGMA = 0.8
MAX_SIDE = 512  # the scale parameter is resolution-dependent: segment at a bounded size
LOGIT = 10.0  # +-LOGIT "logits": sigmoid ~ 1 - 5e-5, and a stability score of 1 at offset 1
BOX_INSIDE = 0.5  # a segment belongs to a box when at least this fraction of it lies inside


@dataclass
class Segmentation:
    """Per-scale label maps at the original size and their cross-scale overlaps."""

    labels: np.ndarray  # (S, H, W) int32, labels of scale s in 0..n_s-1
    areas: list[np.ndarray]  # areas[s][l] = pixels of segment l at scale s
    overlap: dict[tuple[int, int], np.ndarray]  # (s, t) -> (n_s, n_t) intersection counts


class FelzenszwalbSegmenter(PromptableSegmenter, EdgeDetector):
    cache_fingerprint = None  # segmentation is cheap and has no weights: nothing to cache

    def __init__(self, scales: tuple[tuple[str, float, int], ...] = SCALES, sigma: float = SIGMA,
                 max_side: int = MAX_SIDE) -> None:
        self.scales, self.sigma, self.max_side = scales, sigma, max_side
        self.info = ModelInfo("felzenszwalb", untrained=False, details={
            "weights": "none: weight-free graph segmentation (Felzenszwalb & Huttenlocher 2004, scikit-image)",
            "scales": [{"name": n, "scale": s, "min_size": m} for n, s, m in scales],
            "sigma": sigma, "max_side": max_side})

    # -- segmentation ---------------------------------------------------------------------------
    def segment(self, image: np.ndarray) -> Segmentation:
        h, w = image.shape[:2]
        factor = min(1.0, self.max_side / max(h, w))
        work = image if factor == 1.0 else cv2.resize(
            image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
        maps = []
        for _, scale, min_size in self.scales:
            labels = felzenszwalb(work, scale=scale, sigma=self.sigma, min_size=min_size, channel_axis=-1)
            if factor != 1.0:
                labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
                # Nearest-neighbour upscaling can drop tiny segments: renumber densely.
                labels = np.unique(labels, return_inverse=True)[1].reshape(h, w)
            maps.append(labels.astype(np.int32))
        labels = np.stack(maps)
        areas = [np.bincount(m.ravel()) for m in maps]
        overlap = {}
        for s in range(len(maps)):
            for t in range(s + 1, len(maps)):
                n_s, n_t = len(areas[s]), len(areas[t])
                joint = np.bincount((maps[s].astype(np.int64) * n_t + maps[t]).ravel(), minlength=n_s * n_t)
                overlap[(s, t)] = joint.reshape(n_s, n_t)
                overlap[(t, s)] = overlap[(s, t)].T
        return Segmentation(labels, areas, overlap)

    def _segment_iou(self, seg: Segmentation, s: int, a: int, t: int, b: int) -> float:
        inter = float(seg.overlap[(s, t)][a, b])
        return inter / (float(seg.areas[s][a]) + float(seg.areas[t][b]) - inter)

    def _stability(self, seg: Segmentation, ids: list[int]) -> list[float]:
        """Per scale: mean IoU of the click's segment there with its segments at the other scales."""
        n = len(ids)
        return [float(np.mean([self._segment_iou(seg, s, ids[s], t, ids[t]) for t in range(n) if t != s]))
                if n > 1 else 1.0 for s in range(n)]

    # -- PromptableSegmenter --------------------------------------------------------------------
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        size = tuple(image.shape[:2])
        return ImageEmbedding(self.segment(image), size, size)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        seg: Segmentation = embedding.features
        h, w = embedding.original_size
        n_out = len(self.scales) if multimask else 1
        logits = np.full((len(prompts), n_out, h, w), -LOGIT, dtype=np.float32)
        scores = np.zeros((len(prompts), n_out), dtype=np.float32)
        for b in range(len(prompts)):
            pos, neg = self._clicks(prompts, b, h, w)
            box = None if prompts.boxes is None else prompts.boxes[b]
            if not pos and not neg and box is None and prompts.mask_logits is not None:
                prev = (prompts.mask_logits[b, 0] > 0).cpu().numpy()  # a mask prompt alone: returned as is
                masks, conf = [prev] * n_out, [0.5] * n_out
            elif multimask:
                masks, conf = self._per_scale(seg, pos, neg, box)
            else:
                masks, conf = self._single(seg, pos, neg, box)
            for m, (mask, c) in enumerate(zip(masks, conf)):
                logits[b, m][mask] = LOGIT
                scores[b, m] = c
        return Decoded(torch.from_numpy(logits), torch.from_numpy(scores))

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        if tuple(low_res_logits.shape[-2:]) != tuple(embedding.original_size):
            raise ValueError(f"felzenszwalb logits are full resolution {embedding.original_size}; "
                             f"got {tuple(low_res_logits.shape[-2:])}")
        return low_res_logits  # already at the original size

    # -- prompt rules ---------------------------------------------------------------------------
    @staticmethod
    def _clicks(prompts: Prompts, b: int, h: int, w: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        pos, neg = [], []
        if prompts.points is not None:
            for (x, y), label in zip(prompts.points[b], prompts.labels[b]):
                if label < 0:  # SAM's padding points
                    continue
                pixel = (min(max(int(np.floor(y)), 0), h - 1), min(max(int(np.floor(x)), 0), w - 1))
                (pos if label == 1 else neg).append(pixel)
        return pos, neg

    def _box_union(self, seg: Segmentation, s: int, box: np.ndarray) -> np.ndarray:
        labels = seg.labels[s]
        h, w = labels.shape
        x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x1 <= x0 or y1 <= y0:
            return np.zeros_like(labels, dtype=bool)
        inside = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=len(seg.areas[s]))
        chosen = np.flatnonzero(inside >= BOX_INSIDE * seg.areas[s])
        if chosen.size == 0:  # the box lies within one large segment: keep its part inside the box
            centre = labels[(y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2]
            mask = np.zeros_like(labels, dtype=bool)
            mask[y0:y1, x0:x1] = labels[y0:y1, x0:x1] == centre
            return mask
        return np.isin(labels, chosen)

    def _per_scale(self, seg: Segmentation, pos, neg, box) -> tuple[list[np.ndarray], list[float]]:
        """Multimask: the same rule at each scale (one click: the segment containing it)."""
        masks = []
        for s in range(len(self.scales)):
            labels = seg.labels[s]
            mask = self._box_union(seg, s, box) if box is not None else np.zeros(labels.shape, bool)
            ids_pos = {int(labels[p]) for p in pos}
            ids_neg = {int(labels[p]) for p in neg}
            if ids_pos:
                mask |= _select(labels, ids_pos)
            if ids_neg:
                mask &= ~_select(labels, ids_neg)
            masks.append(mask)
        if len(pos) == 1 and not neg and box is None:
            conf = self._stability(seg, [int(seg.labels[s][pos[0]]) for s in range(len(self.scales))])
        else:
            conf = [float(np.mean([_iou(masks[s], masks[t]) for t in range(len(masks)) if t != s]))
                    if len(masks) > 1 else 1.0 for s in range(len(masks))]
        return masks, conf

    def _single(self, seg: Segmentation, pos, neg, box) -> tuple[list[np.ndarray], list[float]]:
        if box is not None:
            masks, conf = self._per_scale(seg, [], [], box)
            best = int(np.argmax(conf))
            mask, confidences = masks[best], [conf[best]]
        else:
            mask, confidences = np.zeros(seg.labels.shape[1:], bool), []
        n = len(self.scales)
        for p in pos:
            ids = [int(seg.labels[s][p]) for s in range(n)]
            stability = self._stability(seg, ids)
            clean = [s for s in range(n) if not any(seg.labels[s][q] == ids[s] for q in neg)]
            s = max(clean, key=lambda k: stability[k]) if clean else 0
            mask |= seg.labels[s] == ids[s]
            confidences.append(stability[s])
        for q in neg:
            fine = seg.labels[0] == seg.labels[0][q]
            if not any(fine[p] for p in pos):
                mask &= ~fine
        return [mask], [float(np.mean(confidences)) if confidences else 0.0]

    # -- EdgeDetector ---------------------------------------------------------------------------
    def detect_edges(self, image: np.ndarray) -> np.ndarray:
        """Segment boundaries averaged over the three scales: 1 where all scales put a boundary."""
        labels = self.segment(image).labels
        edges = np.mean([find_boundaries(m, mode="inner") for m in labels], axis=0)
        return edges.astype(np.float32)


def _select(labels: np.ndarray, ids: set[int]) -> np.ndarray:
    """Pixels whose label is in ids (one comparison for the common single-click case)."""
    return labels == next(iter(ids)) if len(ids) == 1 else np.isin(labels, list(ids))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@MODELS.register("felzenszwalb", help="weight-free multi-scale Felzenszwalb segmentation (clicks, boxes, edges)")
def build_felzenszwalb_model(checkpoint: str | None = None, device: object = None, precision: str = "fp32",
        batch_size: int | None = None, **model_args: str) -> FelzenszwalbSegmenter:
    weight_free("felzenszwalb", checkpoint, model_args)
    return FelzenszwalbSegmenter()
