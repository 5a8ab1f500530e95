"""transformers' SAM 3 concept model (`Sam3Model` + `Sam3Processor`) as a ConceptSegmenter: `hf` with a
save_pretrained directory whose config names Sam3Model.

The documented path, with the image encoded once per image as its docs show for many prompts:
`processor(images=...)` -> `get_vision_features`; per phrase `processor(text=...)` ->
`model(vision_embeds=..., input_ids=..., attention_mask=...)` ->
`processor.post_process_instance_segmentation` (presence-weighted scores above `min_score`, masks
resized to the image and cut at 0.5).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.device import autocast
from ..core.types import ModelInfo
from .concepts import ConceptMasks, ConceptSegmenter, check_finite, concept_masks

MASK_THRESHOLD = 0.5  # the processor's default (mask probability), as SAM 3's own processor cuts


class HFConceptSegmenter(ConceptSegmenter):
    source_label = "SAM 3 (transformers Sam3Model)"

    def __init__(self, model: torch.nn.Module, processor, info: ModelInfo, device: torch.device,
                 precision: str = "fp32") -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.info = info
        self.device = device
        self.precision = precision

    @torch.no_grad()
    def segment_concepts(self, image: np.ndarray, phrases: Sequence[str]) -> list[ConceptMasks]:
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with autocast(self.device, self.precision):
            vision = self.model.get_vision_features(pixel_values=inputs["pixel_values"])
        found = []
        for phrase in phrases:
            text = self.processor(text=phrase, return_tensors="pt").to(self.device)
            with autocast(self.device, self.precision):
                outputs = self.model(vision_embeds=vision, input_ids=text["input_ids"],
                                     attention_mask=text["attention_mask"])
            check_finite(outputs.pred_logits, "concept scores", self.info.details.get("checkpoint", "hf"))
            result = self.processor.post_process_instance_segmentation(
                outputs, threshold=self.min_score, mask_threshold=MASK_THRESHOLD,
                target_sizes=[tuple(image.shape[:2])])[0]
            found.append(concept_masks(result["masks"], result["scores"], result["boxes"]))
        return found
