"""SAM 3's interactive (SAM 1 task) path behind the PromptableSegmenter interface: `sam3 --checkpoint sam3.pt`.

Equal to `Sam3Processor.set_image` + `Sam3Image.predict_inst` per prompt: the processor's square
1008 resize (of the uint8 image) and 0.5 mean/std, the ViT trunk and the interactive ("sam2") neck,
the tracker's SAM heads with its SAM2Transforms. Decoding is the SAM 2 predictor's code path
(sam3 ships a copy: boxes as point labels 2/3, dynamic multimask, +-32 clamp), so the batched
decode is Sam2Segmenter's; what differs is the 72x72 embedding, the 288x288 low-res logits and the
upsample, which fills holes up to 256 low-res pixels before the bilinear resize (max_hole_area of
SAM3InteractiveImagePredictor; both sides call sam3's own SAM2Transforms.postprocess_masks, whose
connected components are skimage.measure.label on a CPU). Because that filling is discontinuous in
the logits, the default decoder batch is one prompt, which is bit-equal to predict_inst; a larger
--batch-size is faster on a GPU but may fill a different hole where a logit sits within rounding of 0.

The same model is a ConceptSegmenter: SAM 3's own text path, `Sam3Processor.set_image` once per
image and `set_text_prompt` per phrase with the processor's own post-processing (presence-weighted
scores above `min_score`, masks resized and cut at 0.5). In sam3 0.1.4 that path stages one small
tensor through Tensor.pin_memory(), which needs CUDA; off CUDA the pinning is skipped (values
unchanged, sam3_build.pinning_skipped_on), so the path runs on the CPU too.

Video: `sam3` is a VideoSegmenter so that a video task does not fall back to the per-frame
baseline, but `open_video` refuses with one line: sam3 0.1.4's tracker (Sam3TrackerPredictor) moves
frames, state and memories with `.cuda()` and `pin_memory()` unconditionally, so it cannot run on a
CPU and could not be checked against the package where this adapter was built. transformers'
Sam3TrackerVideoModel (`hf`) tracks on any device.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.checkpoint import file_sha256, read_state_dict
from ..core.device import autocast
from ..core.types import ImageEmbedding, ModelInfo
from ..errors import CheckpointError, ConfigError
from ..registry import MODELS
from .args import convert_model_args
from .backends import import_backend
from .concepts import ConceptMasks, ConceptSegmenter, check_finite, concept_masks
from .details import model_details
from ..data.video import VideoFrames
from .sam2_model import Sam2Segmenter
from .video import VideoSegmenter, VideoSession


def load_sam3(path: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Sam3Image (with the interactive predictor) for an official-layout checkpoint, any size."""
    from .sam3_build import build_sam3, from_official_layout, infer_architecture

    state = from_official_layout(read_state_dict(path), path)
    arch = infer_architecture(state, path)
    model = build_sam3(arch, device)
    expected = model.state_dict()
    # Buffers are constants the constructors compute (RoPE tables, ...): a checkpoint may omit them.
    missing = sorted(k for k, _ in model.named_parameters() if k not in state)
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or wrong:
        parts = [f"{what} ({len(keys)}): {', '.join(keys[:12])}"
                 for what, keys in (("missing weights", missing), ("wrong shapes", wrong)) if keys]
        raise CheckpointError(f"{path}: not a SAM 3 image model of {arch.name}; " + "; ".join(parts))
    # Like sam3's own loader: keys the image model has no use for (video-only parts) are skipped.
    unexpected = sorted(set(state) - set(expected))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.eval(), {"architecture": arch.to_dict(), "ignored_keys": len(unexpected)}


class Sam3Segmenter(Sam2Segmenter, ConceptSegmenter, VideoSegmenter):
    family = "sam3"
    source_label = "SAM 3 (sam3 text prompt)"

    def __init__(self, sam3: torch.nn.Module, info: ModelInfo, weights_sha256: str, device: torch.device,
                 precision: str = "fp32", batch_size: int | None = None) -> None:
        from sam3.model.sam3_image_processor import Sam3Processor

        predictor = sam3.inst_interactive_predictor
        # One prompt per decoder call by default, as predict_inst: hole filling turns a last-bit
        # difference at the 0 threshold into a jump of 10+ (a pixel joins or splits a small
        # background component), and batched GEMMs round differently from single ones (torch 2.14's
        # CPU Linear already differs at M=16 vs 8 rows), so a batched decode can fill other holes.
        if batch_size is None and predictor._transforms.max_hole_area > 0:
            batch_size = 1
        super().__init__(predictor.model, info, weights_sha256, device, precision, batch_size,
                         transforms=predictor._transforms)
        self.sam3 = sam3.to(device).eval()
        # The processor's image transform (uint8 resize, then 0.5 mean/std); it holds no weights.
        self.image_transform = Sam3Processor(sam3, device=str(device)).transform
        # predict_inst reshapes with the predictor's sizes (288, 144, 72 for 1008 / 14).
        self.feature_sizes = list(predictor._bb_feat_sizes)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        from torchvision.transforms import v2

        # Sam3Processor.set_image (to_image of a PIL image is the same CHW uint8 tensor).
        x = self.image_transform(v2.functional.to_image(image).to(self.device)).unsqueeze(0)
        heads = self.model.sam_mask_decoder
        with autocast(self.device, self.precision):
            out = self.sam3.backbone.forward_image(x)["sam2_backbone_out"]
            out["backbone_fpn"][0] = heads.conv_s0(out["backbone_fpn"][0])
            out["backbone_fpn"][1] = heads.conv_s1(out["backbone_fpn"][1])
        # predict_inst always adds no_mem_embed.
        return self._embedding(out, image, add_no_mem_embed=True)

    @torch.no_grad()
    def segment_concepts(self, image: np.ndarray, phrases: Sequence[str]) -> list[ConceptMasks]:
        from PIL import Image
        from sam3.model.sam3_image_processor import Sam3Processor

        from .sam3_build import pinning_skipped_on

        processor = Sam3Processor(self.sam3, device=str(self.device), confidence_threshold=self.min_score)
        found = []
        with pinning_skipped_on(self.device), autocast(self.device, self.precision):
            state = processor.set_image(Image.fromarray(image))
            check_finite(state["backbone_out"]["vision_features"], "image features", self.info.details.get(
                "checkpoint", "sam3"))
            for phrase in phrases:
                state = processor.set_text_prompt(phrase, state)  # replaces the previous phrase
                found.append(concept_masks(state["masks"][:, 0], state["scores"], state["boxes"]))
        return found

    def open_video(self, frames: VideoFrames) -> VideoSession:
        where = ("this run's device is cpu" if self.device.type != "cuda" else
                 "sam-bench has no adapter for it yet (it could not be checked against sam3 without CUDA)")
        raise ConfigError(f"model 'sam3' cannot track video: sam3's tracker (Sam3TrackerPredictor) needs CUDA "
                          f"(.cuda() and pin_memory() in sam3/model/sam3_tracking_predictor.py) and {where}; "
                          f"for SAM 3 tracking use --model hf with a Sam3TrackerVideoModel save_pretrained directory")


@MODELS.register("sam3", help="SAM 3 interactive path (predict_inst) from sam3.pt or a checkpoint in its layout "
                              "(package sam3); size read from the weights")
def build_sam3_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                     precision: str = "fp32", batch_size: int | None = None, **model_args: object) -> Sam3Segmenter:
    convert_model_args("sam3", model_args, {})
    if not checkpoint:
        raise ConfigError("model 'sam3' needs --checkpoint PATH (sam3.pt)")
    import_backend("sam3")
    model, details = load_sam3(checkpoint, device)
    sha = file_sha256(Path(checkpoint))
    info = ModelInfo("sam3", untrained=False, details=model_details(
        "sam3", details["architecture"]["name"], model, str(checkpoint), sha, **details))
    return Sam3Segmenter(model, info, sha, device, precision, batch_size)
