"""Short real clips for the video fidelity tests: a few frames of ../shared/data's DAVIS sample
copied into a temporary folder (sam2's init_state reads a whole folder), as VideoFrames."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sam_bench.data.video import VideoFrames


def clip(source: Path, frames: list[str], into: Path) -> VideoFrames:
    """Frames `source/<name>.jpg` copied to `into` (a folder of exactly these frames)."""
    into.mkdir(parents=True, exist_ok=True)
    for name in frames:
        shutil.copy(source / f"{name}.jpg", into)
    return folder_frames(into)


def folder_frames(folder: Path) -> VideoFrames:
    """A folder of JPEG frames, in name order."""
    paths = sorted(folder.glob("*.jpg"))
    width, height = Image.open(paths[0]).size
    return VideoFrames(names=[p.stem for p in paths], paths=paths, height=height, width=width,
                       load=lambda i: np.array(Image.open(paths[i]).convert("RGB")), folder=folder)


def label_map(path: Path) -> np.ndarray:
    """A palette PNG annotation: (H, W) object ids."""
    return np.asarray(Image.open(path))


def box_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def inside_point(mask: np.ndarray) -> np.ndarray:
    """(1, 2) x, y of a pixel deep inside the mask (its distance-transform maximum)."""
    import cv2

    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(distance), distance.shape)
    return np.array([[x, y]], dtype=np.float32)


def random_sam2_checkpoint(path: Path, config: str) -> Path:
    """A random SAM 2.1 saved like the official files. Random logits sit near 0 and its "object
    present" head says no: the mask hypernetworks' output layers are scaled to a trained logit range
    and the presence bias raised, so compared masks are neither empty nor full."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    model = build_sam2(config, ckpt_path=None, device="cpu")
    with torch.no_grad():
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(120.0)
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(20.0)
    torch.save({"model": model.state_dict()}, path)
    return path
