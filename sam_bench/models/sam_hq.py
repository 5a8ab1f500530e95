"""HQ-SAM (`segment-anything-hq`) behind the PromptableSegmenter interface: `sam_hq`.

Same preprocessing and prompt encoding as SAM 1 (the shared SamSegmenter harness); the encoder
also returns its early global-attention features, which HQ-SAM's decoder fuses into the HQ
token's mask. Like the official SamPredictor, multimask output returns ONE mask per prompt (the
best of SAM tokens 1-3 by predicted IoU, plus the HQ mask), so there is no best-of-3 oracle.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoint import build_sam, file_sha256, infer_architecture, load_exact, read_state_dict
from ..core.types import ModelInfo
from ..errors import ConfigError
from ..registry import MODELS
from .backends import declare_backend, import_backend
from .details import model_details
from .args import convert_model_args, to_bool
from .sam import SamSegmenter

declare_backend("sam_hq", "segment_anything_hq", "segment-anything-hq and timm", "hq", needs=("timm",))


class SamHQSegmenter(SamSegmenter):
    """SamSegmenter whose encoder also keeps HQ-SAM's intermediate map for the HQ decoder."""

    family = "sam_hq"
    masks_per_multimask_output = 1

    def __init__(self, sam: torch.nn.Module, info: ModelInfo, weights_sha256: str, device: torch.device,
                 precision: str = "fp32", batch_size: int | None = None, hq_token_only: bool = False) -> None:
        super().__init__(sam, info, weights_sha256, device, precision, batch_size)
        # Only the decoder depends on hq_token_only, so it stays out of the cache fingerprint.
        self.hq_token_only = hq_token_only

    def _encoder_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        embed, interm = self.model.image_encoder(x)
        # The HQ decoder reads only the first intermediate map (after the first global block).
        return {"image_embed": embed, "interm": interm[0]}

    def _mask_decoder(self, features: dict[str, torch.Tensor], sparse: torch.Tensor, dense: torch.Tensor,
                      multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.mask_decoder(
            image_embeddings=features["image_embed"],
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            hq_token_only=self.hq_token_only,
            interm_embeddings=[features["interm"]],
        )


def load_sam_hq(path: str | Path) -> tuple[torch.nn.Module, str]:
    """Official-layout HQ-SAM checkpoint -> (segment_anything_hq Sam, size name). ViT sizes are
    read from the weights as for SAM 1; a TinyViT encoder is Light HQ-SAM (vit_tiny)."""
    hq = import_backend("sam_hq")
    modeling = import_backend("sam_hq", "segment_anything_hq.modeling")
    state = read_state_dict(path)
    if any(k.startswith("image_encoder.layers.") for k in state):
        sam, size = hq.sam_model_registry["vit_tiny"](), "vit_tiny"
    else:
        arch = infer_architecture(state, source=str(path))
        sam = build_sam(arch, modeling, "MaskDecoderHQ", vit_dim=arch.encoder_embed_dim)
        size = arch.name
    load_exact(sam, state, path, f"the official HQ-SAM layout for {size}")
    return sam.eval(), size


@MODELS.register("sam_hq", help="HQ-SAM from sam_hq_vit_{b,l,h,tiny}.pth (--checkpoint; size from the weights; "
                                "--model-args hq_token_only=true); multimask gives 1 mask")
def build_sam_hq_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                       precision: str = "fp32", batch_size: int | None = None,
                       **model_args: str) -> SamHQSegmenter:
    hq_token_only = convert_model_args("sam_hq", model_args, {"hq_token_only": (to_bool, False)})["hq_token_only"]
    if not checkpoint:
        raise ConfigError("model 'sam_hq' needs --checkpoint PATH (e.g. sam_hq_vit_h.pth)")
    sam, size = load_sam_hq(checkpoint)
    sha = file_sha256(Path(checkpoint))
    info = ModelInfo("sam_hq", untrained=False, details=model_details(
        "HQ-SAM", size, sam, str(checkpoint), sha, hq_token_only=hq_token_only))
    return SamHQSegmenter(sam, info, sha, device, precision, batch_size, hq_token_only=hq_token_only)
