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
from .args import convert_model_args
from .details import model_details
from .sam_fast_decoder import FastMaskDecoder, ImageSide, supports

DECODERS = ("fast", "official")


def default_batch_size(device: torch.device) -> int:
    """Prompts per decoder call. On CPU each prompt carries (4096, 256) image-token intermediates
    (4 MB in fp32), so a few prompts fill the 32 MB L3 cache and larger batches run from memory.
    Measured with the fast path, image side included (benchmarks/decoder.py --sweep, 2 cores, ms
    per prompt at batch 1/2/4/8): with mask input (the point task's clicks 2..N) eager
    38.7/39.0/39.4/51.5, compiled 24.4/21.4/24.8/28.2; without (first clicks, AMG) eager
    59.0/42.9/43.1/55.4, compiled 35.5/30.9/24.7/29.2. GPUs want large batches."""
    return 2 if device.type == "cpu" else 64


TINY_ARCHITECTURE = SamArchitecture(
    encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,),
    encoder_mlp_ratio=4.0, window_size=14, image_size=1024, decoder_depth=2, decoder_mlp_dim=2048,
)


class SamSegmenter(PromptableSegmenter):
    """SAM-1-style predictor harness; SAM-1-like families (HQ-SAM, MobileSAM) pass their own
    official model object and, where their encoder or decoder signature differs, override
    `_encoder_features` / `_mask_decoder`.

    decoder="fast" (default) runs the official mask decoder's modules in the call order of
    sam_fast_decoder.py (equal within float rounding, measured faster); "official" calls
    `_mask_decoder`. The fast path is taken only when the decoder is exactly segment_anything's
    MaskDecoder and `_mask_decoder` is not overridden (HQ-SAM's decoder keeps its own call)."""

    family = "sam"

    def __init__(self, sam: Sam, info: ModelInfo, weights_sha256: str, device: torch.device,
                 precision: str = "fp32", batch_size: int | None = None, decoder: str = "fast") -> None:
        if decoder not in DECODERS:
            raise ConfigError(f"decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
        self.model = sam.to(device).eval()
        self.info = info
        self.device = device
        self.precision = precision
        self.batch_size = batch_size or default_batch_size(device)
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self.fast: FastMaskDecoder | None = None
        own_call = type(self)._mask_decoder is SamSegmenter._mask_decoder
        if decoder == "fast" and own_call and supports(sam.mask_decoder):
            with torch.no_grad():
                self.fast = FastMaskDecoder(sam.mask_decoder, sam.prompt_encoder.get_dense_pe())
        self.info.details["decoder"] = "fast" if self.fast is not None else "official"
        self.compiled = False
        self._preloaded: dict[int, tuple[np.ndarray, torch.Tensor | ImageEmbedding]] = {}
        self._fast_forward = None if self.fast is None else self.fast.forward
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

    def enable_compile(self) -> None:
        """torch.compile the image encoder and the mask decoder (once per process; recorded in the
        model's details, hence in run.json and the run identity). Decoder chunks of more than one
        prompt are padded to the batch size and the prompt-token count is marked dynamic, so new
        images and click counts do not recompile."""
        if self.compiled:
            return
        # Instance attributes shadow the methods, so subclasses' overrides are what gets compiled.
        self._encoder_features = torch.compile(self._encoder_features, dynamic=False)
        self._mask_decoder = torch.compile(self._mask_decoder)
        if self.fast is not None:
            self._fast_forward = torch.compile(self.fast.forward)
            # Up to 16 decoder graphs (see _run_fast) per precision, and dynamo counts them per
            # code object, across segmenters: past its default limit of 8 it would silently run
            # the rest eager (measured on PPDLS: fp32 and bf16 in one process hit it).
            config = torch._dynamo.config
            name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
            setattr(config, name, max(getattr(config, name), 64))
        self.compiled = True
        self.info.details["compiled"] = True

    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """SamPredictor.set_image's resize, as a (3, h, w) uint8 tensor on the CPU."""
        return torch.as_tensor(self.transform.apply_image(image)).permute(2, 0, 1).contiguous()

    def preload(self, image: np.ndarray, item: torch.Tensor | ImageEmbedding) -> None:
        """Hand over `prepare_image(image)` or an `encode_many` embedding for the next
        `encode(image)` of this very array (sam_bench/engine/prefetch.py)."""
        self._preloaded[id(image)] = (image, item)

    def clear_preloaded(self) -> None:
        """Drop what `preload` handed over and `encode` did not use (e.g. embedding cache hits)."""
        self._preloaded.clear()

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        # Same steps as SamPredictor.set_image, so embeddings match the reference bit for bit.
        image_ref, item = self._preloaded.pop(id(image), (None, None))
        if image_ref is not image:
            item = None
        if isinstance(item, ImageEmbedding):
            return item
        return self.encode_many([image], [item if item is not None else self.prepare_image(image)])[0]

    @torch.no_grad()
    def encode_many(self, images: list[np.ndarray], prepared: list[torch.Tensor]) -> list[ImageEmbedding]:
        """One encoder call for all images (each normalised and padded to the encoder's square)."""
        x = torch.cat([self.model.preprocess(p.to(self.device)[None]) for p in prepared])
        with autocast(self.device, self.precision):
            features = self._encoder_features(x)
        # Contiguous: a cached copy comes back contiguous, and kernels on another memory layout
        # round differently (HQ-SAM's intermediate map is a channels-last view).
        return [ImageEmbedding({k: v[i:i + 1].float().contiguous() for k, v in features.items()},
                               tuple(image.shape[:2]), tuple(p.shape[-2:]))
                for i, (image, p) in enumerate(zip(images, prepared))]

    @torch.no_grad()
    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        logits, ious = [], []
        shared = None  # the fast decoder's image-side work, shared by all chunks without mask input
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts.select(slice(start, start + self.batch_size))
            with autocast(self.device, self.precision):
                sparse, dense = self._encode_prompts(embedding, chunk)
                if self.fast is None:
                    features = {k: v.to(self.device) for k, v in embedding.features.items()}
                    low, iou = self._mask_decoder(features, sparse, dense, multimask)
                else:
                    if chunk.mask_logits is None and shared is None:
                        shared = self.fast.image_side(embedding.features["image_embed"].to(self.device), dense[:1],
                                                      shared=True)
                    side = shared if shared is not None else self.fast.image_side(
                        embedding.features["image_embed"].to(self.device), dense, shared=False)
                    low, iou = self._run_fast(side, sparse, multimask)
            logits.append(low.float())
            ious.append(iou.float())
        return Decoded(torch.cat(logits), torch.cat(ious))

    def _encode_prompts(self, embedding: ImageEmbedding, prompts: Prompts) -> tuple[torch.Tensor, torch.Tensor]:
        """The official prompt encoder on prompts in original-image pixels (SamPredictor's transforms)."""
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
        return self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)

    def _run_fast(self, side: ImageSide, sparse: torch.Tensor, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.compiled:
            return self.fast(side, sparse, multimask)
        # Two batch buckets: a single prompt runs alone (one-object images, every click: padding
        # it would multiply the work), other chunks are padded to the batch size by repeating
        # their last prompt (prompts are independent). The token count is dynamic; the graphs are
        # bucket x mask input x multimask x few tokens (see enable_compile's recompile limit).
        n = len(sparse)
        pad = 0 if n == 1 else self.batch_size - n
        keys = side.keys
        if pad:
            sparse = torch.cat([sparse, sparse[-1:].expand(pad, -1, -1)])
            if side.projected is None:
                keys = torch.cat([keys, keys[-1:].expand(pad, -1, -1)])
        torch._dynamo.mark_dynamic(sparse, 1)
        low, iou = self._fast_forward(keys, side.projected, sparse, multimask)
        return low[:n], iou[:n]

    @torch.no_grad()
    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.model.postprocess_masks(low_res_logits.to(self.device), embedding.input_size,
                                            embedding.original_size)


def _decoder_choice(value: object) -> str:
    if value not in DECODERS:
        raise ValueError(f"decoder={value}; choose one of {', '.join(DECODERS)}")
    return str(value)


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
    """--model-args decoder=fast|official (the architecture is read from the weights)."""
    decoder = convert_model_args("sam", model_args, {"decoder": (_decoder_choice, "fast")})["decoder"]
    if not checkpoint:
        raise ConfigError("model 'sam' needs --checkpoint PATH (e.g. sam_vit_h_4b8939.pth)")
    loaded = load_sam_checkpoint(checkpoint)
    info = ModelInfo("sam", untrained=False, details=model_details(
        "SAM", loaded.architecture.name, loaded.model, loaded.path, loaded.sha256,
        architecture=loaded.architecture.to_dict()))
    return SamSegmenter(loaded.model, info, loaded.sha256, device, precision, batch_size, decoder)


@MODELS.register("tiny", help="seeded random SAM in the official layout (tests and demo; untrained)")
def build_tiny_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                     precision: str = "fp32", batch_size: int | None = None, seed: int | str = 0,
                     **model_args: str) -> SamSegmenter:
    if checkpoint:
        raise ConfigError(f"model 'tiny' builds its own seeded random weights and takes no --checkpoint; "
                          f"got {checkpoint} (use --model sam)")
    """--model-args seed=N,decoder=fast|official."""
    decoder = convert_model_args("tiny", model_args, {"decoder": (_decoder_choice, "fast")})["decoder"]
    try:
        seed = int(seed)
    except ValueError:
        raise ConfigError(f"model 'tiny': --model-args seed must be an integer, got {seed!r}") from None
    sam = make_tiny_sam(seed)
    sha = state_dict_sha256(sam.state_dict())
    info = ModelInfo("tiny", untrained=True, details={
        "seed": seed, "weights_sha256": sha, "architecture": TINY_ARCHITECTURE.to_dict()})
    return SamSegmenter(sam, info, sha, device, precision, batch_size, decoder)
