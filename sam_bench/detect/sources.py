"""Detectors that `sam-bench detect` runs to make box files: torchvision, transformers, detectron2.

Each source maps an RGB image to (xywh boxes, dataset category ids, scores). Weights are local
files only (nothing is downloaded). Class mapping: torchvision's COCO detectors predict COCO's own
category ids (its 91-slot label list), so labels are the dataset's category ids; a transformers
detector's labels are matched to the dataset's category names through `config.id2label`;
detectron2's contiguous indices map to the sorted category ids, as its COCO / LVIS loaders number
them. Predictions of classes the dataset does not have are dropped and counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..core.checkpoint import file_sha256
from ..errors import CheckpointError, ConfigError

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # xywh (N, 4), category ids (N,), scores (N,)
# Detections below this score are not written: detectron2's and torchvision's test default.
SCORE_THRESHOLD = 0.05
DETECTRON2_INSTALL = ("detectron2 is not installed (it is not on PyPI): "
                      "pip install 'git+https://github.com/facebookresearch/detectron2.git'")


class DetectorSource:
    """A loaded detector plus what run.json and the box file's note say about it."""

    def __init__(self, predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
                 info: dict[str, Any], to_category: Callable[[np.ndarray], np.ndarray]) -> None:
        self._predict, self.info, self._to_category = predict, info, to_category
        self.dropped = 0  # detections of classes that are not dataset categories

    def __call__(self, image: np.ndarray) -> Detections:
        xyxy, labels, scores = self._predict(image)
        cats = self._to_category(labels)
        keep = (cats >= 0) & (scores >= SCORE_THRESHOLD)
        self.dropped += int(((cats < 0) & (scores >= SCORE_THRESHOLD)).sum())
        xyxy = xyxy[keep].astype(np.float64)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return xywh, cats[keep].astype(np.int64), scores[keep].astype(np.float64)



def _lookup(table: dict[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda labels: np.array([table.get(int(v), -1) for v in labels], np.int64)


def torchvision_source(name: str, weights: Optional[str], device: torch.device,
                       categories: list[dict[str, Any]]) -> DetectorSource:
    """`torchvision:<model builder>` with a local state dict (`--weights W`)."""
    import torchvision

    if not weights:
        raise ConfigError(f"detector torchvision:{name} needs --weights FILE (a local state dict; nothing is downloaded)")
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"{path}: detector weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or truncated files
        raise CheckpointError(f"{path}: cannot read detector weights ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict")
    kwargs: dict[str, Any] = {}
    cls_weight = state.get("roi_heads.box_predictor.cls_score.weight")
    if isinstance(cls_weight, torch.Tensor):  # R-CNN family: the class count is in the weights
        kwargs["num_classes"] = int(cls_weight.shape[0])
    try:
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kwargs)
    except ValueError:
        raise ConfigError(f"unknown torchvision model '{name}'; detection models: "
                          f"{', '.join(torchvision.models.list_models(torchvision.models.detection))}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing / unexpected keys or shape mismatches, one per line
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise CheckpointError(f"{path}: not torchvision {name} weights: "
                              f"{(details[0] if details else str(exc))[:240]}") from None
    model.to(device).eval()

    @torch.no_grad()
    def predict(image: np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(device)
        out = model([tensor])[0]
        return out["boxes"].cpu().numpy(), out["labels"].cpu().numpy(), out["scores"].cpu().numpy()

    ids = {int(c["id"]): int(c["id"]) for c in categories}
    return DetectorSource(predict, {"detector": f"torchvision:{name}", "weights": str(path.resolve()),
                                    "weights_sha256": file_sha256(path)}, _lookup(ids))


def transformers_source(directory: str, device: torch.device, categories: list[dict[str, Any]]) -> DetectorSource:
    """`transformers:<local directory>` holding a saved object-detection model and its processor."""
    try:
        from transformers import AutoImageProcessor, AutoModelForObjectDetection
    except ImportError:
        raise ConfigError("transformers is not installed: pip install transformers") from None
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"{path}: transformers model directory not found")
    try:
        processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForObjectDetection.from_pretrained(path, local_files_only=True).to(device).eval()
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a transformers object-detection model "
                              f"({str(exc).splitlines()[0][:200]})") from None
    by_name = {str(c["name"]).lower(): int(c["id"]) for c in categories}
    table = {int(i): by_name[str(n).lower()] for i, n in model.config.id2label.items() if str(n).lower() in by_name}
    if not table:
        raise ConfigError(f"{path}: none of the detector's class names matches a category of the dataset "
                          f"(e.g. {list(model.config.id2label.values())[:3]} vs {list(by_name)[:3]})")

    @torch.no_grad()
    def predict(image: np.ndarray):
        inputs = processor(images=image, return_tensors="pt").to(device)
        outputs = model(**inputs)
        out = processor.post_process_object_detection(outputs, threshold=SCORE_THRESHOLD,
                                                      target_sizes=[image.shape[:2]])[0]
        return out["boxes"].cpu().numpy(), out["labels"].cpu().numpy(), out["scores"].cpu().numpy()

    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    info = {"detector": f"transformers:{path.resolve()}", "weights": str(weights[0]) if weights else None,
            "weights_sha256": file_sha256(weights[0]) if weights else None}
    return DetectorSource(predict, info, _lookup(table))


def detectron2_source(config: str, weights: Optional[str], device: torch.device,
                      categories: list[dict[str, Any]]) -> DetectorSource:
    """`detectron2:<config .yaml or LazyConfig .py>` with `--weights W` (detectron2 installed)."""
    try:
        import detectron2  # noqa: F401
    except ImportError:
        raise ConfigError(DETECTRON2_INSTALL) from None
    from .detectron2 import Detectron2Boxes

    if not weights or not Path(weights).is_file():
        raise CheckpointError(f"{weights}: detector weights file not found")
    boxes = Detectron2Boxes(f"detectron2:{config}:{weights}", device, sorted(int(c["id"]) for c in categories))

    def predict(image: np.ndarray):
        xywh, cats, scores = boxes(image)  # already dataset ids: map through the identity below
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), cats, scores

    ids = {int(c["id"]): int(c["id"]) for c in categories}
    return DetectorSource(predict, {"detector": f"detectron2:{Path(config).resolve()}",
                                    "weights": str(Path(weights).resolve()),
                                    "weights_sha256": file_sha256(Path(weights))}, _lookup(ids))


def build_source(spec: str, weights: Optional[str], device: torch.device,
                 categories: list[dict[str, Any]]) -> DetectorSource:
    """Parse `torchvision:NAME`, `transformers:DIR` or `detectron2:CONFIG` and load the detector."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigError(f"detector '{spec}': expected torchvision:NAME, transformers:DIR or detectron2:CONFIG")
    if kind == "torchvision":
        return torchvision_source(rest, weights, device, categories)
    if kind == "transformers":
        if weights:
            raise ConfigError("transformers:DIR reads its weights from DIR; drop --weights")
        return transformers_source(rest, device, categories)
    if kind == "detectron2":
        return detectron2_source(rest, weights, device, categories)
    raise ConfigError(f"detector '{spec}': unknown kind '{kind}'; use torchvision:, transformers: or detectron2:")
