"""The edge evaluator against pyEdgeEval's own: same numbers, any number of processes, cached.

Real BSDS500 ground truth (all annotators), cropped to keep the matcher quick, with three kinds of
edge map: dense (Sobel), thin (soft Canny) and few-valued (4 levels, like a segmentation's
boundaries), so the threshold de-duplication is exercised too.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from sam_bench.errors import DataError
from sam_bench.metrics.bsds import (BoundaryEvalParams, EvalItem, EvalStats, evaluate_counts,
                                     recall_at_50, seeded_matching, summarize, threshold_groups)
from sam_bench.models.edge_baselines import SobelEdges, SoftCannyEdges

IDS = ("101085", "103070")
CROP = (slice(100, 200), slice(150, 290))  # 100 x 140
THRESHOLDS = 9


def write_bsds_mat(path: Path, boundaries: list[np.ndarray]) -> None:
    """A groundTruth .mat in the BSDS layout (cell of structs with Segmentation and Boundaries)."""
    cell = np.empty((1, len(boundaries)), dtype=object)
    for k, b in enumerate(boundaries):
        seg = (1 + b.astype(np.uint16))
        cell[0, k] = np.array([(seg, b.astype(np.uint8))], dtype=[("Segmentation", "O"), ("Boundaries", "O")])
    scipy.io.savemat(str(path), {"groundTruth": cell})


@pytest.fixture(scope="module")
def cropped(bsds_root: Path, tmp_path_factory) -> dict[str, list[EvalItem]]:
    """{'dense'|'thin'|'levels': EvalItems} over crops of two real val images and their truth."""
    from sam_bench.data.readers.bsds500 import read_bsds_mat

    out = tmp_path_factory.mktemp("bsds_crops")
    items: dict[str, list[EvalItem]] = {"dense": [], "thin": [], "levels": []}
    for image_id in IDS:
        truth = [b[CROP] for _, b in read_bsds_mat(bsds_root / "groundTruth" / "val" / f"{image_id}.mat")]
        mat = out / f"{image_id}.mat"
        write_bsds_mat(mat, truth)
        bgr = cv2.imread(str(bsds_root / "images" / "val" / f"{image_id}.jpg"))
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[CROP])
        sobel = SobelEdges().detect_edges(rgb)
        maps = {"dense": sobel, "thin": SoftCannyEdges().detect_edges(rgb), "levels": np.round(sobel * 3) / 3}
        for kind, edge in maps.items():
            png = out / kind / f"{image_id}.png"
            png.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(png), np.round(edge * 255).astype(np.uint8))
            items[kind].append(EvalItem(image_id, png, mat))
    return items


def pyedgeeval_reference(items: list[EvalItem], thresholds: int):
    """pyEdgeEval's own evaluation, single process (its calculate_metrics + BSDS per-image routine)."""
    from pyEdgeEval.common.binary_label import calculate_metrics
    from pyEdgeEval.datasets import bsds_eval_single

    samples = [dict(name=i.image_id, thresholds=thresholds, gt_path=str(i.ground_truth),
                    pred_path=str(i.prediction), scale=1.0, apply_thinning=True, apply_nms=False,
                    max_dist=0.0075) for i in items]
    with seeded_matching(1):
        return calculate_metrics(eval_single=bsds_eval_single, thresholds=thresholds, samples=samples, nproc=1)


@pytest.mark.parametrize("kind", ["dense", "thin", "levels"])
def test_metrics_equal_pyedgeeval(cropped, kind):
    items = cropped[kind]
    params = BoundaryEvalParams(thresholds=THRESHOLDS)
    stats = EvalStats()
    ours = summarize(evaluate_counts(items, params, workers=2, stats=stats), params.threshold_values())
    per_image, per_threshold, overall = pyedgeeval_reference(items, THRESHOLDS)
    pairs = {"ods": "ODS_f1", "ods_threshold": "ODS_threshold", "ods_recall": "ODS_recall",
             "ods_precision": "ODS_precision", "ois": "OIS_f1", "ois_recall": "OIS_recall",
             "ois_precision": "OIS_precision", "ap": "AP"}
    for ours_name, theirs in pairs.items():
        assert getattr(ours, ours_name) == pytest.approx(float(overall[theirs]), abs=1e-6), ours_name
    np.testing.assert_allclose(ours.recall, [t["recall"] for t in per_threshold], atol=1e-12)
    np.testing.assert_allclose(ours.precision, [t["precision"] for t in per_threshold], atol=1e-12)
    for mine, theirs in zip(ours.per_image, per_image):
        assert mine["ois_threshold"] == pytest.approx(theirs["threshold"])
        assert mine["ois_f"] == pytest.approx(theirs["f1"], abs=1e-12)
    assert 0 < ours.ods < 1 and 0 < ours.ois < 1
    if kind == "levels":  # 4 grey levels: 3 distinct binary maps per image, not 9
        assert (stats.maps_evaluated, stats.maps_total) == (6, 2 * THRESHOLDS)


def test_results_do_not_depend_on_the_number_of_processes(cropped):
    params = BoundaryEvalParams(thresholds=7)
    one = evaluate_counts(cropped["thin"], params, workers=1)
    three = evaluate_counts(cropped["thin"], params, workers=3)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


def test_threshold_groups_follow_the_grey_levels():
    edge = np.array([[0, 85], [170, 255]], np.uint8) / 255.0
    thresholds = BoundaryEvalParams().threshold_values()  # 0.01 ... 0.99
    groups = threshold_groups(edge, thresholds)
    assert [len(g) for g in groups] == [33, 33, 33]  # (0, 1/3], (1/3, 2/3], (2/3, 1)
    for group in groups:
        maps = {(edge >= thresholds[i]).tobytes() for i in group}
        assert len(maps) == 1


def test_a_perfect_prediction_has_precision_one(cropped, tmp_path):
    """Predicting annotator 0's own boundaries: every predicted pixel matches, at every threshold."""
    from sam_bench.metrics.bsds import load_ground_truth

    item = cropped["dense"][0]
    truth = load_ground_truth(item.ground_truth)
    png = tmp_path / "perfect.png"
    cv2.imwrite(str(png), (truth[0] > 0).astype(np.uint8) * 255)
    params = BoundaryEvalParams(thresholds=3)
    counts = evaluate_counts([EvalItem("perfect", png, item.ground_truth)], params, workers=1)[0]
    metrics = summarize([counts], params.threshold_values())
    np.testing.assert_array_equal(metrics.precision, 1.0)
    assert metrics.ods_precision == 1.0 and metrics.ois_precision == 1.0 and metrics.ap > 0.5


def test_cache_is_reused_and_invalidated(cropped, tmp_path, monkeypatch):
    import sam_bench.metrics.bsds as edges_module

    params = BoundaryEvalParams(thresholds=5)
    items = cropped["levels"]
    first = evaluate_counts(items, params, workers=1, cache_dir=tmp_path)

    def fail(*_):
        raise AssertionError("evaluated although cached")

    monkeypatch.setattr(edges_module, "_run_unit", fail)
    stats = EvalStats()
    again = evaluate_counts(items, params, workers=1, cache_dir=tmp_path, stats=stats)
    assert stats.cached_images == len(items)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="although cached"):  # other settings: not the cache's
        evaluate_counts(items, BoundaryEvalParams(thresholds=5, max_dist=0.01), workers=1, cache_dir=tmp_path)


def test_r50_equals_pyedgeeval_pr_code(cropped, tmp_path):
    from pyEdgeEval.common.binary_label import save_threshold_metrics
    from pyEdgeEval.visualization.pr_curve import _calc_r50, _load_threshold_data

    params = BoundaryEvalParams(thresholds=THRESHOLDS)
    m = summarize(evaluate_counts(cropped["thin"], params, workers=1), params.threshold_values())
    save_threshold_metrics(str(tmp_path), [dict(threshold=t, recall=r, precision=p, f1=f) for t, r, p, f in
                                            zip(m.thresholds, m.recall, m.precision, m.f1)])
    expected = float(_calc_r50(_load_threshold_data(str(tmp_path / "eval_bdry_thr.txt"))))
    assert m.r50 == pytest.approx(expected, abs=1e-5)  # the library's file keeps 6 decimals
    assert m.r50 == recall_at_50(m.thresholds, m.recall, m.precision, m.f1)


def test_seeded_matching_is_deterministic_and_restored(cropped):
    import pyEdgeEval.common.binary_label.evaluate_boundaries as boundaries
    from sam_bench.metrics.bsds import load_edge_map, load_ground_truth

    item = cropped["dense"][0]
    pred = load_edge_map(item.prediction) >= 0.1
    gt = load_ground_truth(item.ground_truth)[0]
    original = boundaries.correspond_pixels
    with seeded_matching(7):
        runs = [boundaries.correspond_pixels(pred, gt, max_dist=0.0075) for _ in range(3)]
    assert boundaries.correspond_pixels is original
    for m1, m2, cost, _ in runs[1:]:
        np.testing.assert_array_equal(m1, runs[0][0])
        np.testing.assert_array_equal(m2, runs[0][1])
        assert cost == runs[0][2]


def test_bad_inputs_name_the_file(cropped, tmp_path):
    item = cropped["thin"][0]
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="small.png.*ground truth"):
        evaluate_counts([EvalItem("x", small, item.ground_truth)], BoundaryEvalParams(thresholds=3), workers=1)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.zeros((100, 140), np.uint16))
    with pytest.raises(DataError, match="deep.png.*8-bit"):
        evaluate_counts([EvalItem("x", deep, item.ground_truth)], BoundaryEvalParams(thresholds=3), workers=1)
    broken = tmp_path / "broken.mat"
    broken.write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="broken.mat"):
        evaluate_counts([EvalItem("x", item.prediction, broken)], BoundaryEvalParams(thresholds=3), workers=1)
