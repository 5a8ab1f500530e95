"""SA-Co-format annotation files and predictions built from real COCO masks (../shared/data/coco_mini):
every category present in an image is a positive query, two absent ones are negatives; three
"annotators" see the same masks differently (an instance missing, masks shrunk, a query left
non-exhaustive, a crowd region); predictions are the truth perturbed (shifted, dropped, duplicated,
spurious, low-scored, inside crowd regions)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy.ndimage import binary_erosion

GOLD = "gt-annotations/gold_metaclip_merged_{}_test.json"


def rle_json(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def xywh(mask: np.ndarray) -> list[float]:
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]


def coco_queries(coco_root: Path) -> list[dict]:
    """One entry per (image, category) query of coco_mini: id, image record, phrase, instance masks."""
    coco = COCO(str(coco_root / "annotations" / "instances_val2017.json"))
    rng = np.random.default_rng(0)
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    queries, qid = [], 1000
    for image_id in sorted(coco.getImgIds()):
        image = coco.loadImgs(image_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        present = sorted({a["category_id"] for a in anns})
        absent = rng.choice(sorted(set(cats) - set(present)), size=2, replace=False)
        for cid in present + [int(c) for c in absent]:
            masks = [coco.annToMask(a).astype(bool) for a in anns if a["category_id"] == cid]
            queries.append({"id": qid, "image": image, "phrase": cats[cid], "masks": masks})
            qid += 1
    return queries


def annotator_files(queries: list[dict], root: Path, names: list[str]) -> list[Path]:
    """One SA-Co json per annotator name ('a', 'b', 'c'), differing as the module says."""
    paths = []
    for k, name in enumerate(names):
        images, anns = [], []
        for n, q in enumerate(queries):
            im = q["image"]
            exhaustive = not (k == 1 and n % 9 == 4) and not (k == 2 and n % 11 == 7)
            images.append({"id": q["id"], "file_name": im["file_name"], "height": im["height"], "width": im["width"],
                           "text_input": q["phrase"], "is_instance_exhaustive": int(exhaustive),
                           "is_pixel_exhaustive": 1})
            masks = list(q["masks"])
            if k == 1 and len(masks) > 1:
                masks = masks[1:]  # annotator b missed an instance
            if k == 2:
                masks = [binary_erosion(m, iterations=2) if m.sum() > 400 else m for m in masks]
            for j, m in enumerate(masks):
                crowd = int(k < 2 and n % 7 == 3 and j == 0)  # a and b mark a region as crowd
                anns.append({"id": len(anns) + 1, "image_id": q["id"], "category_id": 1, "iscrowd": crowd,
                             "segmentation": rle_json(m), "bbox": xywh(m), "area": float(m.sum())})
        path = root / GOLD.format(name) if len(names) > 1 else root / f"single_{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [{"id": 1, "name": "object"}]}))
        paths.append(path)
    return paths


def perturbed_predictions(queries: list[dict], seed: int = 0) -> list[dict]:
    """COCO results: truth shifted by a few pixels, some dropped or duplicated, spurious masks on
    negatives, scores spread over [0.1, 1] so some fall below the 0.5 threshold."""
    rng = np.random.default_rng(seed)
    preds = []
    for n, q in enumerate(queries):
        h, w = q["image"]["height"], q["image"]["width"]
        masks = []
        for m in q["masks"]:
            if rng.random() < 0.15:
                continue  # missed
            dy, dx = rng.integers(-6, 7, size=2)
            masks.append(np.roll(m, (int(dy), int(dx)), axis=(0, 1)))
            if rng.random() < 0.1:
                masks.append(np.roll(m, 15, axis=1))  # a duplicate
        if not q["masks"] and rng.random() < 0.5 or rng.random() < 0.2:
            spurious = np.zeros((h, w), bool)
            y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
            spurious[y:y + 40, x:x + 40] = True
            masks.append(spurious)
        for m in masks:
            preds.append({"image_id": q["id"], "category_id": 1, "segmentation": rle_json(m), "bbox": xywh(m),
                          "score": float(rng.uniform(0.1, 1.0))})
    return preds
