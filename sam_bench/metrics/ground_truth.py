"""The ground truth of one image in the forms the prompted tasks score and click against.

`GroundTruth` holds an image's object masks as torch tensors on the decoder's device (void pixels
removed), so IoUs are counted where the logits are; `click_inputs` gives the click rule and
boundary IoU their inputs, as tensors on that device (GPU path) or as numpy arrays (CPU path).
Shared by the point and miou tasks, which must not import each other.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .boundary import Mask, boundary_width, mask_boundary


class GroundTruth:
    """The objects of one image as torch masks on the decoder's device, void pixels removed."""

    def __init__(self, gts: list[np.ndarray], ignore: Optional[np.ndarray], device: torch.device) -> None:
        self.valid = None if ignore is None else torch.from_numpy(~np.asarray(ignore, dtype=bool)).to(device)
        masks = torch.from_numpy(np.stack(gts)).to(device)
        self.masks = masks if self.valid is None else masks & self.valid
        self.areas = self.masks.flatten(1).sum(1)


def click_inputs(gts: list[np.ndarray], ignore: Optional[np.ndarray],
                 truth: Optional[GroundTruth]) -> tuple[list[Mask], Optional[Mask], list[Mask]]:
    """(ground truths, void map, ground-truth boundaries) for the click rule and boundary IoU:
    torch on `truth`'s device when it is given (the device path), else numpy. The boundaries are
    of the masks without void pixels, as the kept masks are (a perfect mask scores 1)."""
    width = boundary_width(*gts[0].shape)
    if truth is not None:
        ignore_t = None if truth.valid is None else ~truth.valid
        return list(truth.masks), ignore_t, [mask_boundary(m, width) for m in truth.masks]
    valid = None if ignore is None else ~np.asarray(ignore, dtype=bool)
    return gts, ignore, [mask_boundary(g if valid is None else g & valid, width) for g in gts]
