"""Test helpers shared by the COCO / LVIS tests (metrics, instances, proposals): a COCO- or
LVIS-format dataset written from real GrabCut and BSDS500 masks, an oracle segmenter that answers
with the ground-truth mask of the prompt, and the reference libraries' global evaluations.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sam_bench.core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from sam_bench.models.base import PromptableSegmenter

GRABCUT = ["106024.jpg", "124080.jpg"]
BSDS = ["101085", "101087"]
CATEGORIES = [(1, "thing_f", "f"), (2, "thing_c", "c"), (3, "thing_r", "r")]


def rle_json(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def build_real_dataset(root: Path, grabcut_root: Path, bsds_root: Path, lvis: bool,
                       annotations: str, images: str) -> dict:
    """COCO (with one crowd region and one polygon) or LVIS v1 json from real GrabCut / BSDS masks.

    Images are copied unchanged; BSDS objects are the first annotator's regions (a partition of
    the image, so every pixel is in exactly one region); categories cycle over f / c / r.
    """
    image_dir = root / images
    (root / annotations).parent.mkdir(parents=True, exist_ok=True)
    imgs, anns, masks_by_image = [], [], {}
    sources = [("grabcut", n) for n in GRABCUT] + [("bsds", n) for n in BSDS]
    for image_id, (kind, name) in enumerate(sources, start=1):
        if kind == "grabcut":
            src = grabcut_root / "data_GT" / name
            trimap = cv2.imread(str(grabcut_root / "boundary_GT" / (Path(name).stem + ".bmp")), 0)
            masks = [trimap == 255]
        else:
            src = bsds_root / "images" / "val" / f"{name}.jpg"
            seg = scipy.io.loadmat(str(bsds_root / "groundTruth" / "val" / f"{name}.mat"))[
                "groundTruth"][0, 0]["Segmentation"][0, 0]
            masks = [seg == k for k in np.unique(seg)][:14]
        file_name = f"{image_id:012d}{src.suffix.lower()}"
        sub = "val2017/" if lvis else ""
        (image_dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, image_dir / sub / file_name)
        h, w = masks[0].shape
        rec = {"id": image_id, "height": h, "width": w}
        if lvis:
            rec.update(coco_url=f"http://images.cocodataset.org/val2017/{file_name}",
                       neg_category_ids=[3] if image_id == 1 else [],
                       not_exhaustive_category_ids=[2] if image_id == 3 else [])
        else:
            rec["file_name"] = file_name
        imgs.append(rec)
        masks_by_image[image_id] = []
        for k, mask in enumerate(masks):
            cat = CATEGORIES[(image_id + k) % 3][0] if kind == "bsds" else 1
            crowd = not lvis and kind == "bsds" and k == 1
            seg = rle_json(mask)
            if kind == "grabcut" and image_id == 2:  # one polygon annotation
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                seg = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
                mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "segmentation": seg,
                   "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)]}
            if not lvis:
                ann["iscrowd"] = int(crowd)
            anns.append(ann)
            if not crowd:
                masks_by_image[image_id].append((mask, cat, ann["bbox"]))
    cats = [{"id": i, "name": n, **({"frequency": f, "synonyms": [n]} if lvis else {})} for i, n, f in CATEGORIES]
    data = {"images": imgs, "annotations": anns, "categories": cats}
    (root / annotations).write_text(json.dumps(data))
    return {"json": root / annotations, "data": data, "masks": masks_by_image}


def image_key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


class OracleSegmenter(PromptableSegmenter):
    """Answers a box with the ground-truth mask whose box fits it best, a point with the ground-
    truth masks containing it (smallest first). Logits are +-10 at image size (stability 1)."""

    mask_threshold = 0.0
    cache_fingerprint = None

    def __init__(self, masks_by_key: dict[str, list[np.ndarray]]) -> None:
        self.masks = masks_by_key
        self.info = ModelInfo("oracle", untrained=False)
        self.calls: list[tuple[Prompts, bool]] = []

    @classmethod
    def for_dataset(cls, dataset) -> "OracleSegmenter":
        table = {}
        for i in range(len(dataset)):
            sample = dataset.get(i)
            table[image_key(sample.load_image())] = [o.mask for o in sample.objects if not o.extra.get("iscrowd")]
        return cls(table)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        masks = self.masks[image_key(image)]
        return ImageEmbedding(np.stack(masks), tuple(image.shape[:2]), tuple(image.shape[:2]))

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        self.calls.append((prompts, multimask))
        gt = embedding.features  # (K, H, W)
        outs = []
        boxes = []
        if prompts.boxes is not None:
            for m in gt:
                my, mx = np.nonzero(m)
                boxes.append((mx.min(), my.min(), mx.max() + 1, my.max() + 1))
        for b in range(len(prompts)):
            if prompts.boxes is not None:
                x0, y0, x1, y1 = prompts.boxes[b]
                fits = []
                for box in boxes:
                    inter = max(0, min(x1, box[2]) - max(x0, box[0])) * max(0, min(y1, box[3]) - max(y0, box[1]))
                    union = (x1 - x0) * (y1 - y0) + (box[2] - box[0]) * (box[3] - box[1]) - inter
                    fits.append(inter / union)
                chosen = [gt[int(np.argmax(fits))]]
            else:
                x, y = np.floor(prompts.points[b, 0]).astype(int)
                x, y = min(max(x, 0), gt.shape[2] - 1), min(max(y, 0), gt.shape[1] - 1)
                chosen = sorted((m for m in gt if m[y, x]), key=lambda m: m.sum())
                chosen = chosen or [np.zeros(gt.shape[1:], bool)]
            k = 3 if multimask else 1
            chosen = (chosen * k)[:k]
            outs.append(np.stack(chosen))
        masks = torch.from_numpy(np.stack(outs))
        logits = torch.where(masks, 10.0, -10.0)
        return Decoded(logits, masks.flatten(2).any(-1).float())

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return low_res_logits


def global_cocoeval(gt_data: dict, results: list, **params) -> COCOeval:
    """The reference: one pycocotools run over all images (results without bbox, see sam_bench.metrics.coco)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_data))
        for ann in gt.dataset["annotations"]:
            ann.setdefault("iscrowd", 0)  # LVIS json has none; pycocotools needs it
        gt.createIndex()
        dt = gt.loadRes([{k: v for k, v in r.items() if k != "bbox"} for r in json.loads(json.dumps(results))])
        ev = COCOeval(gt, dt, "segm")
        for k, v in params.items():
            setattr(ev.params, k, v)
        ev.evaluate()
        ev.accumulate()
        if "maxDets" not in params:
            ev.summarize()
    return ev


def global_lvis_eval(gt_data: dict, results: list, max_dets: int, monkeypatch):
    from lvis import LVIS, LVISEval, LVISResults

    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 needs the NumPy<1.24 alias
    gt = LVIS.__new__(LVIS)
    gt.logger = logging.getLogger("lvis")
    gt.dataset = json.loads(json.dumps(gt_data))
    gt._create_index()
    dt = LVISResults(gt, [{k: v for k, v in r.items() if k != "bbox"} for r in json.loads(json.dumps(results))],
                     max_dets=max_dets)
    ev = LVISEval(gt, dt, "segm")
    ev.run()
    return ev.results
