"""Load SAM checkpoints in the official state-dict layout and infer their architecture.

The official `build_sam_vit_*` functions need the user to name the encoder size; a fine-tuned
checkpoint in the same layout may not say which it is. Every size-defining number (encoder width,
depth, heads, global-attention blocks, window, MLP widths, decoder depth) is visible in the tensor
shapes, so we read them from the weights and build the official modules with them.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Mapping

import segment_anything.modeling
import torch
from segment_anything.modeling import Sam

from ..errors import CheckpointError

PROMPT_EMBED_DIM = 256  # fixed by the official design: prompt encoder and decoder width
PATCH_SIZE = 16
DECODER_HEADS = 8  # not recoverable from weight shapes; every released SAM uses 8
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
# Wrappers used by common fine-tuning code around the official state dict.
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


@dataclass(frozen=True)
class SamArchitecture:
    """Everything needed to instantiate the official modules for a checkpoint."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    encoder_mlp_ratio: float
    window_size: int
    image_size: int
    decoder_depth: int
    decoder_mlp_dim: int

    @property
    def name(self) -> str:
        known = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}
        return known.get((self.encoder_embed_dim, self.encoder_depth),
                         f"vit_d{self.encoder_embed_dim}x{self.encoder_depth}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        return d


OFFICIAL_ARCHITECTURES = {
    "vit_b": SamArchitecture(768, 12, 12, (2, 5, 8, 11), 4.0, 14, 1024, 2, 2048),
    "vit_l": SamArchitecture(1024, 24, 16, (5, 11, 17, 23), 4.0, 14, 1024, 2, 2048),
    "vit_h": SamArchitecture(1280, 32, 16, (7, 15, 23, 31), 4.0, 14, 1024, 2, 2048),
}


def build_sam(arch: SamArchitecture, modeling: ModuleType = segment_anything.modeling,
              mask_decoder: str = "MaskDecoder", **decoder_kwargs: int) -> Sam:
    """Instantiate the official `segment_anything` modules (random weights) for `arch`.

    SAM-1-like families (HQ-SAM) ship their own copy of these classes: pass their `modeling`
    module and decoder class name (plus its extra arguments) to build theirs with the same sizes.
    """
    grid = arch.image_size // PATCH_SIZE
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_embed_dim,
            img_size=arch.image_size,
            mlp_ratio=arch.encoder_mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_num_heads,
            patch_size=PATCH_SIZE,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=list(arch.encoder_global_attn_indexes),
            window_size=arch.window_size,
            out_chans=PROMPT_EMBED_DIM,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=getattr(modeling, mask_decoder)(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=PROMPT_EMBED_DIM,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=DECODER_HEADS,
            ),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            **decoder_kwargs,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def infer_architecture(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> SamArchitecture:
    """Read the architecture from tensor shapes; raise CheckpointError if it is not SAM's layout."""
    required = [
        "image_encoder.patch_embed.proj.weight",
        "image_encoder.pos_embed",
        "image_encoder.blocks.0.attn.rel_pos_h",
        "image_encoder.blocks.0.mlp.lin1.weight",
        "mask_decoder.transformer.layers.0.mlp.lin1.weight",
        "prompt_encoder.point_embeddings.0.weight",
    ]
    missing = [k for k in required if k not in state]
    if missing:
        sample = ", ".join(sorted(state)[:8]) or "(no tensors)"
        raise CheckpointError(
            f"{source}: not an official SAM state dict; missing keys: {', '.join(missing)}; "
            f"it has keys such as: {sample}"
        )
    embed_dim = state["image_encoder.patch_embed.proj.weight"].shape[0]
    grid = state["image_encoder.pos_embed"].shape[1]
    block_ids = sorted({int(m.group(1)) for k in state
                        if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    depth = len(block_ids)
    if block_ids != list(range(depth)):
        raise CheckpointError(f"{source}: image encoder blocks are not numbered 0..{depth - 1}: {block_ids}")
    head_dim = state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
    global_blocks, window = [], None
    for i in range(depth):
        rel = state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]
        if rel == 2 * grid - 1:
            global_blocks.append(i)
        else:
            window = (rel + 1) // 2
    decoder_depth = len({m.group(1) for k in state
                         if (m := re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k))})
    return SamArchitecture(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=embed_dim // head_dim,
        encoder_global_attn_indexes=tuple(global_blocks),
        encoder_mlp_ratio=state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
        window_size=window if window is not None else 14,
        image_size=grid * PATCH_SIZE,
        decoder_depth=decoder_depth,
        decoder_mlp_dim=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
    )


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, dtypes, shapes and values), independent of file format."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a .pth checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        size = path.stat().st_size
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({size} bytes; truncated or not a PyTorch file): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    return obj


@dataclass
class LoadedSam:
    model: Sam
    architecture: SamArchitecture
    sha256: str
    path: str | None


def load_sam_checkpoint(path: str | Path) -> LoadedSam:
    """Load an official-layout checkpoint with a clear error for every way it can be wrong."""
    state = read_state_dict(path)
    arch = infer_architecture(state, source=str(path))
    sam = build_sam(arch)
    load_exact(sam, state, path, f"the official SAM layout for {arch.name}")
    return LoadedSam(model=sam.eval(), architecture=arch, sha256=file_sha256(Path(path)), path=str(path))


def load_exact(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, layout: str) -> None:
    """load_state_dict that names every missing, unexpected or mis-shaped key in one CheckpointError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if wrong_shape:
            parts.append("wrong shapes: " + ", ".join(
                f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong_shape[:20]))
        raise CheckpointError(f"{path}: not in {layout}; " + "; ".join(parts))
    model.load_state_dict(state)
