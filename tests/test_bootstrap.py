"""Bootstrap intervals and paired comparisons (metrics/bootstrap.py, reporting/evidence.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sam_bench.config import RunConfig
from sam_bench.metrics.bootstrap import (UNITS_FILE, UnitSample, bootstrap_ci, paired_difference, percentile_interval,
                                         resample_indices, stratified_mean)
from sam_bench.runner import run, run_fingerprint


def test_interval_is_the_percentiles_of_seeded_resample_means():
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.05, 0.6])
    means = [values[i].mean() for i in resample_indices(len(values), 200, seed=3)]
    expected = tuple(np.percentile(means, [2.5, 97.5]))
    assert bootstrap_ci(list(values), np.mean, n=200, seed=3) == pytest.approx(expected, abs=1e-15)
    sample = UnitSample("object", [f"o{k}" for k in range(len(values))], "mean", {"mIoU": list(values)})
    assert sample.intervals(200, 3) == pytest.approx({"mIoU_ci_low": expected[0], "mIoU_ci_high": expected[1]})
    assert sample.intervals(200, 4) != sample.intervals(200, 3)  # the seed matters, and only the seed
    assert percentile_interval(np.array([np.nan, np.nan])) == (None, None)


def test_ratio_statistic_and_stratified_mean():
    # per image [union, intersection]: cIoU = sum I / sum U over the drawn images
    ciou = UnitSample("image", ["a", "b"], "ratio", {"cIoU": [[10, 5], [30, 3]]})
    assert ciou.evaluate(np.array([0, 1])) == {"cIoU": pytest.approx(8 / 40)}
    assert ciou.evaluate(np.array([0, 0])) == {"cIoU": pytest.approx(0.5)}
    # a mean over two datasets: each resampled within itself, the replicates averaged
    one = UnitSample("object", ["x", "y"], "mean", {"m": [0.2, 0.4]})
    two = UnitSample("object", ["x", "y", "z"], "mean", {"m": [0.9, 0.9, 0.9]})
    value, low, high = stratified_mean([one, two], "m", 500, 0)
    assert value == pytest.approx((0.3 + 0.9) / 2)
    assert (low, high) == pytest.approx(((0.2 + 0.9) / 2, (0.4 + 0.9) / 2))  # the extremes are drawn


def test_paired_difference_on_common_units_only():
    a = UnitSample("image", ["1", "2", "3"], "mean", {"m": [0.5, 0.7, 0.9]})
    b = UnitSample("image", ["3", "2", "9"], "mean", {"m": [0.8, 0.7, 0.0]})
    d = paired_difference(a, b, 300, 0)["m"]
    assert (d.common, d.only_a, d.only_b) == (2, 1, 1)
    assert d.value == pytest.approx(((0.7 + 0.9) - (0.7 + 0.8)) / 2)
    assert paired_difference(a, UnitSample("image", ["7"], "mean", {"m": [1.0]}), 300, 0) == {}  # nothing shared
    # the same units: the runs' stored replicates (units.json) give exactly the recomputed difference
    c = UnitSample("image", ["1", "2", "3"], "mean", {"m": [0.4, 0.7, 0.2]})
    recomputed = paired_difference(a, c, 300, 5)["m"]
    a.keep_replicates(300, 5)
    c.keep_replicates(300, 5)
    stored = paired_difference(UnitSample.from_json(a.to_json()), UnitSample.from_json(c.to_json()), 300, 5)["m"]
    assert (stored.value, stored.low, stored.high) == (recomputed.value, recomputed.low, recomputed.high)
    np.testing.assert_array_equal(stored.replicates, recomputed.replicates)


def test_resampled_ap_equals_the_libraries_accumulate(synthetic_roots, tmp_path):
    """The vectorised accumulation equals COCOeval / LVISEval's own on resampled record sets."""
    from sam_bench.metrics.coco import SegmEvaluator
    from sam_bench.metrics.coco_resample import ResampledAP

    root = synthetic_roots["demo"]
    metrics = run(RunConfig(task="instances", model="box", dataset="demo", data_root=str(root), out=str(tmp_path),
                            device="cpu", ci=50, options={"detections": str(root / "detections.json")}))
    assert metrics["AP_ci_low"] <= metrics["AP"] <= metrics["AP_ci_high"]
    units = json.loads((tmp_path / "instances" / "demo" / UNITS_FILE).read_text())
    records, categories = units["data"]["records"], units["params"]["categories"]
    assert len(records) == 4
    draws = [np.arange(4)] + list(resample_indices(4, 15, seed=1))
    for lvis, max_dets in ((True, 300), (False, 100), (False, 300)):
        library = SegmEvaluator(categories, lvis, max_dets)
        fast = ResampledAP(records, lvis, categories, max_dets)
        for index in draws:  # listed in image order: see test_resampled_ap_is_the_libraries_accumulation
            expected = library.summarize([(k, records[i]) for k, i in enumerate(np.sort(index))])
            assert fast(index) == expected, (lvis, max_dets, index)
        assert fast(np.arange(4))["AP50"] > 0.1  # the box baseline matches something


def _synthetic_records(lvis: bool, n_images: int, ties: bool) -> tuple[list[dict], list[dict]]:
    """Per-image match records of small generated scenes, from the libraries' own matching: boxes
    with jittered detections (matches at many IoUs) and background ones; `ties` rounds the scores to
    one decimal, so detections of a category share scores across and within images."""
    from pycocotools import mask as mask_utils

    from sam_bench.metrics.coco import SegmEvaluator

    rng = np.random.default_rng(3)
    categories = [{"id": k + 1, "name": f"c{k}", "frequency": "rcf"[k % 3]} for k in range(6)]
    evaluator = SegmEvaluator(categories, lvis)

    def box(x, y, w, h):
        m = np.zeros((48, 64), np.uint8)
        m[max(0, y):y + h, max(0, x):x + w] = 1
        return mask_utils.encode(np.asfortranarray(m))

    records = []
    for image_id in range(1, n_images + 1):
        anns, results = [], []
        for k in range(rng.integers(1, 5)):
            w, h, cat = int(rng.integers(3, 40)), int(rng.integers(3, 30)), int(rng.integers(1, 7))
            x, y = int(rng.integers(0, 64 - w)), int(rng.integers(0, 48 - h))
            rle = box(x, y, w, h)
            anns.append({"id": k + 1, "image_id": image_id, "category_id": cat, "segmentation": rle,
                         "area": float(mask_utils.area(rle)), "iscrowd": 0, "bbox": list(mask_utils.toBbox(rle))})
            for _ in range(rng.integers(1, 4)):
                dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
                results.append((box(x + dx, y + dy, w, h), cat, rng.uniform(0.3, 1.0)))
        for _ in range(rng.integers(2, 9)):
            results.append((box(*(int(v) for v in rng.integers(0, 40, 2)), *(int(v) for v in rng.integers(3, 24, 2))),
                            int(rng.choice([a["category_id"] for a in anns])), rng.uniform(0.05, 0.6)))
        image = {"id": image_id, "height": 48, "width": 64, "neg_category_ids": [], "not_exhaustive_category_ids": []}
        records.append(evaluator.evaluate_image(image, anns, [
            {"image_id": image_id, "category_id": c, "segmentation": rle,
             "score": round(s, 1) if ties else float(np.float32(s))} for rle, c, s in results]))
    return categories, records


@pytest.mark.parametrize("lvis", [False, True], ids=["coco", "lvis"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct_scores", "tied_scores"])
def test_resampled_ap_is_the_libraries_accumulation(lvis, ties):
    """The interpolated precisions of every resample are bit-identical to the libraries' accumulate,
    on the all-resamples-at-once path and on the per-resample path that tied scores need; the batched
    metrics equal the libraries' summarize up to summation order."""
    from sam_bench.metrics.coco import SegmEvaluator
    from sam_bench.metrics.coco_resample import ResampledAP

    categories, records = _synthetic_records(lvis, 40, ties)
    evaluator = SegmEvaluator(categories, lvis)
    fast = ResampledAP(records, lvis, categories, evaluator.max_dets)
    # scores tied within an image send a category to the per-resample path; distinct ones keep
    # every category off it
    assert any(c.exact_only for c in fast.cats) == ties
    draws = [np.arange(40)] + list(resample_indices(40, 8, seed=1))
    for index, batched in zip(draws, fast.many(draws)):
        # a resample is a multiset of images: it is listed in image order (the libraries' order
        # depends on the listing only where scores tie)
        index = np.sort(index)
        library = evaluator.accumulate([(k, records[i]) for k, i in enumerate(index)])
        expected = library.eval["precision"] if lvis else library.eval["precision"][..., -1]
        drawn_cats = library.params.cat_ids if lvis else library.params.catIds
        ours = fast.precision(index)
        np.testing.assert_array_equal(ours[:, :, [fast.cat_ids.index(c) for c in drawn_cats]], expected)
        assert (ours[:, :, [k for k, c in enumerate(fast.cat_ids) if c not in drawn_cats]] == -1).all()
        summary = evaluator.summarize([(k, records[i]) for k, i in enumerate(index)])
        assert fast(index) == summary
        assert batched == pytest.approx(summary, abs=1e-12)
        assert batched["AP50"] > 0.2


def test_edge_statistic_equals_summarize(synthetic_roots, tmp_path):
    from sam_bench.metrics.bsds import summarize

    run(RunConfig(task="edges", model="sobel", dataset="demo_bsds", data_root=str(synthetic_roots["demo_bsds"]),
                  out=str(tmp_path), device="cpu", ci=20, options={"thresholds": 9, "eval_workers": 1}))
    sample = UnitSample.from_json(json.loads((tmp_path / "edges" / "demo_bsds" / UNITS_FILE).read_text()))
    counts = [np.asarray(c) for c in sample.data["counts"]]
    for index in [np.arange(len(counts))] + list(resample_indices(len(counts), 5, seed=2)):
        expected = summarize([counts[i] for i in index], np.asarray(sample.params["thresholds"])).headline()
        got = sample.evaluate(index)
        assert got == {m: pytest.approx(expected[m], abs=1e-12, nan_ok=True) for m in got}


def test_best_interpolated_f1_is_pyedgeeval_ods():
    """The array form of interpolated_max_scores gives the library's best F to the last bit."""
    from pyEdgeEval.common.metrics import interpolated_max_scores

    from sam_bench.metrics.bsds import best_interpolated_f1

    rng = np.random.default_rng(5)
    for n in (1, 2, 9, 99):
        recall = np.sort(rng.uniform(0, 1, n))[::-1].copy()
        precision = np.sort(rng.uniform(0, 1, n))
        precision[rng.uniform(size=n) < 0.2] = 0.0  # thresholds where nothing is kept
        expected = interpolated_max_scores(np.linspace(0, 1, n), recall, precision)[3]
        assert best_interpolated_f1(recall, precision) == expected


def test_ci_is_part_of_the_run_identity_and_off_gives_no_interval(synthetic_roots, tmp_path):
    on, off = RunConfig(task="point", model="tiny", dataset="demo"), RunConfig(task="point", model="tiny",
                                                                               dataset="demo", ci=0)
    device = torch.device("cpu")
    assert run_fingerprint(on, {}, {}, {}, False, device) != run_fingerprint(off, {}, {}, {}, False, device)
    metrics = run(RunConfig(task="point", model="felzenszwalb", dataset="demo", ci=0, device="cpu", out=str(tmp_path),
                            data_root=str(synthetic_roots["demo"]), options={"max_clicks": 2}))
    assert not [k for k in metrics if "_ci_" in k] and "mIoU@1" in metrics


@pytest.fixture(scope="module")
def grabcut_runs(grabcut_root, tmp_path_factory) -> dict[str, Path]:
    """The tiny model, 1 click, on GrabCut: the first 2 images twice, and the first 50."""
    from sam_bench.cli import main

    base = tmp_path_factory.mktemp("grabcut_runs")  # one embedding cache: 50 encoder passes in all
    runs = {}
    for name, limit in (("two", 2), ("two_again", 2), ("fifty", 50)):
        out = base / name
        assert main(["run", "--task", "point", "--model", "tiny", "--dataset", "grabcut", "--data-root",
                     str(grabcut_root), "--out", str(out), "--limit", str(limit), "--device", "cpu",
                     "--max-clicks", "1", "--label", name, "--ci", "200", "--workers", "0", "--cache-dir", str(base / "cache")]) == 0
        runs[name] = out
    return runs


def test_identical_runs_differ_by_exactly_zero(grabcut_runs, tmp_path):
    from sam_bench import report

    a, b = (UnitSample.from_json(json.loads((grabcut_runs[n] / "point" / "grabcut" / UNITS_FILE).read_text()))
            for n in ("two", "two_again"))
    for d in paired_difference(a, b, 200, 0).values():
        assert d.value == d.low == d.high == 0.0 and d.contains_zero
    text = report([grabcut_runs["two"], grabcut_runs["two_again"]], tmp_path / "same.md").read_text()
    # 1 click: mIoU@1 and NoC@90 (no mIoU@5)
    assert ("| grabcut: two_again − two | all 2 objects (the same in both) | +0.0 [+0.0, +0.0] ○ | "
            "+0.00 [+0.00, +0.00] ○ |") in text


def test_runs_over_different_images_are_compared_on_the_common_ones(grabcut_runs, tmp_path):
    from sam_bench import report

    record = json.loads((grabcut_runs["fifty"] / "run.json").read_text())["tasks"]["point/grabcut"]
    assert record["images"] == 50 and record["images_available"] == 50
    speed = record["speed"]
    assert speed["images_timed"] == 50 and speed["encoder_images_per_second"] > 0 and speed["peak_memory_bytes"] > 0
    assert speed["device_type"] == "cpu" and speed["device_name"]
    text = report([grabcut_runs["two"], grabcut_runs["fifty"]], tmp_path / "cmp.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| grabcut: fifty − two |"))
    assert "only the 2 objects both evaluated (fifty: 50, two: 2; the others are left out)" in row
    two = json.loads((grabcut_runs["two"] / "point" / "grabcut" / "metrics.json").read_text())
    fifty = UnitSample.from_json(json.loads((grabcut_runs["fifty"] / "point" / "grabcut" / UNITS_FILE).read_text()))
    on_two = fifty.subset(fifty.ids[:2]).evaluate(np.arange(2))["mIoU@1"]
    assert f"| {100 * (on_two - two['mIoU@1']):+.1f} [" in row  # the difference on those 2, not on all 50
    assert "first 2 of 50 images (--limit 2)" in text and "first 50 of 50 images (--limit 50)" in text
