"""SAM 2 / 2.1 behind the PromptableSegmenter interface: `sam2 --checkpoint sam2.1_hiera_*.pt`.

The forward pass is the official `sam2` modules, built with the package's own `build_sam2`; this
file is the harness: encode as SAM2ImagePredictor.set_image (square resize to 1024, ImageNet
normalisation, the two high-resolution feature maps, no_mem_embed), decode prompt batches as
SAM2ImagePredictor.predict does one prompt (boxes merged into the points with labels 2/3, dynamic
multimask fallback inside the official decoder), upsample as its SAM2Transforms (a plain bilinear
resize to the original size: there is no padding to crop).

Low-res logits: the predictor clamps the copy it returns to +-32 but makes the full-size masks from
the unclamped logits. Decoded keeps the unclamped logits (so upsample gives the predictor's masks)
and decode clamps mask inputs to +-32 (so feeding them back equals feeding the predictor's copy).
Sam2Segmenter also serves SAM 3's interactive path (sam3_model.py), which reuses this predictor code.

The registered `sam2` model (Sam2Model) is both a PromptableSegmenter and a VideoSegmenter: one
checkpoint, one set of weights; `open_video` drives sam2's SAM2VideoPredictor (sam2_video.py).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..core.checkpoint import file_sha256, read_state_dict
from ..core.device import autocast
from ..core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from ..errors import CheckpointError, ConfigError
from ..registry import MODELS
from ..data.video import VideoFrames
from .base import PromptableSegmenter
from .args import convert_model_args, to_bool
from .backends import import_backend
from .details import model_details
from .sam import default_batch_size
from .sam2_video import Sam2VideoOptions, Sam2VideoSession, build_video_predictor, frame_mode
from .video import VideoSegmenter

LOGIT_CLAMP = 32.0  # SAM2ImagePredictor._predict clamps the low-res logits it returns
# Hiera trunk (patch-embed width, number of blocks) -> config size suffix of the released models.
HIERA_SIZES = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}
# Keys only SAM 2.1 has (object-pointer temporal projection, spatial no-object embedding).
SAM21_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")


def infer_config(state: Mapping[str, torch.Tensor], source: str) -> str:
    """The packaged config of a released SAM 2 / 2.1 checkpoint, read from its tensor shapes."""
    patch = "image_encoder.trunk.patch_embed.proj.weight"
    if patch not in state or not any(k.startswith("sam_mask_decoder.") for k in state):
        sample = ", ".join(sorted(state)[:6]) or "(no tensors)"
        raise CheckpointError(f"{source}: not a SAM 2 state dict (no {patch} / sam_mask_decoder.*); "
                              f"it has keys such as: {sample}")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    width = int(state[patch].shape[0])
    size = HIERA_SIZES.get((width, len(blocks)))
    if size is None:
        raise CheckpointError(f"{source}: Hiera trunk of width {width} with {len(blocks)} blocks is none of the "
                              f"released sizes t/s/b+/l; name its config with --model-args config=...")
    version = "sam2.1" if all(k in state for k in SAM21_KEYS) else "sam2"
    return f"configs/{version}/{version}_hiera_{size}.yaml"


def packaged_configs() -> list[str]:
    import sam2

    root = Path(sam2.__file__).parent
    return sorted(str(p.relative_to(root)) for p in (root / "configs").glob("*/*.yaml"))


def build_model(config: str, apply_postprocessing: bool) -> torch.nn.Module:
    """Random-weight SAM2Base from a packaged config, through the package's own build_sam2."""
    build_sam = import_backend("sam2", "sam2.build_sam")
    known = packaged_configs()
    if config not in known:
        raise ConfigError(f"sam2 config '{config}' is not one of the sam2 package's configs: {', '.join(known)}")
    return build_sam.build_sam2(config, ckpt_path=None, device="cpu", apply_postprocessing=apply_postprocessing)


def load_sam2(path: str, config: str | None = None, apply_postprocessing: bool = True) -> tuple[torch.nn.Module, str]:
    """Build the official model for an official-layout checkpoint ({"model": state_dict})."""
    import_backend("sam2")
    state = read_state_dict(path)
    config = config or infer_config(state, path)
    model = build_model(config, apply_postprocessing)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{what} ({len(keys)}): {', '.join(keys[:12])}"
                 for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("wrong shapes", wrong)) if keys]
        raise CheckpointError(f"{path}: does not match sam2 config {config}; " + "; ".join(parts))
    model.load_state_dict(state)
    return model.eval(), config


class Sam2Segmenter(PromptableSegmenter):
    """`model` has SAM 2's heads (sam_prompt_encoder, sam_mask_decoder, no_mem_embed, image_size);
    `transforms` is the family's SAM2Transforms (SAM 3 ships its own copy)."""

    family = "sam2"

    def __init__(self, model: torch.nn.Module, info: ModelInfo, weights_sha256: str, device: torch.device,
                 precision: str = "fp32", batch_size: int | None = None,
                 transforms: torch.nn.Module | None = None) -> None:
        self.model = model.to(device).eval()
        self.info = info
        self.device = device
        self.precision = precision
        self.batch_size = batch_size or default_batch_size(device)
        self.resolution = int(model.image_size)
        if transforms is None:
            from sam2.utils.transforms import SAM2Transforms

            transforms = SAM2Transforms(resolution=self.resolution, mask_threshold=self.mask_threshold)
        self.transforms = transforms
        # Backbone levels, finest first (the predictor's _bb_feat_sizes for 1024: 256, 128, 64).
        self.feature_sizes = [(self.resolution // s, self.resolution // s) for s in (4, 8, 16)]
        self.cache_fingerprint = f"{self.family}|{weights_sha256}|square{self.resolution}|{precision}"

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        # SAM2ImagePredictor.set_image, step for step.
        x = self.transforms(image)[None].to(self.device)
        with autocast(self.device, self.precision):
            backbone_out = self.model.forward_image(x)
        return self._embedding(backbone_out, image, add_no_mem_embed=self.model.directly_add_no_mem_embed)

    def _embedding(self, backbone_out: dict, image: np.ndarray, add_no_mem_embed: bool) -> ImageEmbedding:
        """Backbone output -> the predictor's _features, as a flat dict of (1, C, h, w) maps."""
        _, vision_feats, _, _ = self.model._prepare_backbone_features(backbone_out)
        if add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        maps = [feat.permute(1, 2, 0).reshape(1, -1, *size).float()
                for feat, size in zip(vision_feats, self.feature_sizes[-len(vision_feats):])]
        features = {f"high_res_feats_{i}": m for i, m in enumerate(maps[:-1])}
        features["image_embed"] = maps[-1]
        return ImageEmbedding(features, tuple(image.shape[:2]), (self.resolution, self.resolution))

    @torch.no_grad()
    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        logits, ious = [], []
        for start in range(0, len(prompts), self.batch_size):
            low, iou = self._decode_chunk(embedding, prompts.select(slice(start, start + self.batch_size)), multimask)
            logits.append(low)
            ious.append(iou)
        return Decoded(torch.cat(logits), torch.cat(ious))

    def _decode_chunk(self, embedding: ImageEmbedding, prompts: Prompts,
                      multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # SAM2ImagePredictor._prep_prompts + _predict for a batch of prompts.
        hw = embedding.original_size
        coords = labels = None
        if prompts.boxes is not None:
            box = torch.as_tensor(prompts.boxes, dtype=torch.float, device=self.device)
            coords = self.transforms.transform_boxes(box, normalize=True, orig_hw=hw)
            labels = torch.tensor([[2, 3]], dtype=torch.int, device=self.device).repeat(len(prompts), 1)
        if prompts.points is not None:
            pts = self.transforms.transform_coords(torch.as_tensor(prompts.points, dtype=torch.float, device=self.device),
                                                   normalize=True, orig_hw=hw)
            lab = torch.as_tensor(prompts.labels, dtype=torch.int, device=self.device)
            # Boxes go first, as in the predictor.
            coords = pts if coords is None else torch.cat([coords, pts], dim=1)
            labels = lab if labels is None else torch.cat([labels, lab], dim=1)
        masks = None
        if prompts.mask_logits is not None:
            masks = prompts.mask_logits.to(self.device, torch.float).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        # The predictor's maps are views of (HW, 1, C) tensors, i.e. channels-last. Same layout here,
        # fresh or read from the cache, so the decoder runs the predictor's kernels bit for bit.
        features = {k: v.to(self.device).contiguous(memory_format=torch.channels_last)
                    for k, v in embedding.features.items()}
        high_res = [features[f"high_res_feats_{i}"] for i in range(len(features) - 1)]
        with autocast(self.device, self.precision):
            sparse, dense = self.model.sam_prompt_encoder(
                points=None if coords is None else (coords, labels), boxes=None, masks=masks)
            low_res, iou, _, _ = self.model.sam_mask_decoder(
                image_embeddings=features["image_embed"],
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=len(prompts) > 1,
                high_res_features=high_res,
            )
        return low_res.float(), iou.float()

    @torch.no_grad()
    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.transforms.postprocess_masks(low_res_logits.to(self.device), embedding.original_size)


class Sam2Model(Sam2Segmenter, VideoSegmenter):
    """SAM 2 / 2.1: the image predictor's path (Sam2Segmenter) and sam2's video predictor, built on
    first use from the same config and sharing the image model's weights."""

    def __init__(self, model: torch.nn.Module, config: str, video_options: Sam2VideoOptions, info: ModelInfo,
                 weights_sha256: str, device: torch.device, precision: str = "fp32",
                 batch_size: int | None = None) -> None:
        super().__init__(model, info, weights_sha256, device, precision, batch_size)
        self.config, self.video_options = config, video_options
        self._video_predictor: torch.nn.Module | None = None

    def open_video(self, frames: VideoFrames) -> Sam2VideoSession:
        if self._video_predictor is None:
            self._video_predictor = build_video_predictor(self.model, self.config, self.video_options, self.device)
        return Sam2VideoSession(self._video_predictor, frames, self.video_options, self.device, self.precision)

    def keep_corrections(self) -> None:
        if not self.video_options.keep_corrections:
            self.video_options = replace(self.video_options, keep_corrections=True)
            self._video_predictor = None  # rebuilt with the flag on first use


MODEL_ARGS = {
    "config": (str, None), "apply_postprocessing": (to_bool, True),
    # video predictor (sam2_video.py)
    "vos_optimized": (to_bool, False), "video_postprocessing": (to_bool, False), "frames": (frame_mode, "lazy"),
    "offload_video_to_cpu": (to_bool, False), "offload_state_to_cpu": (to_bool, False),
}


@MODELS.register("sam2", help="SAM 2 / 2.1 from an official checkpoint (sam2.1_hiera_*.pt; package sam2), images and "
                              "video; --model-args config=configs/sam2.1/sam2.1_hiera_t.yaml,apply_postprocessing=true; "
                              "video: vos_optimized, video_postprocessing, frames=lazy|folder|async, "
                              "offload_video_to_cpu, offload_state_to_cpu")
def build_sam2_model(checkpoint: str | None = None, device: torch.device = torch.device("cpu"),
                     precision: str = "fp32", batch_size: int | None = None, **model_args: object) -> Sam2Model:
    args = convert_model_args("sam2", model_args, MODEL_ARGS)
    if not checkpoint:
        raise ConfigError("model 'sam2' needs --checkpoint PATH (e.g. sam2.1_hiera_large.pt)")
    model, config = load_sam2(checkpoint, args["config"], args["apply_postprocessing"])
    video = Sam2VideoOptions(args["vos_optimized"], args["video_postprocessing"], args["frames"],
                             args["offload_video_to_cpu"], args["offload_state_to_cpu"])
    sha = file_sha256(Path(checkpoint))
    info = ModelInfo("sam2", untrained=False, details=model_details(
        "sam2", Path(config).stem, model, str(checkpoint), sha, config=config,
        apply_postprocessing=args["apply_postprocessing"]))
    return Sam2Model(model, config, video, info, sha, device, precision, batch_size)
