"""COCO / LVIS scoring (sam_bench.metrics.coco) and COCO results files (sam_bench.data.coco_results):
streamed per-image evaluation equals the reference libraries' global runs; hand-computed AR on a
small case; results-file reading.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from coco_builders import CATEGORIES, build_real_dataset, global_cocoeval, global_lvis_eval, rle_json
from sam_bench.data.coco_results import PerImageResults, iter_json_array, load_detections
from sam_bench.errors import DataError
from sam_bench.metrics.coco import ProposalRecall, SegmEvaluator, image_ground_truth


def perturbed_results(data: dict, seed: int, extra_per_image: int = 3) -> list[dict]:
    """Detections that make AP non-trivial: shifted / eroded / dilated GT masks, wrong categories,
    false positives, and tied scores."""
    rng = np.random.default_rng(seed)
    by_image = {im["id"]: im for im in data["images"]}
    out = []
    for ann in data["annotations"]:
        im = by_image[ann["image_id"]]
        h, w = im["height"], im["width"]
        seg = ann["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else \
            {"size": seg["size"], "counts": seg["counts"].encode()}
        mask = mask_utils.decode(rle)
        op = rng.integers(4)
        if op == 1:
            mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
        elif op == 2:
            mask = cv2.dilate(mask, np.ones((9, 9), np.uint8))
        elif op == 3:
            mask = np.roll(mask, int(rng.integers(-15, 15)), axis=1)
        cat = ann["category_id"] if rng.random() > 0.15 else int(rng.integers(1, 4))
        score = float(np.round(rng.uniform(0.1, 1.0), 1))  # rounded: ties across images
        out.append({"image_id": im["id"], "category_id": cat, "segmentation": rle_json(mask.astype(bool)),
                    "score": score, "bbox": [0, 0, 1, 1]})
    for im in data["images"]:
        for _ in range(extra_per_image):
            mask = np.zeros((im["height"], im["width"]), bool)
            y, x = rng.integers(0, im["height"] - 40), rng.integers(0, im["width"] - 40)
            mask[y:y + int(rng.integers(3, 40)), x:x + int(rng.integers(3, 40))] = True
            out.append({"image_id": im["id"], "category_id": int(rng.integers(1, 4)),
                        "segmentation": rle_json(mask), "score": float(np.round(rng.uniform(0, 1), 1))})
    return out


def streamed(evaluator, dataset, results: list) -> list:
    """Per-image records, as the tasks produce them (GT from the reader's samples)."""
    by_image: dict = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    records = []
    for i in range(len(dataset)):
        sample = dataset.get(i)
        image, anns = image_ground_truth(sample)
        rec = evaluator.evaluate_image(image, anns, by_image.get(image["id"], []))
        records.append((image["id"], json.loads(json.dumps(rec))))  # as stored in progress records
    return records


# --------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def real_coco(tmp_path_factory, grabcut_root, bsds_root):
    from sam_bench.data.readers.coco import CocoDataset

    root = tmp_path_factory.mktemp("coco_real")
    built = build_real_dataset(root, grabcut_root, bsds_root, lvis=False,
                               annotations="annotations/instances_val2017.json", images="val2017")
    return built, CocoDataset(root, "annotations/instances_val2017.json", "val2017", crowd="keep")


@pytest.fixture(scope="module")
def real_lvis(tmp_path_factory, grabcut_root, bsds_root):
    from sam_bench.data.readers.coco import CocoDataset

    root = tmp_path_factory.mktemp("lvis_real")
    built = build_real_dataset(root, grabcut_root, bsds_root, lvis=True,
                               annotations="annotations/lvis_v1_val.json", images=".")
    return built, CocoDataset(root, "annotations/lvis_v1_val.json", ".", crowd="keep")


def test_streamed_coco_ap_equals_global_cocoeval(real_coco):
    built, dataset = real_coco
    results = perturbed_results(built["data"], seed=0)
    ev = SegmEvaluator(built["data"]["categories"], lvis=False)
    metrics = ev.summarize(streamed(ev, dataset, results))
    ref = global_cocoeval(built["data"], results)
    expected = dict(zip(["AP", "AP50", "AP75", "APs", "APm", "APl"], ref.stats[:6]))
    assert 0.1 < expected["AP"] < 0.9  # a non-trivial case
    assert metrics == {k: float(v) for k, v in expected.items() if v > -1}


def test_streamed_lvis_ap_equals_global_lvis_eval(real_lvis, monkeypatch):
    built, dataset = real_lvis
    results = perturbed_results(built["data"], seed=1, extra_per_image=6)
    ev = SegmEvaluator(built["data"]["categories"], lvis=True, max_dets=12)  # truncation is exercised
    metrics = ev.summarize(streamed(ev, dataset, results))
    ref = global_lvis_eval(built["data"], results, max_dets=12, monkeypatch=monkeypatch)
    expected = {k: float(ref[k]) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
                if ref[k] > -1}
    assert 0.05 < expected["AP"] < 0.9 and {"APr", "APc", "APf"} <= set(expected)
    assert metrics == expected


def test_bbox_in_results_does_not_change_mask_areas(real_coco):
    """pycocotools takes a detection's area from its bbox when one is given: we must not."""
    built, dataset = real_coco
    results = perturbed_results(built["data"], seed=2)
    for r in results:
        r["bbox"] = [0.0, 0.0, 2000.0, 2000.0]  # a box area that would make every detection "large"
    ev = SegmEvaluator(built["data"]["categories"], lvis=False)
    assert ev.summarize(streamed(ev, dataset, results)) == ev.summarize(
        streamed(ev, dataset, [{k: v for k, v in r.items() if k != "bbox"} for r in results]))


def rect(h: int, w: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


def test_proposal_recall_hand_computed_two_images():
    # image 1 (40x40): A (100 px, f), B (100 px, c), C (50 px, r); image 2 (80x80): D (1600 px, f), E (800 px, c)
    A, B, C = rect(40, 40, (0, 10), (0, 10)), rect(40, 40, (20, 30), (20, 30)), rect(40, 40, (0, 5), (30, 40))
    D, E = rect(80, 80, (10, 50), (10, 50)), rect(80, 80, (70, 80), (0, 80))
    gt_data = {"images": [{"id": 1, "height": 40, "width": 40}, {"id": 2, "height": 80, "width": 80}],
               "categories": [{"id": i, "name": n, "frequency": f} for i, n, f in CATEGORIES], "annotations": []}
    for image_id, masks in ((1, [(A, 1), (B, 2), (C, 3)]), (2, [(D, 1), (E, 2)])):
        for m, cat in masks:
            gt_data["annotations"].append({"id": len(gt_data["annotations"]) + 1, "image_id": image_id,
                                           "category_id": cat, "segmentation": rle_json(m), "area": float(m.sum()),
                                           "bbox": [float(v) for v in mask_utils.toBbox(mask_utils.encode(
                                               np.asfortranarray(m.astype(np.uint8))))], "iscrowd": 0})
    proposals = [  # IoU with its object: A 1.0, B .72, D .7125, E .8333; plus a miss and a duplicate
        (1, A, 0.9), (1, rect(40, 40, (20, 29), (20, 28)), 0.8), (1, rect(40, 40, (30, 40), (0, 10)), 0.95),
        (1, A, 0.1), (2, rect(80, 80, (10, 40), (10, 48)), 0.5), (2, rect(80, 80, (68, 80), (0, 80)), 0.7)]
    results = [{"image_id": i, "category_id": 1, "segmentation": rle_json(m), "score": s} for i, m, s in proposals]
    # matched objects per IoU threshold .50 .55 .60 .65 .70 | .75 .80 | .85 .90 .95:
    # all: A B D E | A E | A;  small (A B C E): A B E | A E | A;  medium (D): D | - | -
    # frequent (A D): A D | A | A;  common (B E): B E | E | -;  rare (C): none
    expected = {"AR@1000": (5 * 4 + 2 * 2 + 3 * 1) / 50, "AR@1000_small": (5 * 3 + 2 * 2 + 3 * 1) / 40,
                "AR@1000_medium": 5 / 10, "AR@1000_frequent": (5 * 2 + 2 + 3) / 20,
                "AR@1000_common": (5 * 2 + 2) / 20, "AR@1000_rare": 0.0}
    recall = ProposalRecall(gt_data["categories"])
    by_image = {1: [], 2: []}
    for r in results:
        by_image[r["image_id"]].append(r)
    records = []
    for im in gt_data["images"]:
        anns = [a for a in gt_data["annotations"] if a["image_id"] == im["id"]]
        records.append(recall.evaluate_image(im, anns, by_image[im["id"]]))
    metrics = recall.summarize(records)
    assert metrics.keys() == expected.keys()  # no large objects: AR@1000_large is undefined, left out
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(v, abs=1e-12), k
    # and pycocotools on both images at once agrees (class-agnostic: useCats=0, maxDets=[1000])
    ref = global_cocoeval(gt_data, results, useCats=0, maxDets=[1000])
    for a, name in enumerate(["AR@1000", "AR@1000_small", "AR@1000_medium"]):
        assert metrics[name] == pytest.approx(float(np.mean(ref.eval["recall"][:, 0, a, 0])), abs=1e-12)


def test_proposal_recall_breakdowns_pick_the_right_objects(real_lvis):
    """Proposals = exactly the rare objects, then exactly the small ones: each breakdown is 1 or 0."""
    built, dataset = real_lvis
    anns = built["data"]["annotations"]
    recall = ProposalRecall(built["data"]["categories"])

    def run(keep) -> dict:
        results = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                    "segmentation": image_ground_truth_segm(dataset, a)} for a in anns if keep(a)]
        return recall.summarize([r for _, r in streamed(recall, dataset, results)])

    rare = run(lambda a: a["category_id"] == 3)
    n_rare = sum(a["category_id"] == 3 for a in anns)
    assert (rare["AR@1000_rare"], rare["AR@1000_common"], rare["AR@1000_frequent"]) == (1.0, 0.0, 0.0)
    assert rare["AR@1000"] == pytest.approx(n_rare / len(anns), abs=1e-12)
    small = run(lambda a: a["area"] < 32 ** 2)
    n_small = sum(a["area"] < 32 ** 2 for a in anns)
    assert 0 < n_small < len(anns) and any(a["area"] > 96 ** 2 for a in anns)
    assert (small["AR@1000_small"], small["AR@1000_medium"], small["AR@1000_large"]) == (1.0, 0.0, 0.0)
    assert small["AR@1000"] == pytest.approx(n_small / len(anns), abs=1e-12)


def image_ground_truth_segm(dataset, ann) -> dict:
    sample = dataset.get(dataset.image_ids().index(str(ann["image_id"])))
    obj = next(o for o in sample.objects if o.extra["annotation_id"] == ann["id"])
    return rle_json(obj.mask)


def test_proposal_recall_avoids_lvis_truncation_and_category_traps(real_lvis):
    """1200 proposals whose matching ones rank last, all labelled with one category absent from
    the json: lvis-api would keep 300 and drop them all; AR@1000 counts what the top 1000 find."""
    built, dataset = real_lvis
    sample = dataset.get(2)  # a BSDS image with 14 regions
    image, anns = image_ground_truth(sample)
    junk = rle_json(np.zeros((sample.height, sample.width), bool))
    results = [{"image_id": image["id"], "category_id": 999, "segmentation": junk, "score": 1.0}] * 900
    results += [{"image_id": image["id"], "category_id": 999, "segmentation": rle_json(o.mask), "score": 0.5}
                for o in sample.objects]
    results += [{"image_id": image["id"], "category_id": 999, "segmentation": junk, "score": 0.1}] * 300
    recall = ProposalRecall(built["data"]["categories"])
    assert recall.summarize([recall.evaluate_image(image, anns, results)])["AR@1000"] == 1.0


def test_iter_json_array_streams_across_chunk_borders(tmp_path):
    records = [{"image_id": i, "category_id": 1, "bbox": [i, 2.5, 3e-3, 1e5], "score": 0.123456789 * i,
                "note": "x, ] { \"y\""} for i in range(200)]
    path = tmp_path / "r.json"
    path.write_text(" \n[ " + " ,\n".join(json.dumps(r) for r in records) + " ]\n")
    for chunk in (7, 64, 1 << 20):
        assert list(iter_json_array(path, chunk_size=chunk)) == records
    (tmp_path / "empty.json").write_text("[]")
    assert list(iter_json_array(tmp_path / "empty.json")) == []


@pytest.mark.parametrize("content, message", [
    ('{"annotations": []}', "not a JSON array of detections"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, {"image_id": 1', "truncated"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, {"image_id": 2, "bbox": [0, 0, 1, 1], '
     '"score": 1}]', "record 1: missing category_id"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}]', "record 0: bbox must be"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}]', "record 0: score must be"),
    ('[{"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 0.5}]', "category_id 5 is not a category"),
])
def test_bad_detections_file_names_file_and_record(tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        load_detections(path, {1, 2})
    assert str(path) in str(err.value)


def test_detection_index_groups_by_image_keeping_file_order(tmp_path):
    recs = [{"image_id": 7, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5},
            {"image_id": 3, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [9, 10, 11, 12], "score": 0.7}]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(recs))
    index = load_detections(path, {1, 2})
    boxes, cats, scores = index.for_image(7)
    assert boxes.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12]] and cats.tolist() == [2, 1]
    assert scores.tolist() == [0.5, 0.7] and index.for_image(5)[0].shape == (0, 4) and len(index) == 3


def test_per_image_results_merge(tmp_path):
    store = PerImageResults(tmp_path / "predictions")
    store.write(2, [{"image_id": 2, "score": 0.5}])
    store.write(1, [])
    store.write(3, [{"image_id": 3, "score": 0.1}, {"image_id": 3, "score": 0.2}])
    assert store.merge([1, 2, 3], tmp_path / "predictions.json") == 3
    assert [r["image_id"] for r in json.loads((tmp_path / "predictions.json").read_text())] == [2, 3, 3]
    assert not (tmp_path / "predictions").exists()
    assert store.merge([1, 2, 3], tmp_path / "predictions.json") is None  # already merged: kept
