"""cgF1 scoring of the `concepts` task: equal to SAM 3's own `CGF1Evaluator` (sam3 wheel) on SA-Co-format
files built from real COCO masks (three annotators, negatives, crowd regions, perturbed predictions),
hand-computed cases, and the one-line errors of a malformed predictions file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from concept_builders import GOLD, annotator_files, coco_queries, perturbed_predictions, rle_json
from sam_bench.config import RunConfig
from sam_bench.data.concepts import TruthMask
from sam_bench.data.readers.saco import SacoDataset
from sam_bench.errors import DataError
from sam_bench.metrics.cgf1 import PredictedMask, accumulate, score_query
from sam_bench.runner import run
from sam_bench.tasks.concepts.predictions import _checked_rle, compressed_runs


@pytest.fixture(scope="module")
def official():
    try:
        from sam3.eval.cgf1_eval import CGF1Evaluator
    except ImportError as exc:
        pytest.skip(f"sam3 (SAM 3's wheel, with its CGF1Evaluator) is not installed: {exc}")
    return CGF1Evaluator


@pytest.fixture(scope="module")
def queries(shared_data: Path) -> list[dict]:
    return coco_queries(shared_data / "coco_mini")


@pytest.fixture(scope="module")
def gold_root(tmp_path_factory, queries) -> Path:
    root = tmp_path_factory.mktemp("saco_gold")
    annotator_files(queries, root, ["a", "b", "c"])
    return root


def official_metrics(evaluator_cls, gt_paths: list[Path], preds: list[dict], tmp: Path) -> dict[str, float]:
    """CGF1Evaluator's output under sam-bench's key names (positive_micro_F1 -> pmF1)."""
    path = tmp / "official_preds.json"
    path.write_text(json.dumps(preds))
    out = evaluator_cls([str(p) for p in gt_paths]).evaluate(str(path))
    return {k.removeprefix("cgF1_eval_segm_").replace("positive_micro_F1", "pmF1"): v for k, v in out.items()}


def ours(dataset: SacoDataset, preds: list[dict], crowd: str = "official") -> dict[str, float]:
    by_query: dict[str, list[PredictedMask]] = {}
    for p in preds:
        by_query.setdefault(str(p["image_id"]), []).append(PredictedMask(_checked_rle(p["segmentation"], "-"), p["score"]))
    records = [score_query(q.truths, by_query.get(q.query_id, []), crowd)
               for i in range(len(dataset)) for q in dataset.get(i).extra["concept_queries"] if q.exhaustive]
    return accumulate(records)


def test_three_annotators_equal_official_end_to_end(official, gold_root, queries, tmp_path):
    """`run --task concepts --dataset saco_gold --split metaclip --predictions P`: every metric of
    metrics.json equals CGF1Evaluator's on the same three files (oracle, exhaustive-only, crowd dropped)."""
    preds = perturbed_predictions(queries, seed=1)
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(preds))
    run(RunConfig(task="concepts", dataset="saco_gold", split="metaclip", data_root=str(gold_root),
                  out=str(tmp_path / "out"), options={"predictions": str(path)}))
    got = json.loads((tmp_path / "out" / "concepts" / "saco_gold" / "metrics.json").read_text())
    expected = official_metrics(official, [gold_root / GOLD.format(k) for k in "abc"], preds, tmp_path)
    assert {k: got[k] for k in expected} == expected  # exact: same operations in the same order
    assert got["queries"] + got["queries_excluded"] == len(queries) and got["queries_excluded"] > 0
    assert 0 < got["cgF1"] < 1 and got["queries_negative"] > 0


@pytest.mark.parametrize("seed", [2, 3])
def test_single_annotator_equals_official(official, queries, tmp_path, seed):
    paths = annotator_files(queries, tmp_path, ["a"])
    preds = perturbed_predictions(queries, seed=seed)
    dataset = SacoDataset(tmp_path, [paths[0].name])
    assert ours(dataset, preds) == official_metrics(official, paths, preds, tmp_path)


def test_crowd_ignore_removes_predictions_inside_crowd_regions():
    """A correct prediction on a crowd region: the official rule counts it as a false positive of a
    negative query; `ignore` takes it out of the count (a true negative)."""
    crowd = np.zeros((20, 20), bool)
    crowd[2:12, 2:12] = True
    inside = crowd.copy()
    inside[2:12, 7:12] = False
    truth = [[TruthMask(_rle(crowd), iscrowd=True)]]
    pred = [PredictedMask(_rle(inside), 0.9)]
    official_rule = score_query(truth, pred, "official")
    assert official_rule["il"] == "FP" and official_rule["fp"] == [1] * 10 and official_rule["crowd_dropped"] == 0
    ignored = score_query(truth, pred, "ignore")
    assert ignored["il"] == "TN" and ignored["crowd_dropped"] == 1


def _rle(mask: np.ndarray) -> dict:
    return _checked_rle(rle_json(mask), "-")


def _boxes(*boxes: tuple[int, int, int, int]) -> list[np.ndarray]:
    out = []
    for y0, x0, y1, x1 in boxes:
        m = np.zeros((32, 32), bool)
        m[y0:y1, x0:x1] = True
        out.append(m)
    return out


def test_hand_computed_mixed_case():
    """Positive query: 2 instances, one found exactly plus one spurious mask (TP 1, FP 1, FN 1 at every
    threshold); a negative query with a mask (IL FP); a negative without (IL TN); a mask scored 0.4 is
    dropped. IL: TP 1, FP 1, TN 1, FN 0 -> MCC = 1 / sqrt(2*1*2*1) = 0.5."""
    a, b, far = _boxes((0, 0, 10, 10), (20, 20, 30, 30), (0, 20, 8, 30))
    records = [score_query([[TruthMask(_rle(a)), TruthMask(_rle(b))]],
                           [PredictedMask(_rle(a), 0.9), PredictedMask(_rle(far), 0.6), PredictedMask(_rle(b), 0.4)]),
               score_query([[]], [PredictedMask(_rle(far), 0.7)]),
               score_query([[]], [])]
    assert records[0]["dropped"] == 1 and records[0]["tp"] == [1] * 10
    m = accumulate(records)
    assert m["IL_MCC"] == pytest.approx(1 / (2 + 1e-6))
    p = r = 1 / (2 + 1e-4)  # positive micro: TP 1, FP 1 (the positive query's), FN 1
    assert m["pmF1"] == pytest.approx(2 * p * r / (p + r + 1e-4), rel=1e-12)
    assert m["precision"] == pytest.approx(1 / (3 + 1e-4), rel=1e-12)  # the negative's FP counts here
    assert m["cgF1"] == pytest.approx(m["pmF1"] * m["IL_MCC"], rel=1e-12)
    assert m["IL_precision"] == pytest.approx(0.5, abs=1e-6) and m["IL_recall"] == pytest.approx(1, abs=1e-6)


def test_hand_computed_edge_runs():
    """All-negative query set, a perfect run, a run predicting nothing."""
    a, b = _boxes((0, 0, 10, 10), (20, 20, 30, 30))
    negatives = [score_query([[]], []) for _ in range(4)]
    m = accumulate(negatives)
    assert m["IL_MCC"] == 0 and m["cgF1"] == 0 and m["IL_FPR"] == 0  # no positive: MCC undefined -> 0
    positives = [[[TruthMask(_rle(a)), TruthMask(_rle(b))]], [[TruthMask(_rle(b))]]]
    perfect = [score_query(t, [PredictedMask(x.rle, 1.0) for x in t[0]]) for t in positives] + negatives
    m = accumulate(perfect)
    p = 3 / (3 + 1e-4)
    assert m["pmF1"] == pytest.approx(2 * p * p / (2 * p + 1e-4), rel=1e-12)
    assert m["IL_MCC"] == pytest.approx(8 / (8 + 1e-6), rel=1e-12)  # TP 2, TN 4
    assert m["cgF1"] == pytest.approx(1, abs=5e-4) and m["positive_macro_F1"] == pytest.approx(1, abs=5e-4)  # epsilons
    nothing = accumulate([score_query(t, []) for t in positives] + negatives)
    assert nothing["cgF1"] == 0 and nothing["IL_MCC"] == 0 and nothing["recall"] == 0 and nothing["IL_recall"] == 0
    assert "positive_macro_F1" not in nothing  # no positive query with a prediction: undefined (official: -1)


def test_oracle_keeps_the_best_annotator():
    a, b = _boxes((0, 0, 10, 10), (20, 20, 30, 30))
    truths = [[TruthMask(_rle(a)), TruthMask(_rle(b))], [TruthMask(_rle(a))], []]
    assert score_query(truths, [PredictedMask(_rle(a), 0.8)])["annotator"] == 1  # F1 1 beats 2/3
    assert score_query(truths, [])["annotator"] == 2  # a true negative wins


def test_compressed_runs_match_pycocotools():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((37, 23)) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        runs = compressed_runs(rle["counts"])
        assert runs.sum() == m.size and runs[1::2].sum() == m.sum()
    assert compressed_runs(b"") is None and compressed_runs(b"5") is not None


@pytest.fixture()
def one_query(tmp_path) -> tuple[Path, dict]:
    """A saco_gold layout with one query (id 7, 20x30 image) and one good prediction record."""
    mask = np.zeros((20, 30), bool)
    mask[2:9, 3:12] = True
    for k in "abc":
        path = tmp_path / GOLD.format(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "images": [{"id": 7, "file_name": "x.jpg", "height": 20, "width": 30, "text_input": "a cup",
                        "is_instance_exhaustive": 1, "is_pixel_exhaustive": 1}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": rle_json(mask),
                             "bbox": [3, 2, 9, 7], "area": 63}],
            "categories": [{"id": 1, "name": "object"}]}))
    return tmp_path, {"image_id": 7, "category_id": 1, "segmentation": rle_json(mask), "bbox": [3, 2, 9, 7],
                      "score": 0.9}


def _score_file(root: Path, records: list, tmp: Path, raw: str | None = None) -> dict:
    path = tmp / "preds.json"
    path.write_text(raw if raw is not None else json.dumps(records))
    run(RunConfig(task="concepts", dataset="saco_gold", split="metaclip", data_root=str(root),
                  out=str(tmp / "out"), options={"predictions": str(path)}, fresh=True))
    return json.loads((tmp / "out" / "concepts" / "saco_gold" / "metrics.json").read_text())


@pytest.mark.parametrize("change, message", [
    ({"image_id": 8}, r"preds\.json: record 1: image_id 8 is not a query of dataset 'saco_gold'$"),
    ({"segmentation": {"size": [20, 30], "counts": "!!"}}, r"record 1: bad RLE: compressed counts do not describe a 20x30 mask"),
    ({"segmentation": {"size": [20, 30], "counts": "5"}}, r"record 1: bad RLE: .*runs cover 5 pixels"),
    ({"score": float("nan")}, r"record 1: score must be a finite number; got nan$"),
    ({"segmentation": {"size": [21, 30], "counts": rle_json(np.zeros((21, 30), bool))["counts"]}},
     r"record 1: mask size \[21, 30\] differs from the size of query 7's image \[20, 30\]"),
    ({"score": None}, r"record 1: score must be a finite number; got None$"),
])
def test_malformed_predictions_are_named(one_query, tmp_path, change, message):
    root, good = one_query
    with pytest.raises(DataError, match=message) as err:
        _score_file(root, [good, {**good, **change}], tmp_path)
    assert "\n" not in str(err.value)


def test_predictions_file_perfect_and_missing_key(one_query, tmp_path):
    root, good = one_query
    metrics = _score_file(root, [good], tmp_path)
    assert metrics["cgF1"] == 0  # one positive query and no negative: IL_MCC is 0 by its formula
    p = 1 / (1 + 1e-4)  # TP 1 with the evaluator's epsilons
    assert metrics["pmF1"] == pytest.approx(2 * p * p / (2 * p + 1e-4), rel=1e-12) and metrics["queries"] == 1
    with pytest.raises(DataError, match=r"record 0: missing score \(needs image_id"):
        _score_file(root, [{k: v for k, v in good.items() if k != "score"}], tmp_path)
