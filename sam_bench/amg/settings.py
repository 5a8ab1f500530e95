"""AMG settings and result types. Every option of segment_anything's SamAutomaticMaskGenerator,
with the same defaults, SAM 2's `use_m2m` (SAM2AutomaticMaskGenerator), plus this suite's additions
(top-k ranking, single output, low-res logits)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..core.types import ImageEmbedding
from ..errors import ConfigError

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
RANKINGS = ("predicted_iou", "stability_score", "mean_iou_stability", "random")


@dataclass
class AmgSettings:
    points_per_side: Optional[int] = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88  # keep >; 0 disables (paper's proposal/edge settings)
    stability_score_thresh: float = 0.95  # keep >=; 0 disables
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: Optional[list[np.ndarray]] = None  # normalised [0, 1] (x, y) grids, one per crop layer
    min_mask_region_area: int = 0
    output_mode: str = "binary_mask"  # or "uncompressed_rle", "coco_rle"
    # SAM2AutomaticMaskGenerator's option (works with any segmenter): decode each grid mask once more
    # with its point and its own low-res logits as mask prompt, single output, before the filters.
    use_m2m: bool = False
    # Additions (no official counterpart):
    max_masks: Optional[int] = None  # keep the top-k by `rank_by` after NMS; records then come best first
    rank_by: str = "predicted_iou"  # "predicted_iou" | "stability_score" | "mean_iou_stability" | "random"
    multimask: bool = True  # False = the paper's "single output" proposal variant (one mask per point)
    return_low_res_logits: bool = False  # keep each kept mask's low-res logits (edges need probability maps)

    def validate(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise ConfigError("AMG: give exactly one of points_per_side or point_grids")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ConfigError(f"AMG: points_per_side must be >= 1, got {self.points_per_side}")
        if self.point_grids is not None and len(self.point_grids) < self.crop_n_layers + 1:
            raise ConfigError(f"AMG: point_grids needs one grid per crop layer ({self.crop_n_layers + 1}), "
                              f"got {len(self.point_grids)}")
        if self.points_per_batch < 1 or self.crop_n_layers < 0 or self.crop_n_points_downscale_factor < 1:
            raise ConfigError("AMG: points_per_batch and crop_n_points_downscale_factor must be >= 1, "
                              "crop_n_layers >= 0")
        if self.output_mode not in OUTPUT_MODES:
            raise ConfigError(f"AMG: output_mode must be one of {OUTPUT_MODES}, got '{self.output_mode}'")
        if self.rank_by not in RANKINGS:
            raise ConfigError(f"AMG: rank_by must be one of {RANKINGS}, got '{self.rank_by}'")
        if self.max_masks is not None and self.max_masks < 1:
            raise ConfigError(f"AMG: max_masks must be >= 1 or None, got {self.max_masks}")
        if self.return_low_res_logits and self.crop_n_layers > 0:
            raise ConfigError("AMG: return_low_res_logits needs crop_n_layers == 0 "
                              "(logits of crop masks live in their crop's frame)")


@dataclass
class AmgResult:
    # Same keys as the official generator: segmentation, area, bbox (xywh), predicted_iou,
    # point_coords, stability_score, crop_box (xywh).
    records: list[dict]
    # (K, 1, h, w) aligned with records (256x256 for SAM); only with return_low_res_logits.
    low_res_logits: Optional[torch.Tensor]
    # The full-image embedding used, to upsample those logits with segmenter.upsample.
    embedding: Optional[ImageEmbedding]
