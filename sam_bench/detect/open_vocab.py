"""Open-vocabulary detectors from a local transformers directory (`--detector transformers:DIR`):
image + noun phrase -> scored xyxy boxes, through the model's own processor and post-processing.

One forward per phrase: a query is (image, phrase), so what a phrase finds must not depend on which
other phrases are asked (Grounding DINO attends across a joint prompt; OWLv2's post-processing
keeps each box's best phrase only).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.checkpoint import file_sha256
from ..models.hf import load_hf
from ..errors import ConfigError

# config.json architecture -> (label, whether the processor pads the image to a square at its bottom right)
DETECTORS = {
    "Owlv2ForObjectDetection": ("OWLv2", True),
    "OwlViTForObjectDetection": ("OWL-ViT", False),
    "GroundingDinoForObjectDetection": ("Grounding DINO", False),
}


class OpenVocabDetector:
    def __init__(self, model: torch.nn.Module, processor: Any, class_name: str, device: torch.device,
                 info: dict[str, Any]) -> None:
        self.model, self.processor, self.class_name, self.device = model.to(device).eval(), processor, class_name, device
        self.label, self.pads_to_square = DETECTORS[class_name]
        self.info = info

    @torch.no_grad()
    def __call__(self, image: np.ndarray, phrase: str, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """(K, 4) xyxy boxes in pixels, clipped to the image, and (K,) scores above `min_score`."""
        h, w = image.shape[:2]
        inputs = self.processor(images=image, text=[[phrase]], return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        # OWLv2 predicts in the padded square's frame: its size, not the image's, scales the boxes.
        size = (max(h, w),) * 2 if self.pads_to_square else (h, w)
        kwargs = {"input_ids": inputs["input_ids"]} if self.class_name == "GroundingDinoForObjectDetection" else {}
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=min_score, target_sizes=[size], **kwargs)[0]
        boxes = result["boxes"].float().cpu().numpy().astype(np.float64).reshape(-1, 4)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        return boxes, result["scores"].float().cpu().numpy().astype(np.float64)


def load_open_vocab_detector(spec: str, device: torch.device) -> OpenVocabDetector:
    """`transformers:DIR` (a save_pretrained directory of one of DETECTORS, with its processor)."""
    kind, _, rest = spec.partition(":")
    if kind != "transformers" or not rest:
        raise ConfigError(f"--detector {spec}: expected transformers:DIR (a local OWLv2 / OWL-ViT / Grounding DINO "
                          "save_pretrained directory)")
    path = Path(rest)
    model, processor, class_name = load_hf(path, DETECTORS)
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    info = {"detector": f"transformers:{path.resolve()}", "detector_class": class_name,
            "weights_sha256": file_sha256(weights[0]) if weights else None}
    return OpenVocabDetector(model, processor, class_name, device, info)
