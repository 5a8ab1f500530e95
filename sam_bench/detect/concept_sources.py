"""Sources of concept predictions (image + noun phrases -> scored instance masks) for the `concepts`
task and the text task's concept candidates.

- A text-native model (`sam3`, or `hf` with a Sam3Model directory) is its own source.
- `--detector transformers:DIR`: an open-vocabulary detector's boxes for the phrase (OWLv2, Grounding
  DINO; detect/open_vocab.py), each turned into one mask by the promptable model (a single-mask box
  prompt, as every family's predictor decodes a box); the detector's score is the mask's score. This
  is how SAM 3's paper builds its detector + SAM baselines.
- `--clip-checkpoint PATH`: the promptable model's automatic masks, each classified by CLIP among
  the phrases asked of the image (softmax of CLIP's scaled cosine similarities of the mask crop, the
  text task's crops and templates); a mask's score for a phrase is that probability. It therefore
  depends on which phrases are asked together; with a single phrase every mask scores 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.types import Prompts
from ..errors import ConfigError
from ..models.base import Model, PromptableSegmenter, SegmenterWrapper
from ..models.concepts import ConceptMasks, ConceptSegmenter
from .candidates import AmgCandidates, single_output_masks
from .clip import CATEGORY_TEMPLATES, ClipScorer, load_clip
from .open_vocab import OpenVocabDetector, load_open_vocab_detector


def _empty(image: np.ndarray) -> ConceptMasks:
    return ConceptMasks(np.zeros((0, *image.shape[:2]), bool), np.zeros(0), np.zeros((0, 4)))


class DetectorConcepts(ConceptSegmenter):
    """Open-vocabulary detector boxes -> one mask each from a promptable model; score = detector score."""

    def __init__(self, detector: OpenVocabDetector, segmenter: PromptableSegmenter) -> None:
        self.detector, self.segmenter = detector, segmenter
        self.info = segmenter.info
        self.source_label = f"{detector.label} + {segmenter.info.name}"

    def segment_concepts(self, image: np.ndarray, phrases: Sequence[str]) -> list[ConceptMasks]:
        embedding = None  # encoded once, and only when some phrase has a box
        found = []
        for phrase in phrases:
            boxes, scores = self.detector(image, phrase, self.min_score)
            if not len(boxes):
                found.append(_empty(image))
                continue
            embedding = embedding if embedding is not None else self.segmenter.encode(image)
            masks = single_output_masks(self.segmenter, embedding, Prompts(boxes=boxes))
            found.append(ConceptMasks(masks, scores, boxes))
        return found


@dataclass(frozen=True)
class _Phrase:  # what ClipScorer reads of a query
    phrase: str
    templates: tuple[str, ...] = CATEGORY_TEMPLATES


class ClipConcepts(ConceptSegmenter):
    """Automatic masks of a promptable model, classified by CLIP among the asked phrases."""

    def __init__(self, segmenter: PromptableSegmenter, scorer: ClipScorer, amg: AmgCandidates) -> None:
        self.segmenter, self.scorer, self.amg = segmenter, scorer, amg
        self.info = segmenter.info
        self.source_label = f"{segmenter.info.name} masks + CLIP {scorer.clip.info.get('architecture', '')}".strip()

    @torch.no_grad()
    def segment_concepts(self, image: np.ndarray, phrases: Sequence[str]) -> list[ConceptMasks]:
        if not phrases:
            return []
        cands = self.amg.of_image(image, self.segmenter.encode(image))
        if not len(cands):
            return [_empty(image) for _ in phrases]
        cosine = torch.from_numpy(self.scorer.score(image, cands, [_Phrase(p) for p in phrases]))
        # CLIP's zero-shot classification: softmax over the phrases of its scaled cosine similarities.
        probs = (self.scorer.clip.model.logit_scale.exp().cpu().double() * cosine).softmax(0).numpy()
        found = []
        for row in probs:
            keep = np.flatnonzero(row > self.min_score)
            found.append(ConceptMasks(cands.masks[keep], row[keep], cands.boxes[keep].astype(np.float64)))
        return found


def unwrapped(model: Model) -> Model:
    """The model under the run's wrappers (embedding cache, output checks)."""
    while isinstance(model, SegmenterWrapper):
        model = model.inner
    return model


def build_concept_source(model: Model, detector: str | None, clip_checkpoint: str | None,
                         device: torch.device, clip_model: str = "ViT-L-14-336") -> ConceptSegmenter:
    """The concept source for a run: the model itself when it segments text, else the model composed
    with a detector (`transformers:DIR`) or with CLIP (`clip_checkpoint`)."""
    name = model.info.name
    if detector and clip_checkpoint:
        raise ConfigError("give one concept source: --detector or --clip-checkpoint, not both")
    if detector or clip_checkpoint:
        if not isinstance(model, PromptableSegmenter):
            raise ConfigError(f"model '{name}' cannot turn {'boxes' if detector else 'candidates'} into masks "
                              f"(it is not a promptable segmenter): drop --{'detector' if detector else 'clip-checkpoint'} "
                              f"or use a promptable model (sam, sam2, sam_hq, ...)")
        if detector:
            return DetectorConcepts(load_open_vocab_detector(detector, device), model)
        from ..amg import AmgSettings, AutomaticMaskGenerator

        clip = load_clip(clip_model, clip_checkpoint, device)
        # The text task's defaults: crops 1.5x the mask's box, background zeroed.
        return ClipConcepts(model, ClipScorer(clip, crop_expand=1.5, zero_background=True),
                            AmgCandidates(AutomaticMaskGenerator(model, AmgSettings(output_mode="binary_mask"))))
    inner = unwrapped(model)
    if isinstance(inner, ConceptSegmenter):
        return inner
    raise ConfigError(f"model '{name}' cannot segment noun phrases (it has no text prompt): pass --detector "
                      "transformers:DIR (OWLv2 / Grounding DINO boxes turned into masks) or --clip-checkpoint PATH "
                      "(automatic masks scored by CLIP), or use sam3 / hf with a Sam3Model directory")
