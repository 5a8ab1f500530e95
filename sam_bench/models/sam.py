"""SAM behind the PromptableSegmenter interface: `sam` (a checkpoint) and `tiny` (seeded, random).

The forward pass is the official `segment_anything` modules; this file is only the harness around
them (preprocessing identical to SamPredictor, batching, chunking, precision).
"""
from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from ..core.checkpoint import (
    SamArchitecture,
    build_sam,
    load_sam_checkpoint,
    state_dict_sha256,
)
from ..core.device import autocast
from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..errors import ConfigError
from ..registry import MODELS
from .base import PromptableSegmenter
from .details import model_details

def default_batch_size(device: torch.device) -> int:
    """Prompts per decoder call. On CPU the decoder's per-prompt (256, 64, 64) intermediates stop
    fitting in cache beyond a few prompts (measured: 46 ms/prompt at 4, 80 ms at 8-64); GPUs want
    large batches."""
    return 4 if device.type == "cpu" else 64


TINY_ARCHITECTURE = SamArchitecture(
    encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,),
    encoder_mlp_ratio=4.0, window_size=14, image_size=1024, decoder_depth=2, decoder_mlp_dim=2048,
)


class SamSegmenter(PromptableSegmenter):
    """SAM-1-style predictor harness; SAM-1-like families (HQ-SAM, MobileSAM) pass their own
    official model object and, where their encoder or decoder signature differs, override
    `_encoder_features` / `_mask_decoder`."""

    family = "sam"

    def __init__(self, sam: Sam, info: ModelInfo, weights_sha256: str, device: torch.device,
                 precision: str = "fp32", batch_size: int | None = None) -> None:
        self.model = sam.to(device).eval()
        self.info = info
        self.device = device
        self.precision = precision
        self.batch_size = batch_size or default_batch_size(device)
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        # Preprocessing is part of the identity: same weights with another input size differ.
        self.cache_fingerprint = (f"{self.family}|{weights_sha256}|resize{sam.image_encoder.img_size}"
                                  f"|pil-bilinear|{precision}")

    def _encoder_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_embed": self.model.image_encoder(x)}

    def _mask_decoder(self, features: dict[str, torch.Tensor], sparse: torch.Tensor, dense: torch.Tensor,
                      multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.mask_decoder(
            image_embeddings=features["image_embed"],
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        # Same steps as SamPredictor.set_image, so embeddings match the reference bit for bit.
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        with autocast(self.device, self.precision):
            features = self._encoder_features(self.model.preprocess(x))
        # Contiguous: a cached copy comes back contiguous, and kernels on another memory layout
        # round differently (HQ-SAM's intermediate map is a channels-last view).
        return ImageEmbedding({k: v.float().contiguous() for k, v in features.items()}, tuple(image.shape[:2]),
                              tuple(x.shape[-2:]))

    @torch.no_grad()
    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        logits, ious = [], []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts.select(slice(start, start + self.batch_size))
            low, iou = self._decode_chunk(embedding, chunk, multimask)
            logits.append(low)
            ious.append(iou)
        return Decoded(torch.cat(logits), torch.cat(ious))

    def _decode_chunk(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool):
        points = boxes = masks = None
        if prompts.points is not None:
            coords = self.transform.apply_coords(prompts.points, embedding.original_size)
            points = (torch.as_tensor(coords, dtype=torch.float, device=self.device),
                      torch.as_tensor(prompts.labels, dtype=torch.int, device=self.device))
        if prompts.boxes is not None:
            boxes = torch.as_tensor(self.transform.apply_boxes(prompts.boxes, embedding.original_size),
                                    dtype=torch.float, device=self.device)
        if prompts.mask_logits is not None:
            masks = prompts.mask_logits.to(self.device, torch.float)
        features = {k: v.to(self.device) for k, v in embedding.features.items()}
        with autocast(self.device, self.precision):
            sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low_res, iou = self._mask_decoder(features, sparse, dense, multimask)
        return low_res.float(), iou.float()

    @torch.no_grad()
    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.model.postprocess_masks(low_res_logits.to(self.device), embedding.input_size,
                                            embedding.original_size)


def make_tiny_sam(seed: int = 0) -> Sam:
    """A random SAM in the official layout, small enough to encode an image in well under a second."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build_sam(TINY_ARCHITECTURE)
    finally:
        torch.random.set_rng_state(generator_state)


@MODELS.register("sam", help="SAM from an official-layout checkpoint (--checkpoint); size inferred from the weights")
def build_sam_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                    precision: str = "fp32", batch_size: int | None = None, **model_args: str) -> SamSegmenter:
    if model_args:
        raise ConfigError(f"model 'sam' takes no --model-args (the architecture is read from the weights); "
                          f"got {sorted(model_args)}")
    if not checkpoint:
        raise ConfigError("model 'sam' needs --checkpoint PATH (e.g. sam_vit_h_4b8939.pth)")
    loaded = load_sam_checkpoint(checkpoint)
    info = ModelInfo("sam", untrained=False, details=model_details(
        "SAM", loaded.architecture.name, loaded.model, loaded.path, loaded.sha256,
        architecture=loaded.architecture.to_dict()))
    return SamSegmenter(loaded.model, info, loaded.sha256, device, precision, batch_size)


@MODELS.register("tiny", help="seeded random SAM in the official layout (tests and demo; untrained)")
def build_tiny_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                     precision: str = "fp32", batch_size: int | None = None, seed: int | str = 0,
                     **model_args: str) -> SamSegmenter:
    if checkpoint:
        raise ConfigError(f"model 'tiny' builds its own seeded random weights and takes no --checkpoint; "
                          f"got {checkpoint} (use --model sam)")
    if model_args:
        raise ConfigError(f"model 'tiny' takes only --model-args seed=N; got {sorted(model_args)}")
    try:
        seed = int(seed)
    except ValueError:
        raise ConfigError(f"model 'tiny': --model-args seed must be an integer, got {seed!r}") from None
    sam = make_tiny_sam(seed)
    sha = state_dict_sha256(sam.state_dict())
    info = ModelInfo("tiny", untrained=True, details={
        "seed": seed, "weights_sha256": sha, "architecture": TINY_ARCHITECTURE.to_dict()})
    return SamSegmenter(sam, info, sha, device, precision, batch_size)
