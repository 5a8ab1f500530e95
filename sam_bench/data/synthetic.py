"""A small deterministic synthetic dataset for the demo and tests, written in native formats.

Each image holds nested objects, a whole (ellipse) containing a part (rectangle) containing a
subpart (disc), plus a free-standing triangle, over a textured background, so a single click is
ambiguous the way the paper's whole/part/subpart masks are. Masks are exact. The generator writes:
- `coco/`: `images/*.png`, `annotations.json` (LVIS v1 style, also valid COCO: RLE masks, category
  frequencies, neg/not-exhaustive lists), `detections.json` (jittered boxes, COCO results format);
- `bsds/`: BSDS500 layout (`images/val/*.jpg`, `groundTruth/val/*.mat`, two annotators: fine
  and coarse) for the edge protocol;
- `video/`: DAVIS 2017 layout (`JPEGImages/480p/<video>/*.jpg`, palette `Annotations/480p/<video>/*.png`
  on every frame, `ImageSets/2017/val.txt`): short clips of a disc and a rectangle moving over a
  textured background, for the `vos` protocol.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from pycocotools import mask as mask_utils
from skimage.segmentation import find_boundaries

CATEGORIES = [  # id, name, LVIS frequency group
    (1, "ellipse", "f"),
    (2, "rectangle", "c"),
    (3, "circle", "r"),
    (4, "triangle", "f"),
]


@dataclass
class SyntheticImage:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: list[np.ndarray]  # bool masks: whole, part, subpart, triangle
    category_ids: list[int]
    levels: list[int]  # 0 whole, 1 part, 2 subpart


def make_image(rng: np.random.Generator, height: int = 192, width: int = 256) -> SyntheticImage:
    yy, xx = np.mgrid[:height, :width]
    base = rng.uniform(40, 200, size=3)
    gradient = (xx / width)[..., None] * rng.uniform(-40, 40, size=3)
    texture = cv2.GaussianBlur(rng.normal(0, 18, size=(height, width, 3)), (0, 0), 2.0)
    image = base + gradient + texture

    cx, cy = rng.uniform(0.35, 0.55) * width, rng.uniform(0.4, 0.6) * height
    ax, ay = rng.uniform(0.2, 0.28) * width, rng.uniform(0.25, 0.35) * height
    whole = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    pw, ph = ax * rng.uniform(0.7, 0.9), ay * rng.uniform(0.6, 0.8)
    part = (np.abs(xx - cx) <= pw / 1.5) & (np.abs(yy - cy) <= ph / 1.5) & whole
    r = min(pw, ph) * rng.uniform(0.35, 0.5)
    sub = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    tri = np.zeros((height, width), np.uint8)
    tx = rng.uniform(0.78, 0.86) * width
    ty = rng.uniform(0.2, 0.7) * height
    s = rng.uniform(0.08, 0.12) * width
    cv2.fillPoly(tri, [np.array([[tx, ty - s], [tx - s, ty + s], [tx + s, ty + s]], np.int32)], 1)
    tri = tri.astype(bool) & ~whole

    masks = [whole, part & ~sub | sub, sub, tri]
    for mask in masks:
        colour = rng.uniform(0, 255, size=3)
        image = np.where(mask[..., None], 0.25 * image + 0.75 * colour, image)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return SyntheticImage(image, masks, [1, 2, 3, 4], [0, 1, 2, 0])


def generate(out_dir: str | Path, n_images: int = 4, seed: int = 0) -> dict[str, Path]:
    """Write the dataset under out_dir; returns {registered dataset name: data root}."""
    out = Path(out_dir)
    coco, bsds = out / "coco", out / "bsds"
    for d in (coco / "images", bsds / "images" / "val", bsds / "groundTruth" / "val"):
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for i in range(n_images):
        sample = make_image(rng)
        h, w = sample.image.shape[:2]
        name = f"synthetic_{i:03d}"
        cv2.imwrite(str(coco / "images" / f"{name}.png"), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(bsds / "images" / "val" / f"{name}.jpg"),
                    cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"{name}.png", "height": h, "width": w,
                       "neg_category_ids": [], "not_exhaustive_category_ids": []})
        for mask, cat in zip(sample.masks, sample.category_ids):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                                "area": float(mask_utils.area(rle)), "bbox": bbox, "iscrowd": 0})
            jitter = rng.normal(0, 2.0, size=4)
            detections.append({"image_id": image_id, "category_id": cat, "score": float(rng.uniform(0.5, 1.0)),
                               "bbox": [bbox[0] + jitter[0], bbox[1] + jitter[1],
                                        max(1.0, bbox[2] + jitter[2]), max(1.0, bbox[3] + jitter[3])]})
        _write_bsds_truth(bsds / "groundTruth" / "val" / f"{name}.mat", sample)
    categories = [{"id": cid, "name": n, "synonyms": [n], "frequency": f, "image_count": n_images,
                   "instance_count": n_images} for cid, n, f in CATEGORIES]
    (coco / "annotations.json").write_text(json.dumps(
        {"info": {"description": "sam-bench synthetic demo", "seed": seed}, "images": images,
         "annotations": annotations, "categories": categories, "licenses": []}))
    (coco / "detections.json").write_text(json.dumps(detections))
    video = out / "video"
    write_videos(video, rng)
    return {"demo": coco, "demo_bsds": bsds, "demo_video": video}


def write_videos(root: Path, rng: np.random.Generator, n_videos: int = 2, n_frames: int = 5,
                 height: int = 96, width: int = 128) -> None:
    """Clips in the DAVIS layout: object 1 a disc moving right, object 2 a rectangle moving down
    and passing under the disc (the disc is drawn last, so it hides the rectangle where they meet)."""
    from PIL import Image

    from .vos_submission import voc_palette

    names = [f"clip_{k}" for k in range(n_videos)]
    for name in names:
        frames, annotations = root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name
        frames.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[:height, :width]
        background = cv2.GaussianBlur(rng.normal(110, 30, size=(height, width, 3)), (0, 0), 1.5)
        colours = rng.uniform(0, 255, size=(2, 3))
        cx, cy, r = rng.uniform(0.2, 0.3) * width, rng.uniform(0.4, 0.6) * height, rng.uniform(0.1, 0.14) * height
        x0, y0 = rng.uniform(0.45, 0.55) * width, rng.uniform(0.1, 0.2) * height
        for t in range(n_frames):
            disc = (xx - cx - 6 * t) ** 2 + (yy - cy) ** 2 <= r ** 2
            rect = (np.abs(xx - x0) <= 0.1 * width) & (np.abs(yy - y0 - 5 * t) <= 0.12 * height)
            ids = np.zeros((height, width), np.uint8)
            image = background.copy()
            for k, mask in ((2, rect), (1, disc)):
                ids[mask] = k
                image[mask] = 0.3 * image[mask] + 0.7 * colours[k - 1]
            cv2.imwrite(str(frames / f"{t:05d}.jpg"), cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8),
                                                                  cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            png = Image.fromarray(ids, mode="P")
            png.putpalette(voc_palette())
            png.save(annotations / f"{t:05d}.png")
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")


def _write_bsds_truth(path: Path, sample: SyntheticImage) -> None:
    """Two annotators: a fine one (every level) and a coarse one (whole objects only)."""
    h, w = sample.image.shape[:2]
    annotators = []
    for max_level in (2, 0):
        labels = np.ones((h, w), np.uint16)
        for k, (mask, level) in enumerate(zip(sample.masks, sample.levels)):
            if level <= max_level:
                labels[mask] = k + 2
        _, labels = np.unique(labels, return_inverse=True)
        labels = (labels.reshape(h, w) + 1).astype(np.uint16)
        boundaries = find_boundaries(labels, mode="inner").astype(np.uint8)
        annotators.append({"Segmentation": labels, "Boundaries": boundaries})
    cell = np.empty((1, len(annotators)), dtype=object)
    for k, a in enumerate(annotators):
        cell[0, k] = np.array([(a["Segmentation"], a["Boundaries"])],
                              dtype=[("Segmentation", "O"), ("Boundaries", "O")])
    scipy.io.savemat(str(path), {"groundTruth": cell})
