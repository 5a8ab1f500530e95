"""Boxes from a detectron2 model, for `detect` and for the instances task's `--detector`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError


class Detectron2Boxes:
    """Boxes from a detectron2 model: `detectron2:<config (.yaml or LazyConfig .py)>:<weights>`.

    detectron2 is optional: it is imported only here. Its contiguous class indices are mapped to
    the dataset's category ids in sorted order, as detectron2's COCO and LVIS loaders number them.
    """

    def __init__(self, spec: str, device: torch.device, category_ids: list[int]) -> None:
        config, sep, weights = spec[len("detectron2:"):].partition(":")
        if not (config and sep and weights):
            raise ConfigError(f"--detector {spec}: expected detectron2:<config>:<weights>")
        try:
            import detectron2.data.transforms as T
            from detectron2.checkpoint import DetectionCheckpointer
            from detectron2.config import LazyConfig, get_cfg, instantiate
            from detectron2.modeling import build_model
        except ImportError:
            raise ConfigError(f"--detector {spec}: detectron2 is not installed (it is optional; see "
                              "https://detectron2.readthedocs.io), or pass --detections FILE") from None
        if not Path(config).is_file():
            raise ConfigError(f"--detector: config file {config} not found")
        if config.endswith(".py"):  # LazyConfig, e.g. ViTDet
            cfg = LazyConfig.load(config)
            self.model = instantiate(cfg.model)
            self.augment = T.AugmentationList(instantiate(cfg.dataloader.test.mapper.augmentations))
            self.input_format = getattr(self.model, "input_format", "BGR")
        else:
            cfg = get_cfg()
            cfg.merge_from_file(config)
            self.model = build_model(cfg)
            self.augment = T.AugmentationList([T.ResizeShortestEdge(
                [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)])
            self.input_format = cfg.INPUT.FORMAT
        DetectionCheckpointer(self.model).load(weights)
        self.model.to(device).eval()
        self.T, self.device, self.category_ids = T, device, np.asarray(category_ids)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        inp = self.T.AugInput(image if self.input_format == "RGB" else np.ascontiguousarray(image[:, :, ::-1]))
        self.augment(inp)
        tensor = torch.as_tensor(inp.image.astype("float32").transpose(2, 0, 1)).to(self.device)
        inst = self.model([{"image": tensor, "height": h, "width": w}])[0]["instances"].to("cpu")
        classes = inst.pred_classes.numpy()
        if len(classes) and classes.max() >= len(self.category_ids):
            raise ConfigError(f"detector predicts class {classes.max()} but the dataset has "
                              f"{len(self.category_ids)} categories")
        xyxy = inst.pred_boxes.tensor.numpy().astype(np.float64)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return xywh, self.category_ids[classes].astype(np.int64), inst.scores.numpy().astype(np.float64)
