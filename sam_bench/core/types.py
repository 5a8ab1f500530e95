"""Typed values passed between the stages: image -> embedding -> prompts -> decoded masks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch


@dataclass
class ImageEmbedding:
    """What a segmenter computes once per image and reuses for every prompt on it."""

    # dict[str, Tensor] for every cacheable segmenter (SAM: {"image_embed": (1, 256, 64, 64)});
    # weight-free models without a cache fingerprint may keep anything here.
    features: Any
    original_size: tuple[int, int]  # (H, W) of the image as loaded
    input_size: tuple[int, int]  # (H, W) after the model's resize, before padding
    meta: dict[str, Any] = field(default_factory=dict)  # small JSON-able values a family needs


@dataclass
class Prompts:
    """A homogeneous batch of B prompts for one image, in original-image pixel coordinates.

    Homogeneous means every prompt has the same number of points and either all or none have a
    box or a mask input; that is what lets the decoder run them in one call with results identical
    to one call per prompt (padding with label -1 points would change SAM's output).
    """

    points: Optional[np.ndarray] = None  # (B, N, 2) float, (x, y)
    labels: Optional[np.ndarray] = None  # (B, N) int: 1 foreground, 0 background
    boxes: Optional[np.ndarray] = None  # (B, 4) float, x0 y0 x1 y1
    mask_logits: Optional[torch.Tensor] = None  # (B, 1, h, w) previous low-res logits

    def __post_init__(self) -> None:
        sizes = {len(x) for x in (self.points, self.boxes, self.mask_logits) if x is not None}
        if (self.points is None) != (self.labels is None):
            raise ValueError("points and labels must be given together")
        if len(sizes) != 1:
            raise ValueError(f"prompts need at least one of points/boxes/masks, all of one batch size; got sizes {sizes}")
        if self.points is not None:
            self.points = np.asarray(self.points, dtype=np.float64)
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.points.ndim != 3 or self.points.shape[-1] != 2 or self.labels.shape != self.points.shape[:2]:
                raise ValueError(f"points must be (B, N, 2) and labels (B, N); got {self.points.shape}, {self.labels.shape}")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.mask_logits is not None:
            self.mask_logits = torch.as_tensor(self.mask_logits, dtype=torch.float32)
            if self.mask_logits.ndim == 3:
                self.mask_logits = self.mask_logits[:, None]

    def __len__(self) -> int:
        for x in (self.points, self.boxes, self.mask_logits):
            if x is not None:
                return len(x)
        return 0

    def select(self, index: slice | np.ndarray | list[int]) -> "Prompts":
        def pick(x):
            if x is None:
                return None
            if isinstance(x, torch.Tensor) and not isinstance(index, slice):
                return x[torch.as_tensor(np.asarray(index), dtype=torch.long, device=x.device)]
            return x[index]

        return Prompts(pick(self.points), pick(self.labels), pick(self.boxes), pick(self.mask_logits))


@dataclass
class Decoded:
    """Decoder output for a batch of B prompts: M masks each (3 with multimask, else 1)."""

    low_res_logits: torch.Tensor  # (B, M, h, w) float32; 256x256 for SAM
    iou_predictions: torch.Tensor  # (B, M) float32

    def select_masks(self, choice: torch.Tensor | np.ndarray) -> "Decoded":
        """Keep one mask per prompt: choice[b] is the index in 0..M-1."""
        idx = torch.as_tensor(np.asarray(choice), dtype=torch.long, device=self.low_res_logits.device)
        rows = torch.arange(len(idx), device=idx.device)
        return Decoded(self.low_res_logits[rows, idx][:, None], self.iou_predictions[rows, idx][:, None])


@dataclass
class ModelInfo:
    """What the run metadata and the report say about a model."""

    name: str
    untrained: bool
    details: dict = field(default_factory=dict)
    qualifier: str = ""  # what the results are besides the model's own, e.g. "per-frame baseline"

    @property
    def label(self) -> str:
        notes = ", ".join(n for n in ("untrained" if self.untrained else "", self.qualifier) if n)
        return f"{self.name} ({notes})" if notes else self.name
