"""Build and load SAM 3 image models (sam3's own modules) for sizes the package's builder cannot make.

`sam3.model_builder.build_sam3_image_model` only makes the released 848M model. It is a list of
`_create_*` calls with fixed numbers; this module makes the same calls, with the image ViT and the
text encoder sized by a Sam3Architecture (the release's by default), so a small random SAM 3 for
tests is the package's own classes. Every size number is read back from a checkpoint's tensor
shapes: ViT width, depth, MLP width and, from each block's RoPE table, its head width and whether it
attends globally or in windows; text encoder width and depth.

Official checkpoint layout (sam3.pt): {"detector.<Sam3Image keys>", "tracker.<tracker keys>"},
possibly under "model"; the tracker is the interactive (SAM 1 task) predictor's model.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch

from ..errors import CheckpointError, ConfigError

HEAD_DIM = 64  # the release's ViT (1024 wide, 16 heads) and text encoder (1024 wide, 16 heads)
VIT_GRID = 72  # 1008 / 14: a global block's RoPE table has 72 * 72 rows, a 24x24 window's 576


@dataclass(frozen=True)
class Sam3Architecture:
    vit_dim: int = 1024
    vit_depth: int = 32
    vit_heads: int = 16
    vit_mlp_ratio: float = 4.625
    vit_global_blocks: tuple[int, ...] = (7, 15, 23, 31)
    text_width: int = 1024
    text_layers: int = 24

    @property
    def name(self) -> str:
        return "sam3" if self == Sam3Architecture() else f"sam3-vit{self.vit_dim}x{self.vit_depth}"

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


def bpe_path() -> str:
    """The CLIP BPE vocabulary SAM 3's tokenizer reads. The sam3 wheel (0.1.4) does not ship its
    assets/ copy; open_clip (a sam-bench dependency) carries the same file."""
    import open_clip

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise ConfigError(f"SAM 3 tokenizer vocabulary not found at {path} (from open_clip_torch)")
    return str(path)


@contextlib.contextmanager
def cuda_constants_on(device: torch.device) -> Iterator[None]:
    """sam3 0.1.4 precomputes position-encoding and box-coordinate caches with device="cuda"
    hard-coded in its constructors (plain dict / attribute caches that .to() does not move), so it
    cannot be built without a GPU. While building, send those tensors to `device` instead; the
    values are the official code's own."""
    if device.type == "cuda":
        yield
        return
    from sam3.model import decoder, position_encoding

    real_zeros, real_coords = torch.zeros, decoder.TransformerDecoder._get_coords

    def zeros(*args, **kwargs):
        if str(kwargs.get("device", "")) == "cuda":
            kwargs["device"] = device
        return real_zeros(*args, **kwargs)

    def coords(h: int, w: int, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        return real_coords(h, w, device=device)

    position_encoding.torch = _TorchWith(zeros)
    decoder.TransformerDecoder._get_coords = staticmethod(coords)
    try:
        yield
    finally:
        position_encoding.torch = torch
        decoder.TransformerDecoder._get_coords = staticmethod(real_coords)


@contextlib.contextmanager
def pinning_skipped_on(device: torch.device) -> Iterator[None]:
    """sam3 0.1.4's text path (geometry encoder, box pooling) stages a 4-number scale tensor through
    Tensor.pin_memory() before moving it to the boxes' device; pinning needs CUDA. Off CUDA, while
    the path runs, pin_memory returns the tensor itself: pinning is a transfer optimisation that
    copies the values unchanged, so sam3's arithmetic is untouched."""
    if device.type == "cuda":
        yield
        return
    real = torch.Tensor.pin_memory
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.pin_memory = real


class _TorchWith:
    """`torch` as seen by one sam3 module, with `zeros` replaced."""

    def __init__(self, zeros) -> None:
        self.zeros = zeros

    def __getattr__(self, name: str):
        return getattr(torch, name)


def build_sam3(arch: Sam3Architecture = Sam3Architecture(), device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """Random-weight Sam3Image with the interactive predictor, as build_sam3_image_model(
    enable_inst_interactivity=True) composes it, with `arch`'s ViT and text encoder; on `device`."""
    with cuda_constants_on(device):
        model = _compose(arch)
    # The text encoder's positional embedding and projection are torch.empty in sam3's constructor
    # (its checkpoint fills them): give a random model open_clip's initial values, not memory garbage.
    text = model.backbone.language_backbone.encoder
    with torch.no_grad():
        text.positional_embedding.normal_(std=0.01)
        text.text_projection.normal_(std=text.width ** -0.5)
    return model.to(device).eval()


def _compose(arch: Sam3Architecture) -> torch.nn.Module:
    from sam3 import model_builder as mb
    from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    from sam3.model.vitdet import ViT

    vit = ViT(img_size=1008, pretrain_img_size=336, patch_size=14, embed_dim=arch.vit_dim, depth=arch.vit_depth,
              num_heads=arch.vit_heads, mlp_ratio=arch.vit_mlp_ratio, norm_layer="LayerNorm", drop_path_rate=0.1,
              qkv_bias=True, use_abs_pos=True, tile_abs_pos=True, global_att_blocks=arch.vit_global_blocks,
              rel_pos_blocks=(), use_rope=True, use_interp_rope=True, window_size=24, pretrain_use_cls_token=True,
              retain_cls_token=False, ln_pre=True, ln_post=False, return_interm_layers=False,
              bias_patch_embed=False)
    neck = mb._create_vit_neck(mb._create_position_encoding(precompute_resolution=1008), vit,
                               enable_inst_interactivity=True)
    text = VETextEncoder(tokenizer=SimpleTokenizer(bpe_path=bpe_path()), d_model=256, width=arch.text_width,
                         heads=arch.text_width // HEAD_DIM, layers=arch.text_layers)
    inst = SAM3InteractiveImagePredictor(mb.build_tracker(apply_temporal_disambiguation=False))
    model = mb._create_sam3_model(mb._create_vl_backbone(neck, text), mb._create_sam3_transformer(),
                                  mb._create_geometry_encoder(), mb._create_segmentation_head(),
                                  mb._create_dot_product_scoring(), inst, eval_mode=True)
    return model


def to_official_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Sam3Image state dict -> sam3.pt's keys (inverse of sam3.model_builder._load_checkpoint)."""
    tracker = "inst_interactive_predictor.model."
    return {(f"tracker.{k[len(tracker):]}" if k.startswith(tracker) else f"detector.{k}"): v
            for k, v in model.state_dict().items()}


def from_official_layout(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    if not any(k.startswith("detector.") for k in state) or not any(k.startswith("tracker.") for k in state):
        sample = ", ".join(sorted(state)[:6]) or "(no tensors)"
        raise CheckpointError(f"{source}: not a SAM 3 checkpoint (needs detector.* and tracker.* keys); "
                              f"it has keys such as: {sample}")
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head not in ("detector", "tracker"):
            raise CheckpointError(f"{source}: unexpected key {key} (SAM 3 keys start with detector. or tracker.)")
        out[f"inst_interactive_predictor.model.{rest}" if head == "tracker" else rest] = value
    return out


def infer_architecture(state: Mapping[str, torch.Tensor], source: str) -> Sam3Architecture:
    """Sizes from a Sam3Image state dict (keys as in the model, not the checkpoint)."""
    vit, text = "backbone.vision_backbone.trunk.", "backbone.language_backbone.encoder.transformer."
    try:
        dim = int(state[f"{vit}patch_embed.proj.weight"].shape[0])
        depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(re.escape(vit) + r"blocks\.(\d+)\.", k)))
        mlp = int(state[f"{vit}blocks.0.mlp.fc1.weight"].shape[0])
        width = int(state[f"{text}resblocks.0.ln_1.weight"].shape[0])
        layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(re.escape(text) + r"resblocks\.(\d+)\.", k)))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{source}: not a SAM 3 image model state dict (missing {exc})") from None
    rope = [state.get(f"{vit}blocks.{i}.attn.freqs_cis") for i in range(depth)]
    if all(r is not None for r in rope):
        head_dim = 2 * int(rope[0].shape[-1])  # complex RoPE table: one column per pair of channels
        global_blocks = tuple(i for i, r in enumerate(rope) if r.shape[0] == VIT_GRID ** 2)
    else:  # no RoPE buffers saved: the release's rules (64-wide heads, every quarter's last block global)
        head_dim, step = HEAD_DIM, max(1, depth // 4)
        global_blocks = tuple(range(step - 1, depth, step))
    return Sam3Architecture(vit_dim=dim, vit_depth=depth, vit_heads=dim // head_dim, vit_mlp_ratio=mlp / dim,
                            vit_global_blocks=global_blocks, text_width=width, text_layers=layers)
