"""MobileSAM (`mobilesam-mirror`, import `mobile_sam`) behind the PromptableSegmenter interface.

A TinyViT encoder distilled from SAM's ViT-H with SAM 1's prompt encoder, decoder, preprocessing
and predictor, so the shared SamSegmenter harness runs MobileSAM's own modules unchanged.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoint import file_sha256, load_exact, read_state_dict
from ..core.types import ModelInfo
from ..errors import ConfigError
from ..registry import MODELS
from .backends import declare_backend, import_backend
from .details import model_details
from .args import convert_model_args
from .sam import SamSegmenter

declare_backend("mobile_sam", "mobile_sam", "mobilesam-mirror and timm", "mobile", needs=("timm",))


class MobileSamSegmenter(SamSegmenter):
    """SamSegmenter over mobile_sam's own Sam (TinyViT encoder); nothing else differs."""

    family = "mobile_sam"


def load_mobile_sam(path: str | Path) -> torch.nn.Module:
    """mobile_sam.pt (plain state dict) -> mobile_sam's own vit_t Sam."""
    mobile = import_backend("mobile_sam")
    state = read_state_dict(path)
    sam = mobile.sam_model_registry["vit_t"]()
    load_exact(sam, state, path, "the official MobileSAM (vit_t) layout")
    return sam.eval()


@MODELS.register("mobile_sam", help="MobileSAM (TinyViT vit_t + SAM decoder) from mobile_sam.pt (--checkpoint)")
def build_mobile_sam_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                           precision: str = "fp32", batch_size: int | None = None,
                           **model_args: str) -> MobileSamSegmenter:
    convert_model_args("mobile_sam", model_args, {})
    if not checkpoint:
        raise ConfigError("model 'mobile_sam' needs --checkpoint PATH (e.g. mobile_sam.pt)")
    sam = load_mobile_sam(checkpoint)
    sha = file_sha256(Path(checkpoint))
    info = ModelInfo("mobile_sam", untrained=False, details=model_details("MobileSAM", "vit_t", sam, str(checkpoint), sha))
    return MobileSamSegmenter(sam, info, sha, device, precision, batch_size)
