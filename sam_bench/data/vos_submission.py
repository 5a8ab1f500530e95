"""VOS prediction files in each dataset's submission layout: written by the `vos` task, read back to
score a folder made elsewhere (`--predictions DIR`).

Layouts (a dataset config's `submission`):
- `davis`: `<video>/<frame>.png`, a palette PNG of object ids (DAVIS, MOSE, LVOS; davis2017-evaluation
  and the MOSE server read this);
- `ytvos`: `Annotations/<video>/<frame>.png`, the same PNGs under `Annotations/` (the YouTube-VOS
  server takes the zipped `Annotations` folder);
- `sav`: `<video>/<object:03d>/<frame>.png`, one 0/1 palette PNG per object (sav_evaluator; objects
  may overlap, nothing is resolved).
Id-map layouts hold one id per pixel: where objects overlap the lowest id wins, as sam2's
`put_per_obj_mask` writes it (objects painted from the highest id down).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .readers.vos import read_png_ids

SUBMISSIONS = ("davis", "ytvos", "sav")


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map DAVIS annotations use (id k -> the bits of k spread over R, G, B)."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


_PALETTE = voc_palette()


def resolve_overlaps(masks: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 id map of per-object masks; the lowest id wins where they overlap."""
    ids = np.zeros(shape, np.uint8)
    for k in sorted(masks, reverse=True):
        ids[np.asarray(masks[k], bool)] = k
    return ids


def _save_palette_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(values.astype(np.uint8), mode="P")
    image.putpalette(_PALETTE)
    image.save(path)


def _id_map_path(root: Path, layout: str, video: str, frame: str) -> Path:
    return (root / "Annotations" if layout == "ytvos" else root) / video / f"{frame}.png"


def write_frame(root: Path, layout: str, video: str, frame: str, masks: dict[int, np.ndarray],
                shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Write one frame's predictions; returns each object's mask as written (what is scored)."""
    if layout == "sav":
        for k, mask in masks.items():
            _save_palette_png(root / video / f"{k:03d}" / f"{frame}.png", np.asarray(mask, bool))
        return {k: np.asarray(m, bool) for k, m in masks.items()}
    ids = resolve_overlaps(masks, shape)
    _save_palette_png(_id_map_path(root, layout, video, frame), ids)
    return {k: ids == k for k in masks}


def read_frame(root: Path, layout: str, video: str, frame: str, object_ids: list[int],
               shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Each object's predicted mask on one frame of a submission folder; a missing file, a wrong
    size or an id that is not an object of the video is a DataError naming the file."""
    if layout == "sav":
        out = {}
        for k in object_ids:
            path = root / video / f"{k:03d}" / f"{frame}.png"
            if not (root / video / f"{k:03d}").is_dir():
                raise DataError(f"{path.parent}: predictions of object {k} of video '{video}' missing")
            if not path.is_file():
                raise DataError(f"{path}: prediction of frame {frame} (object {k} of video '{video}') missing")
            out[k] = read_png_ids(path, shape) > 0
        return out
    path = _id_map_path(root, layout, video, frame)
    if not path.is_file():
        raise DataError(f"{path}: prediction of frame {frame} of video '{video}' missing")
    ids = read_png_ids(path, shape)
    extra = sorted(set(np.unique(ids).tolist()) - set(object_ids) - {0})
    if extra:
        raise DataError(f"{path}: object id(s) {', '.join(map(str, extra))} not in the ground truth of video "
                        f"'{video}' (objects {', '.join(map(str, object_ids))})")
    return {k: ids == k for k in object_ids}
