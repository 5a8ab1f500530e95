"""Test helper shared by the RefCOCO reader and text-to-mask tests: a small RefCOCO-layout data
root written in the refer toolkit's native format (refs pickle + instances json + images).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np

H, W = 40, 60


def rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    """Polygon of the pixel rectangle [x0, x1) x [y0, y1) (pycocotools rasterises it exactly)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


# ann_id -> (image_id, category_id, pixel rectangle)
ANNOTATIONS = {11: (1, 1, (10, 5, 30, 15)), 12: (1, 2, (35, 20, 55, 35)), 13: (1, 1, (0, 30, 8, 40)),
               21: (2, 1, (5, 5, 25, 25)), 22: (2, 3, (30, 10, 50, 30))}
REFS = [  # ref_id, ann_id, split, [(sent_id, sentence)]
    (100, 11, "val", [(1001, "left box"), (1000, "the upper left one")]),
    (101, 12, "val", [(1002, "box on the right")]),
    (102, 21, "testA", [(1003, "square")]),
    (103, 22, "val", [(1004, "thing at right")]),
]


def write_refcoco(root: Path, folder: str = "refcoco", refs_name: str = "refs(unc).p", refs=REFS) -> Path:
    """A RefCOCO-layout data root: <folder>/refs(...).p, <folder>/instances.json, train2014/*.jpg."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "train2014").mkdir(exist_ok=True)
    images = []
    for image_id in (1, 2):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        pixels = np.full((H, W, 3), 40 * image_id, np.uint8)
        cv2.imwrite(str(root / "train2014" / name), pixels)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
    annotations = [{"id": ann_id, "image_id": im, "category_id": cat, "segmentation": rect(*box),
                    "area": float((box[2] - box[0]) * (box[3] - box[1])), "iscrowd": 0,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}
                   for ann_id, (im, cat, box) in ANNOTATIONS.items()]
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 2, "name": "dog", "supercategory": "animal"},
                  {"id": 3, "name": "traffic light", "supercategory": "outdoor"}]
    (root / folder / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    records = []
    for ref_id, ann_id, split, sentences in refs:
        image_id, category_id, _ = ANNOTATIONS[ann_id]
        records.append({
            "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": category_id,
            "split": split, "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
            "sent_ids": [s for s, _ in sentences],
            "sentences": [{"sent_id": s, "sent": text, "raw": text.capitalize() + ".", "tokens": text.split()}
                          for s, text in sentences]})
    with open(root / folder / refs_name, "wb") as f:
        pickle.dump(records, f, protocol=2)  # the toolkit's files are Python 2 pickles
    return root
