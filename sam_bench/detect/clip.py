"""CLIP through open_clip from local files only: loading, phrase embeddings, mask-crop scoring.

Two checkpoint layouts are accepted, both open_clip's own:
- a directory with `open_clip_config.json` + weights (what open_clip exports and what the
  `timm/...openai` Hugging Face repos contain, downloaded by the user beforehand);
- a weights file plus a built-in architecture name (`--clip-model ViT-L-14-336`).
The model is always created with random weights and no download, then the weights are loaded
from the given file, so a missing file is an error and never a silent download.
"""
from __future__ import annotations

import json
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ..core.checkpoint import file_sha256
from ..core.device import autocast
from ..errors import CheckpointError, ConfigError

CONFIG_NAME = "open_clip_config.json"
# Category names become sentences: a few neutral photo templates, averaged (CLIP's zero-shot recipe).
CATEGORY_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
)
# Referring expressions are already sentences.
EXPRESSION_TEMPLATES = ("{}",)

TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@dataclass
class ClipModel:
    """A loaded open_clip model with its tokenizer and image normalisation."""

    model: torch.nn.Module
    tokenizer: Any
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    precision: str = "fp32"
    info: dict[str, Any] = field(default_factory=dict)  # architecture, files, sha256, untrained

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, D) unit-norm text embeddings, float32 on the CPU."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
            with autocast(self.device, self.precision):
                out.append(self.model.encode_text(tokens).float())
        return F.normalize(torch.cat(out), dim=-1).cpu() if out else torch.zeros(0, 0)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1] at `image_size` -> (B, D) unit-norm embeddings (CPU, float32)."""
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        out = []
        for start in range(0, len(images), batch_size):
            x = (images[start:start + batch_size].to(self.device) - mean) / std
            with autocast(self.device, self.precision):
                out.append(self.model.encode_image(x).float())
        return F.normalize(torch.cat(out), dim=-1).cpu()


def clip_identity(model_name: str, checkpoint: str | Path | None) -> dict[str, Any]:
    """What identifies the CLIP of a run (files, sha256, untrained flag), without building the model."""
    if not checkpoint:
        raise ConfigError("the text task needs --clip-checkpoint PATH: an open_clip weights file (with "
                          "--clip-model NAME) or a directory holding open_clip_config.json and weights; "
                          "sam-bench never downloads weights")
    path = Path(checkpoint).expanduser().resolve()
    if not path.exists():
        raise CheckpointError(f"{path}: CLIP checkpoint not found")
    extra: dict[str, Any] = {}
    if path.is_dir():
        config_path = path / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{path}: CLIP checkpoint directory has no {CONFIG_NAME}")
        try:
            config = json.loads(config_path.read_text())
            model_cfg, extra = config["model_cfg"], config.get("sam_bench", {})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{config_path}: not an open_clip config with a 'model_cfg': {exc}") from None
        weights, name = _weights_in(path), f"local-dir:{path}"
        architecture = str(extra.get("name") or f"{path.name}/{CONFIG_NAME}")
    else:
        if model_name not in open_clip.list_models():
            raise ConfigError(f"--clip-model {model_name}: not an open_clip architecture; known e.g. "
                              f"ViT-B-16, ViT-L-14, ViT-L-14-336 (see open_clip.list_models())")
        weights, name, architecture, model_cfg = path, model_name, model_name, open_clip.get_model_config(model_name)
    return {"architecture": architecture, "open_clip_name": name, "model_cfg": model_cfg, "checkpoint": str(path),
            "weights_file": str(weights), "weights_sha256": file_sha256(weights),
            "untrained": bool(extra.get("untrained", False)), **{k: v for k, v in extra.items() if k != "untrained"}}


def load_clip(model_name: str, checkpoint: str | Path | None, device: torch.device = torch.device("cpu"),
              precision: str = "fp32", identity: dict[str, Any] | None = None) -> ClipModel:
    """Build `model_name` (or the architecture in a checkpoint directory) and load local weights.

    `identity`: `clip_identity(model_name, checkpoint)` when the caller has it (saves hashing the file).
    """
    info = dict(identity or clip_identity(model_name, checkpoint))
    name, weights = info["open_clip_name"], info["weights_file"]
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": we load weights next
    try:
        # No pretrained tag and no tower weights: nothing can be fetched from a hub.
        model = open_clip.create_model(name, pretrained=None, load_weights=False, pretrained_image=False,
                                       pretrained_text=False, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{info['checkpoint']}: cannot build open_clip model '{name}': {exc}") from None
    finally:
        logging.disable(logging.NOTSET)
    try:
        open_clip.load_checkpoint(model, weights, strict=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError,
            KeyError, StopIteration) as exc:
        text = " ".join(str(exc).split())[:800] or type(exc).__name__  # keeps the missing/unexpected keys
        hint = ("; OpenAI's original .pt files are TorchScript archives: use open_clip weights instead (e.g. the "
                "timm/vit_large_patch14_clip_336.openai folder)") if str(weights).endswith(".pt") else ""
        raise CheckpointError(f"{weights}: not loadable as open_clip '{name}' weights: {text}{hint}") from None
    pre = open_clip.get_model_preprocess_cfg(model)
    size = pre.get("size", 224)
    info["image_size"] = int(size if isinstance(size, int) else size[0])
    return ClipModel(model.to(device).eval(), tokenizer, info["image_size"],
                     tuple(pre.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                     tuple(pre.get("std", open_clip.OPENAI_DATASET_STD)), device, precision, info)


def _weights_in(directory: Path) -> Path:
    # Same preference as open_clip's local-dir loader, so both pick the same file.
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                 "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth"):
        if (directory / name).is_file():
            return directory / name
    found = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    if not found:
        raise CheckpointError(f"{directory}: CLIP checkpoint directory holds no weights file "
                              f"(.safetensors, .bin, .pth)")
    return found[0]


def write_tiny_clip(directory: str | Path, seed: int = 0) -> Path:
    """A small random open_clip model in open_clip's local-dir layout (tests and demo; untrained)."""
    directory = Path(directory)
    weights = directory / "open_clip_pytorch_model.bin"
    if weights.is_file() and (directory / CONFIG_NAME).is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = open_clip.model.CLIP(**TINY_CLIP_CONFIG)
    finally:
        torch.random.set_rng_state(state)
    torch.save(model.state_dict(), weights)
    (directory / CONFIG_NAME).write_text(json.dumps({
        "model_cfg": TINY_CLIP_CONFIG,
        "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)},
        "sam_bench": {"untrained": True, "seed": seed, "name": "tiny-clip"}}, indent=1))
    return directory


# ----------------------------------------------------------------------------------------------
# Mask crops, as in the paper's text-prompt training recipe (appendix D.5): the mask's box,
# expanded, made square around its centre (aspect kept), optionally with the background zeroed.


def square_boxes(boxes: np.ndarray, expand: float) -> np.ndarray:
    """(C, 4) x0 y0 x1 y1 -> integer square windows (C, 4) around each box centre, side = expand * max(w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(1, np.round(expand * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
    x0, y0 = np.floor(cx - side / 2 + 0.5), np.floor(cy - side / 2 + 0.5)  # round half up, not to even
    return np.stack([x0, y0, x0 + side, y0 + side], 1).astype(np.int64)


def crop_window(image: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """Pixels of `image` (H, W, ...) inside window x0 y0 x1 y1; outside the image is zero."""
    x0, y0, x1, y1 = (int(v) for v in window)
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def mask_crops(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, size: int, expand: float = 1.0,
               zero_background: bool = False) -> torch.Tensor:
    """(C, 3, size, size) float RGB in [0, 1]: one square crop per candidate, resized for CLIP."""
    crops = []
    for window, mask in zip(square_boxes(boxes, expand), masks):
        crop = crop_window(image, window).astype(np.float32) / 255.0
        if zero_background:
            crop *= crop_window(mask, window)[..., None]
        x = torch.from_numpy(crop).permute(2, 0, 1)[None]
        # open_clip resizes with PIL bicubic; antialiased bicubic is its tensor equivalent.
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        crops.append(x.clamp_(0, 1)[0])
    return torch.stack(crops) if crops else torch.zeros(0, 3, size, size)


class ClipScorer:
    """Scores candidate masks against phrases: cosine(phrase embedding, mask-crop embedding).

    Phrase embeddings are cached (each phrase encoded once per run); each image's crops are
    embedded once, in batches, for all of its phrases.
    """

    def __init__(self, clip: ClipModel, crop_expand: float = 1.0, zero_background: bool = False,
                 batch_size: int = 64) -> None:
        self.clip = clip
        self.crop_expand = crop_expand
        self.zero_background = zero_background
        self.batch_size = batch_size
        self._phrases: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}

    def prepare(self, phrases: Sequence[str], templates: Sequence[str]) -> None:
        """Encode every phrase not yet cached: each template filled, embeddings averaged, re-normalised."""
        templates = tuple(templates)
        todo = list(dict.fromkeys(p for p in phrases if (p, templates) not in self._phrases))
        if not todo:
            return
        texts = [t.format(p) for p in todo for t in templates]
        emb = self.clip.encode_texts(texts).view(len(todo), len(templates), -1)
        for phrase, e in zip(todo, F.normalize(F.normalize(emb, dim=-1).mean(1), dim=-1)):
            self._phrases[(phrase, templates)] = e

    def phrase_embeddings(self, phrases: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        self.prepare(phrases, templates)
        return torch.stack([self._phrases[(p, tuple(templates))] for p in phrases])

    def crop_embeddings(self, image: np.ndarray, masks: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        out = []
        for start in range(0, len(boxes), self.batch_size):  # bounded memory for the crop tensors
            crops = mask_crops(image, masks[start:start + self.batch_size], boxes[start:start + self.batch_size],
                               self.clip.image_size, self.crop_expand, self.zero_background)
            out.append(self.clip.encode_images(crops, self.batch_size))
        return torch.cat(out) if out else torch.zeros(0, 0)

    def score(self, image: np.ndarray, candidates: Any, queries: Sequence[Any]) -> np.ndarray:
        """(Q, C) cosine similarities; `candidates` has .masks and .boxes, each query .phrase and .templates."""
        if len(candidates.boxes) == 0 or not queries:
            return np.zeros((len(queries), len(candidates.boxes)))
        crops = self.crop_embeddings(image, candidates.masks, candidates.boxes)
        scores = np.zeros((len(queries), len(crops)))
        by_templates: dict[tuple[str, ...], list[int]] = {}
        for i, q in enumerate(queries):
            by_templates.setdefault(tuple(q.templates), []).append(i)
        for templates, rows in by_templates.items():
            text = self.phrase_embeddings([queries[i].phrase for i in rows], templates)
            scores[rows] = (text @ crops.T).double().numpy()
        return scores


def check_templates(templates: Sequence[str], option: str) -> tuple[str, ...]:
    for t in templates:
        if t.count("{}") != 1:
            raise ConfigError(f"option {option}: prompt template {t!r} must contain exactly one '{{}}'")
    if not templates:
        raise ConfigError(f"option {option}: at least one prompt template is needed")
    return tuple(templates)
