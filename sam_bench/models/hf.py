"""Hugging Face transformers SAM-family models behind the PromptableSegmenter interface: `hf`.

--checkpoint is a local `save_pretrained` directory (model + processor) of SamModel, SamHQModel,
Sam2Model or Sam3TrackerModel, or of SAM 3's concept model Sam3Model (then a ConceptSegmenter:
models/hf_concepts.py); the class is read from its config.json and nothing is fetched from
the hub. Each step is the family's own transformers code: the processor preprocesses the image
and rescales prompt coordinates, `get_image_embeddings` encodes, the model's forward decodes,
`processor.post_process_masks` upsamples. Prompts are batched on the model's point-batch axis, or,
when they carry mask inputs, on its image-batch axis with the embedding expanded (not copied):
the point-batch axis cannot carry one mask input per prompt (the dense embedding is added to the
image embedding before that axis is expanded).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.checkpoint import file_sha256
from ..core.device import autocast
from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..errors import CheckpointError, ConfigError
from ..registry import MODELS
from .backends import declare_backend, import_backend
from .base import PromptableSegmenter
from .details import model_details
from .hf_concepts import HFConceptSegmenter
from .args import convert_model_args, to_bool
from .hf_video import VIDEO_FAMILIES, HFVideoSegmenter
from .sam import default_batch_size

declare_backend("hf", "transformers", "transformers", "hf")


@dataclass(frozen=True)
class HFFamily:
    """How one transformers model class differs from the others."""

    family: str
    square_resize: bool  # SAM 2 / SAM 3: resized to a square; SAM 1 / HQ: longest side + padding
    embedding_list: bool  # get_image_embeddings returns a list of feature levels (SAM 2 / SAM 3)


FAMILIES = {
    "SamModel": HFFamily("SAM (transformers)", square_resize=False, embedding_list=False),
    "SamHQModel": HFFamily("HQ-SAM (transformers)", square_resize=False, embedding_list=False),
    "Sam2Model": HFFamily("SAM 2 (transformers)", square_resize=True, embedding_list=True),
    "Sam3TrackerModel": HFFamily("SAM 3 tracker (transformers)", square_resize=True, embedding_list=True),
}
# Text-prompted (concept) models: image + noun phrase -> instances (models/hf_concepts.py).
CONCEPT_FAMILIES = {"Sam3Model": "SAM 3 concepts (transformers)"}


class HFSegmenter(PromptableSegmenter):
    """One transformers SAM-family model and its processor, used exactly as documented there."""

    def __init__(self, model: torch.nn.Module, processor, class_name: str, info: ModelInfo, fingerprint: str,
                 device: torch.device, precision: str = "fp32", batch_size: int | None = None,
                 hq_token_only: bool = False) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.class_name = class_name
        self.spec = FAMILIES[class_name]
        self.info = info
        self.device = device
        self.precision = precision
        self.batch_size = batch_size or default_batch_size(device)
        self.hq_token_only = hq_token_only
        self.cache_fingerprint = f"hf|{class_name}|{fingerprint}|{precision}"

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        inputs = self.processor(images=image, return_tensors="pt")
        with autocast(self.device, self.precision):
            out = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
        if self.class_name == "SamHQModel":
            embed, interm = out
            # The HQ decoder reads only the first intermediate map (after the first global block).
            features = {"image_embed": embed, "interm": interm[0]}
        elif self.spec.embedding_list:
            features = {f"level{i}": level for i, level in enumerate(out)}
        else:
            features = {"image_embed": out}
        original = tuple(int(v) for v in inputs["original_sizes"][0])
        reshaped = (tuple(int(v) for v in inputs["reshaped_input_sizes"][0]) if "reshaped_input_sizes" in inputs
                    else tuple(inputs["pixel_values"].shape[-2:]))
        # Contiguous, as a cached copy comes back (kernels on another memory layout round differently).
        return ImageEmbedding({k: v.float().contiguous() for k, v in features.items()}, original, reshaped)

    def _coords(self, coords: np.ndarray, original_size: tuple[int, int], box: bool) -> torch.Tensor:
        """The processor's own rescaling of original-image coordinates to the model's input frame."""
        given = torch.as_tensor(coords, dtype=torch.float32) if self.spec.square_resize else coords
        out = self.processor._normalize_coordinates(self.processor.target_size, given, original_size,
                                                    is_bounding_box=box)
        return torch.as_tensor(out).reshape(coords.shape).to(self.device)

    def _image_inputs(self, features: dict[str, torch.Tensor], batch: int) -> dict:
        def expand(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.device).expand(batch, *t.shape[1:])

        if self.class_name == "SamHQModel":
            return {"image_embeddings": expand(features["image_embed"]),
                    "intermediate_embeddings": [expand(features["interm"])], "hq_token_only": self.hq_token_only}
        if self.spec.embedding_list:
            return {"image_embeddings": [expand(features[f"level{i}"]) for i in range(len(features))]}
        return {"image_embeddings": expand(features["image_embed"])}

    @torch.no_grad()
    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        logits, ious = [], []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts.select(slice(start, start + self.batch_size))
            # Prompts go on the point-batch axis (image-level work done once) unless they carry
            # mask inputs, which only the image-batch axis keeps apart.
            on_points = chunk.mask_logits is None
            kwargs = self._image_inputs(embedding.features, 1 if on_points else len(chunk))

            def axis(t: torch.Tensor) -> torch.Tensor:
                return t[None] if on_points else t[:, None]

            if chunk.points is not None:
                kwargs["input_points"] = axis(self._coords(chunk.points, embedding.original_size, False))
                kwargs["input_labels"] = axis(torch.as_tensor(chunk.labels, device=self.device))
            if chunk.boxes is not None:
                kwargs["input_boxes"] = axis(self._coords(chunk.boxes, embedding.original_size, True))
            if chunk.mask_logits is not None:
                kwargs["input_masks"] = chunk.mask_logits.to(self.device)
            with autocast(self.device, self.precision):
                out = self.model(multimask_output=multimask, **kwargs)
            masks, scores = (out.pred_masks[0], out.iou_scores[0]) if on_points else \
                (out.pred_masks[:, 0], out.iou_scores[:, 0])
            logits.append(masks.float())
            ious.append(scores.float())
        return Decoded(torch.cat(logits), torch.cat(ious))

    @torch.no_grad()
    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        sizes = {"original_sizes": [list(embedding.original_size)]}
        if not self.spec.square_resize:
            sizes["reshaped_input_sizes"] = [list(embedding.input_size)]
        return self.processor.post_process_masks([low_res_logits.to(self.device)], binarize=False, **sizes)[0]


def _weights_sha256(directory: Path) -> str:
    """One hash over the weight files of a save_pretrained directory (sharded or not)."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not files:
        raise CheckpointError(f"{directory}: no weight files (*.safetensors / *.bin) in the save_pretrained directory")
    if len(files) == 1:
        return file_sha256(files[0])
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.name}|{file_sha256(p)}".encode())
    return digest.hexdigest()


def load_hf(directory: str | Path, accepted: Sequence[str] = ()) -> tuple[torch.nn.Module, object, str]:
    """Local save_pretrained directory -> (model, processor, class name); never touches the hub.
    `accepted`: the model classes the caller takes (default: every family of model 'hf')."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not found (model 'hf' needs a local save_pretrained directory)")
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json; not a transformers save_pretrained directory")
    try:
        architectures = json.loads(config_path.read_text()).get("architectures") or []
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    known = list(accepted) or [*FAMILIES, *VIDEO_FAMILIES, *CONCEPT_FAMILIES]
    class_name = next((a for a in architectures if a in known), None)
    if class_name is None:
        raise CheckpointError(f"{config_path}: architectures {architectures} has none of {', '.join(known)}")
    transformers = import_backend("hf")
    transformers.utils.logging.disable_progress_bar()  # per-tensor loading bars flood run logs
    try:
        model = getattr(transformers, class_name).from_pretrained(directory, local_files_only=True)
        processor = transformers.AutoProcessor.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{directory}: cannot load {class_name} and its processor "
                              f"(save both with save_pretrained): {first}") from None
    return model.eval(), processor, class_name


def _size_name(model: torch.nn.Module) -> str:
    vision = getattr(model.config, "vision_config", None)
    if vision is None:
        return "?"
    backbone = getattr(vision, "backbone_config", None)  # SAM 2 / SAM 3: Hiera / ViT backbones
    cfg = backbone or vision
    width = getattr(cfg, "hidden_size", None) or getattr(cfg, "embed_dim", None)
    depth = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "blocks_per_stage", None)
    return f"{cfg.model_type} width {width} depth {depth}"


@MODELS.register("hf", help="transformers SamModel / SamHQModel / Sam2Model / Sam3TrackerModel (images), "
                            "Sam2VideoModel / Sam3TrackerVideoModel (video) or the SAM 3 concept model Sam3Model "
                            "from a local save_pretrained directory (--checkpoint DIR; --model-args hq_token_only=true)")
def build_hf_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                   precision: str = "fp32", batch_size: int | None = None,
                   **model_args: str) -> HFSegmenter | HFVideoSegmenter | HFConceptSegmenter:
    hq_token_only = convert_model_args("hf", model_args, {"hq_token_only": (to_bool, False)})["hq_token_only"]
    if not checkpoint:
        raise ConfigError("model 'hf' needs --checkpoint DIR (a local save_pretrained directory)")
    model, processor, class_name = load_hf(checkpoint)
    if hq_token_only and class_name != "SamHQModel":
        raise ConfigError(f"model 'hf': hq_token_only applies to SamHQModel only, {checkpoint} is {class_name}")
    sha = _weights_sha256(Path(checkpoint))
    family = VIDEO_FAMILIES.get(class_name) or CONCEPT_FAMILIES.get(class_name) or FAMILIES[class_name].family
    info = ModelInfo("hf", untrained=False, details=model_details(
        family, _size_name(model), model, str(checkpoint), sha, model_class=class_name))
    if class_name in VIDEO_FAMILIES:
        return HFVideoSegmenter(model, processor, info, device, precision)
    if class_name in CONCEPT_FAMILIES:
        return HFConceptSegmenter(model, processor, info, device, precision)
    # Preprocessing is part of the embedding's identity: the processor's settings join the weights hash.
    preprocessing = hashlib.sha256(processor.image_processor.to_json_string().encode()).hexdigest()[:16]
    return HFSegmenter(model, processor, class_name, info, f"{sha}|{preprocessing}", device, precision,
                       batch_size, hq_token_only=hq_token_only)
