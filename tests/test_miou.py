"""Task `miou`: hand-computed box-model IoUs, the official SamPredictor for `tiny`, pycocotools'
size bins at exactly 32^2 and 96^2, crowd / empty exclusion, and the report section."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from segment_anything import SamPredictor

from coco_builders import rle_json
from sam_bench.cli import main
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError
from sam_bench.metrics.miou import size_bins
from sam_bench.prompts.clicks import next_click
from sam_bench.tasks.miou import MiouOptions
from sam_bench.tasks.miou.session import prompted_session
from test_boundary import reference_boundary_iou

H, W = 112, 128


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def hand_built_objects() -> list[tuple[np.ndarray, float, int]]:
    """(mask, IoU of its filled bounding box, crowd flag), hand-computed."""
    ell = _rect(2, 6, 2, 6)
    ell[2:4, 4:6] = False  # L shape: 12 pixels in a 4x4 box
    diag = np.zeros((H, W), bool)
    diag[np.arange(10, 15), np.arange(10, 15)] = True  # 5 pixels in a 5x5 box
    square32 = _rect(20, 52, 20, 52)  # area exactly 32^2
    square96 = _rect(8, 104, 30, 126)  # area exactly 96^2 (overlaps others: masks are independent)
    ring = _rect(60, 70, 60, 70) & ~_rect(62, 68, 62, 68)  # 100 - 36 = 64 pixels in a 10x10 box
    return [(ell, 12 / 16, 0), (diag, 5 / 25, 0), (square32, 1.0, 0), (square96, 1.0, 0), (ring, 0.64, 0),
            (_rect(0, 10, 100, 120), None, 1)]  # a crowd region: excluded


def write_coco(root: Path, objects: list[tuple[np.ndarray, float, int]], empty: int = 1) -> dict:
    """COCO val2017 layout: one image holding `objects` plus `empty` annotations with an empty mask."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "val2017" / "000000000001.png"), image)
    anns = []
    for k, (mask, _, crowd) in enumerate(objects + [(np.zeros((H, W), bool), None, 0)] * empty):
        ys, xs = np.nonzero(mask)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())] \
            if len(xs) else [0.0, 0.0, 0.0, 0.0]
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1 + k % 2, "segmentation": rle_json(mask),
                     "area": float(mask.sum()), "bbox": bbox, "iscrowd": crowd})
    data = {"images": [{"id": 1, "file_name": "000000000001.png", "height": H, "width": W}],
            "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return data


def test_box_model_gives_the_iou_of_the_filled_box(tmp_path):
    objects = hand_built_objects()
    write_coco(tmp_path / "coco", objects)
    out = tmp_path / "out"
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "coco", "--data-root",
                 str(tmp_path / "coco"), "--out", str(out), "--prompt", "box"]) == 0
    items = pd.read_csv(out / "miou" / "coco" / "items.csv")
    targets = [(m, iou) for m, iou, crowd in objects if not crowd]
    assert list(items.object_id) == [1, 2, 3, 4, 5]
    assert items.iou.tolist() == [iou for _, iou in targets]  # exact: hand-computed ratios
    boxes = []
    for mask, _ in targets:
        ys, xs = np.nonzero(mask)
        box = np.zeros_like(mask)
        box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        boxes.append(box)
    assert items.biou.tolist() == pytest.approx([reference_boundary_iou(m, b) for (m, _), b in zip(targets, boxes)],
                                                abs=1e-12)
    metrics = json.loads((out / "miou" / "coco" / "metrics.json").read_text())
    ious = [iou for _, iou in targets]
    # areas 12, 5, 1024, 9216, 64: 1024 is small and medium, 9216 medium and large (pycocotools)
    assert metrics["mIoU"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert metrics["mIoU_small"] == pytest.approx(np.mean([0.75, 0.2, 1.0, 0.64]), abs=1e-12)
    assert metrics["mIoU_medium"] == pytest.approx(1.0) and metrics["instances_medium"] == 2
    assert metrics["mIoU_large"] == pytest.approx(1.0) and metrics["instances_large"] == 1
    assert metrics["crowd_excluded"] == 1 and metrics["empty_excluded"] == 1 and metrics["instances"] == 5
    assert items["size"].tolist() == ["small", "small", "small+medium", "medium+large", "small"]
    cats = pd.read_csv(out / "miou" / "coco" / "categories.csv")
    assert cats.set_index("category_id").instances.to_dict() == {1: 3, 2: 2}
    report = (out / "report.md").read_text()
    assert "### mIoU (%) by object size (EfficientViT-SAM's layout)" in report
    # published rows name the checkpoint their numbers belong to, or say the source names none
    assert "| EfficientViT-SAM-XL1 (efficientvit_sam_xl1.pt) (published) | 79.9 | 83.7 | 82.2 | 75.8 |" in report
    assert "| MobileSAM (checkpoint not stated) (survey) | 73.4 |" in report
    assert f"| box | {100 * np.mean(ious):.1f} |" in report
    assert "| coco / box | 5 | 1 | 1 |" in report


def test_tiny_sam_box_matches_sam_predictor(tiny_model, synthetic_roots, tmp_path):
    out = tmp_path / "tiny"
    assert main(["run", "--task", "miou", "--model", "tiny", "--dataset", "demo", "--data-root",
                 str(synthetic_roots["demo"]), "--out", str(out), "--limit", "2", "--prompt", "box"]) == 0
    items = pd.read_csv(out / "miou" / "demo" / "items.csv")
    predictor = SamPredictor(tiny_model.model)
    dataset = open_dataset("demo", str(synthetic_roots["demo"]), limit=2)
    expected = []
    for i in range(len(dataset)):
        sample = dataset.get(i)
        predictor.set_image(sample.load_image())
        for obj in sample.objects:
            masks, scores, _ = predictor.predict(box=np.array(obj.box), multimask_output=True)
            mask = masks[int(np.argmax(scores))]
            expected.append((np.count_nonzero(mask & obj.mask) / np.count_nonzero(mask | obj.mask),
                             float(scores.max()), reference_boundary_iou(obj.mask, mask)))
    assert len(items) == len(expected) == 8
    assert items.iou.tolist() == pytest.approx([e[0] for e in expected], abs=1e-12)
    assert items.pred_iou.tolist() == pytest.approx([e[1] for e in expected], abs=1e-5)
    assert items.biou.tolist() == pytest.approx([e[2] for e in expected], abs=1e-12)


def test_center_clicks_match_efficientvit_sam_loop_with_sam_predictor(tiny_model, synthetic_roots):
    """--prompt center --clicks 2 equals EfficientViT-SAM's run_point: each round adds the RITM click
    against the previous mask and predicts with all clicks, multimask on, highest predicted IoU."""
    sample = open_dataset("demo", str(synthetic_roots["demo"]), limit=1).get(0)
    image, gts = sample.load_image(), [o.mask for o in sample.objects]
    boxes = np.array([o.box for o in sample.objects])
    embedding = tiny_model.encode(image)
    results = {choice: prompted_session(tiny_model, embedding, gts, boxes, None, "center", rounds, choice)
               for choice, rounds in (("predicted_iou", 2), ("oracle", 1))}
    predictor = SamPredictor(tiny_model.model)
    predictor.set_image(image)
    for gt, got in zip(gts, results["predicted_iou"]):
        clicks, mask = [], None
        for _ in range(2):
            click = next_click(gt, mask, None, [(c.x, c.y) for c in clicks])
            clicks.append(click)
            masks, scores, _ = predictor.predict(np.array([[c.x, c.y] for c in clicks], float),
                                                 np.array([int(c.positive) for c in clicks]), multimask_output=True)
            mask = masks[int(np.argmax(scores))]
        assert got.clicks == clicks
        assert got.ious[-1] == pytest.approx(np.count_nonzero(mask & gt) / np.count_nonzero(mask | gt), abs=1e-12)
        assert got.bious[-1] == pytest.approx(reference_boundary_iou(gt, mask), abs=1e-12)
    for best, argmax in zip(results["oracle"], results["predicted_iou"]):
        assert best.ious[0] >= argmax.ious[0]  # same first click: the oracle picks the best of the same 3
    with pytest.raises(ConfigError, match="prompt"):
        MiouOptions(prompt="corner")


def test_size_bins_match_pycocotools_at_the_bin_edges():
    """Annotations of area 1023, 1024, 1025, 9215, 9216, 9217: pycocotools' gtIgnore per area range."""
    areas = [1023.0, 1024.0, 1025.0, 9215.0, 9216.0, 9217.0]
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    gt = COCO()
    gt.dataset = {"images": [{"id": 1, "height": 8, "width": 8}], "categories": [{"id": 1, "name": "a"}],
                  "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "segmentation": rle_json(mask),
                                   "area": a, "bbox": [2, 2, 2, 2], "iscrowd": 0} for k, a in enumerate(areas)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "segmentation": rle_json(mask), "score": 1.0}])
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
    inside = {a: set() for a in areas}
    for entry, (label, rng) in zip(ev.evalImgs, zip(ev.params.areaRngLbl, ev.params.areaRng)):
        assert entry["aRng"] == rng
        for gt_id, ignored in zip(entry["gtIds"], entry["gtIgnore"]):
            if not ignored and label != "all":
                inside[areas[gt_id - 1]].add(label)
    assert inside[1024.0] == {"small", "medium"} and inside[9216.0] == {"medium", "large"}
    for area in areas:
        assert set(size_bins(area)) == inside[area], area


def test_void_pixels_are_excluded_from_iou_and_boundary_iou(tmp_path):
    """GrabCut layout: an L-shaped object whose missing corner is void (128). The filled box covers
    the L plus the void corner, so without void it is a perfect mask: IoU and boundary IoU 1."""
    (tmp_path / "data_GT").mkdir()
    (tmp_path / "boundary_GT").mkdir()
    cv2.imwrite(str(tmp_path / "data_GT" / "a.jpg"), np.full((40, 50, 3), 90, np.uint8))
    trimap = np.zeros((40, 50), np.uint8)
    trimap[10:30, 10:40] = 255
    trimap[10:20, 25:40] = 128  # the void corner
    cv2.imwrite(str(tmp_path / "boundary_GT" / "a.bmp"), trimap)
    out = tmp_path / "out"
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "grabcut", "--data-root",
                 str(tmp_path), "--out", str(out)]) == 0
    items = pd.read_csv(out / "miou" / "grabcut" / "items.csv")
    assert items.iou.tolist() == [1.0] and items.biou.tolist() == [1.0]
    l_shape, box = trimap == 255, np.zeros((40, 50), bool)
    box[10:30, 10:40] = True
    assert np.count_nonzero(l_shape) / np.count_nonzero(box) < 1.0  # what counting void would give


def test_random_and_box_center_prompts_with_an_oracle():
    """An oracle answering each prompt with its ground-truth mask: every prompt kind gives IoU 1;
    random clicks lie inside their object and repeat with the seed."""
    from coco_builders import OracleSegmenter, image_key

    objects = [m for m, _, crowd in hand_built_objects() if not crowd][:3]  # disjoint masks
    image = np.zeros((H, W, 3), np.uint8)
    model = OracleSegmenter({image_key(image): objects})
    embedding = model.encode(image)
    boxes = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                      for ys, xs in (np.nonzero(m) for m in objects)], np.float64)
    runs = [prompted_session(model, embedding, objects, boxes, None, "random", rng=np.random.default_rng(seed))
            for seed in (5, 5, 6)]
    for gt, res in zip(objects, runs[0]):
        (click,) = res.clicks
        assert gt[click.y, click.x] and click.positive and res.ious == [1.0] and res.bious == [1.0]
    assert [r.clicks for r in runs[0]] == [r.clicks for r in runs[1]] != [r.clicks for r in runs[2]]
    both = prompted_session(model, embedding, objects, boxes, None, "box+center", mask_choice="single")
    assert [r.ious for r in both] == [[1.0]] * 3
    prompts, multimask = model.calls[-1]
    assert prompts.boxes.shape == (3, 4) and prompts.points.shape == (3, 1, 2) and not multimask
