"""The concept capability: given an image and noun phrases, find and segment every instance of each
(SAM 3's promptable concept segmentation), or return none. Sources: SAM 3's own text path,
transformers' Sam3Model, an open-vocabulary detector whose boxes a promptable family turns into
masks, and CLIP-scored SAM candidates (detect/concept_sources.py builds the composed ones)."""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import CheckpointError
from .base import Model


@dataclass
class ConceptMasks:
    """Every instance found for one phrase on one image (K may be 0)."""

    masks: np.ndarray  # (K, H, W) bool at the image's resolution
    scores: np.ndarray  # (K,) float in [0, 1]: the source's confidence
    boxes: np.ndarray  # (K, 4) float x0 y0 x1 y1 in pixels

    def __post_init__(self) -> None:
        k = len(self.scores)
        if self.masks.shape[0] != k or self.boxes.shape != (k, 4):
            raise ValueError(f"concept masks: {self.masks.shape[0]} masks, {k} scores, boxes {self.boxes.shape}")


class ConceptSegmenter(Model):
    """Image + noun phrases -> scored instance masks per phrase."""

    #: What produced the masks, for the report ("SAM 3 (sam3)", "OWLv2 + SAM", ...).
    source_label: str = ""
    #: Instances scoring at or below this are not returned. 0.5: SAM 3's processor default and the
    #: cut of the official cgF1 evaluator; the text task lowers it to rank every candidate.
    min_score: float = 0.5

    @abstractmethod
    def segment_concepts(self, image: np.ndarray, phrases: Sequence[str]) -> list[ConceptMasks]:
        """image: (H, W, 3) uint8 RGB; one ConceptMasks per phrase, in order."""


def concept_masks(masks: torch.Tensor, scores: torch.Tensor, boxes: torch.Tensor) -> ConceptMasks:
    """A source's (K, H, W) masks (bool or 0/1), (K,) scores and (K, 4) xyxy boxes as numpy arrays."""
    return ConceptMasks(masks.bool().cpu().numpy(), scores.float().cpu().numpy().astype(np.float64),
                        boxes.float().cpu().numpy().astype(np.float64).reshape(-1, 4))


def check_finite(tensor: torch.Tensor, what: str, source: str) -> None:
    """NaN scores fall below every threshold, so a broken model would answer "none" everywhere and score
    as a confident no: fail instead."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"{source}: produced NaN or infinite {what}; these weights give no valid predictions")
