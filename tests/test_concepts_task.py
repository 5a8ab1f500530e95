"""The `concepts` task end to end: a stand-in ConceptSegmenter with known outputs on real COCO images
(coco_concepts), its predictions.json rescored with --predictions and by SAM 3's CGF1Evaluator; LVIS
queries (verified negatives, non-exhaustive positives left out); the report's SA-Co tables with a
partial subset set ("k of 7"); data check on an SA-Co layout."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils

from concept_builders import GOLD, annotator_files, coco_queries, perturbed_predictions
from sam_bench.config import RunConfig
from sam_bench.core.types import ModelInfo
from sam_bench.data.check import check_dataset
from sam_bench.data.concepts import coco_concept_queries
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError
from sam_bench.metrics.bootstrap import UNITS_FILE, UnitSample
from sam_bench.models.concepts import ConceptMasks, ConceptSegmenter
from sam_bench.registry import MODELS
from sam_bench.reporting.writer import build_report
from sam_bench.runner import run

NEGATIVES = 3


class KnownConcepts(ConceptSegmenter):
    """Answers from a table (image checksum, phrase) -> (masks, scores) that the test wrote."""

    source_label = "known stand-in"

    def __init__(self, table: dict) -> None:
        self.table = table
        self.info = ModelInfo("known_concepts", untrained=False)

    def segment_concepts(self, image, phrases):
        key = hashlib.sha1(image.tobytes()).hexdigest()
        out = []
        for phrase in phrases:
            masks, scores = self.table.get((key, phrase), ([], []))
            stack = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), bool)
            boxes = np.array([[0, 0, 1, 1]] * len(masks), np.float64).reshape(-1, 4)
            out.append(ConceptMasks(stack, np.asarray(scores, np.float64), boxes))
        return out


def known_answers(coco_root: Path) -> tuple[dict, list]:
    """Truth shifted by 3 px for positives (some missed), a square on some negatives, spread scores;
    also the queries, as the task builds them (seed 0)."""
    dataset = open_dataset("coco_concepts", str(coco_root))
    cats = {int(c["id"]): c["name"] for c in dataset.categories}
    rng = np.random.default_rng(5)
    table, queries = {}, []
    for i in range(len(dataset)):
        sample = dataset.get(i)
        key = hashlib.sha1(sample.load_image().tobytes()).hexdigest()
        for q in coco_concept_queries(sample, cats, NEGATIVES, 0, federated=False):
            queries.append((sample, q))
            masks = [np.roll(mask_utils.decode(t.rle).astype(bool), 3, axis=1) for t in q.truths[0]
                     if rng.random() > 0.2]
            if not q.positive and rng.random() < 0.4:
                square = np.zeros((sample.height, sample.width), bool)
                square[10:60, 10:60] = True
                masks.append(square)
            table[(key, q.phrase)] = (masks, list(rng.uniform(0.3, 1.0, len(masks))))
    return table, queries


@pytest.fixture()
def known_model(shared_data):
    table, queries = known_answers(shared_data / "coco_mini")
    MODELS.register("known_concepts", help="test stand-in")(lambda **kw: KnownConcepts(table))
    yield table, queries
    MODELS._entries.pop("known_concepts", None)


def test_stand_in_source_end_to_end(known_model, shared_data, tmp_path):
    out = tmp_path / "out"
    common = dict(task="concepts", dataset="coco_concepts", data_root=str(shared_data / "coco_mini"),
                  options={"negatives_per_image": NEGATIVES})
    metrics = run(RunConfig(model="known_concepts", out=str(out), **common))
    task_dir = out / "concepts" / "coco_concepts"
    preds = json.loads((task_dir / "predictions.json").read_text())
    table, queries = known_model
    assert len(preds) == sum(len(masks) for masks, _ in table.values()) > 0  # every mask, low scores too
    items = pd.read_csv(task_dir / "items.csv")
    assert len(items) == len(queries) == metrics["queries"]
    assert metrics["queries_negative"] == NEGATIVES * 5  # coco_mini: 5 images
    record = json.loads((out / "run.json").read_text())["tasks"]["concepts/coco_concepts"]
    assert record["task_options"]["source"] == "known stand-in"
    # the same file, scored as a predictions file: the same numbers
    rescored = run(RunConfig(out=str(tmp_path / "rescored"), **{**common, "options": {
        **common["options"], "predictions": str(task_dir / "predictions.json")}}))
    assert {k: rescored[k] for k in metrics} == metrics
    assert 0 < metrics["cgF1"] < metrics["cgF1@0.5"] <= 1
    # queries as bootstrap units: every query drawn once gives metrics.json exactly (the same
    # accumulation); the seeded 95% intervals (1000 resamples) hold the point values
    units = UnitSample.from_json(json.loads((task_dir / UNITS_FILE).read_text()))
    assert (units.unit, units.ids) == ("query", list(items.query_id))
    headline = ("cgF1", "cgF1@0.5", "cgF1@0.75", "pmF1", "IL_MCC")
    assert units.evaluate(np.arange(len(units.ids))) == {m: metrics[m] for m in headline}
    shuffled = np.random.default_rng(1).permutation(len(units.ids))
    assert units.evaluate(shuffled) == pytest.approx({m: metrics[m] for m in headline}, rel=1e-12)
    for m in headline:
        assert metrics[f"{m}_ci_low"] <= metrics[m] <= metrics[f"{m}_ci_high"]
        assert metrics[f"{m}_ci_low"] < metrics[f"{m}_ci_high"]
    assert units.intervals(1000, 0) == {k: v for k, v in metrics.items() if "_ci_" in k}  # seed 0: reproduced


def test_stand_in_source_equals_official(known_model, tmp_path, shared_data):
    """The run's predictions.json scored by CGF1Evaluator against the run's queries written as an
    SA-Co json gives the run's metrics."""
    try:
        from sam3.eval.cgf1_eval import CGF1Evaluator
    except ImportError as exc:
        pytest.skip(f"sam3 is not installed: {exc}")
    out = tmp_path / "out"
    metrics = run(RunConfig(task="concepts", model="known_concepts", dataset="coco_concepts", out=str(out),
                            data_root=str(shared_data / "coco_mini"), options={"negatives_per_image": NEGATIVES}))
    images, anns = [], []
    for sample, q in known_model[1]:
        images.append({"id": q.query_id, "file_name": "-", "height": sample.height, "width": sample.width,
                       "text_input": q.phrase, "is_instance_exhaustive": 1})
        for t in q.truths[0]:
            anns.append({"id": len(anns) + 1, "image_id": q.query_id, "category_id": 1, "iscrowd": int(t.iscrowd),
                         "segmentation": {"size": t.rle["size"], "counts": t.rle["counts"].decode()},
                         "area": float(mask_utils.area(t.rle)), "bbox": list(mask_utils.toBbox(t.rle))})
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}))
    preds = json.loads((out / "concepts" / "coco_concepts" / "predictions.json").read_text())
    pred_path = tmp_path / "preds.json"
    pred_path.write_text(json.dumps([{**p, "category_id": 1} for p in preds]))  # SA-Co's single category
    official = CGF1Evaluator(str(gt)).evaluate(str(pred_path))
    expected = {k.removeprefix("cgF1_eval_segm_").replace("positive_micro_F1", "pmF1"): v for k, v in official.items()}
    assert {k: metrics[k] for k in expected} == expected


def test_lvis_queries_use_verified_negatives(shared_data, tmp_path):
    """lvis_concepts on the LVIS v0.5 sample, scored from a predictions file of the exact truth (no
    image read): negatives are the images' neg_category_ids, positives of not_exhaustive_category_ids
    are left out; a perfect file gives IL_MCC ~1 and pmF1 ~1."""
    root = shared_data / "lvis_v05_sample"
    data = json.loads((root / "lvis_v0.5_val.json").read_text())
    dataset = open_dataset("lvis_concepts", str(root), "val_v0.5")
    assert dataset.metadata["format"] == "lvis"
    preds = []
    for ann in data["annotations"]:
        image = next(im for im in data["images"] if im["id"] == ann["image_id"])
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"]))
        preds.append({"image_id": f"{ann['image_id']}_{ann['category_id']}", "score": 0.9,
                      "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(preds))
    metrics = run(RunConfig(task="concepts", dataset="lvis_concepts", split="val_v0.5", data_root=str(root),
                            out=str(tmp_path / "out"), options={"predictions": str(path)}))
    negatives = sum(len(im["neg_category_ids"]) for im in data["images"])
    not_exhaustive = sum(len(set(im["not_exhaustive_category_ids"]) & {a["category_id"] for a in data["annotations"]
                                                                        if a["image_id"] == im["id"]})
                         for im in data["images"])
    positives = len({(a["image_id"], a["category_id"]) for a in data["annotations"]})
    assert metrics["queries_negative"] == negatives
    assert metrics["queries_excluded"] == not_exhaustive > 0
    assert metrics["queries_positive"] == positives - not_exhaustive
    assert metrics["IL_MCC"] == pytest.approx(1, abs=1e-5) and metrics["pmF1"] == pytest.approx(1, abs=5e-4)
    assert metrics["predictions_not_scored"] > 0  # the non-exhaustive positives' masks, counted not hidden


def test_report_says_k_of_7_and_shows_published_rows(shared_data, tmp_path):
    queries = coco_queries(shared_data / "coco_mini")
    root = tmp_path / "saco_gold"
    paths = annotator_files(queries, root, ["a", "b", "c"])
    for subset in ("sa1b", "crowded"):  # the same files standing in for two more subsets
        for k, p in zip("abc", paths):
            (root / GOLD.replace("metaclip", subset).format(k)).write_text(p.read_text())
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(perturbed_predictions(queries)))
    out = tmp_path / "out"
    for subset in ("metaclip", "sa1b", "crowded"):
        run(RunConfig(task="concepts", dataset="saco_gold", split=subset, data_root=str(root), out=str(out),
                      name=f"concepts_gold_{subset}", options={"predictions": str(preds)}))
    run(RunConfig(task="concepts", dataset="saco_gold", split="metaclip", data_root=str(root), out=str(out),
                  name="concepts_gold_metaclip_crowd_ignore", options={"predictions": str(preds), "crowd": "ignore"}))
    report = build_report([out], out)
    assert "predictions (preds.json) [crowd ignore] | " in report and "crowd ignore (predictions inside" in report
    assert "3 of 7" in report and "SAM 3 (published)" in report and "| 54.1 | 0.82 | 66.1 |" in report
    assert "crowd official" in report and "predictions file" in report
    line = next(x for x in report.splitlines() if x.startswith("| predictions"))
    metrics = json.loads((out / "concepts_gold_metaclip" / "saco_gold" / "metrics.json").read_text())
    assert f"{100 * metrics['cgF1']:.1f}" in line
    # the evidence table: the headline metrics with their 95% intervals over queries
    assert "| dataset / run | data | cgF1 | cgF1@0.5 | cgF1@0.75 | pmF1 | IL_MCC |" in report
    assert "percentile bootstrap over querys" not in report and "percentile bootstrap over queries" in report
    cell = f"{100 * metrics['cgF1']:.1f} [{100 * metrics['cgF1_ci_low']:.1f}, {100 * metrics['cgF1_ci_high']:.1f}]"
    mcc = f"{metrics['IL_MCC']:.2f} [{metrics['IL_MCC_ci_low']:.2f}, {metrics['IL_MCC_ci_high']:.2f}] |"  # as SAM 3: -1..1
    assert any(x.startswith("| saco_gold / ") and cell in x and x.endswith(mcc) and " queries" in x
               for x in report.splitlines())


def test_data_check_names_missing_files(shared_data, tmp_path):
    queries = coco_queries(shared_data / "coco_mini")
    annotator_files(queries, tmp_path, ["a", "b", "c"])
    lines: list[str] = []
    assert check_dataset("saco_gold", str(tmp_path), "metaclip", out=lines.append) == 1
    assert any("image files missing" in x and "metaclip-images/000000011813.jpg" in x for x in lines)
    lines.clear()
    assert check_dataset("saco_gold", str(tmp_path), "sa1b", out=lines.append) == 1
    assert any("gold_sa1b_merged_a_test.json: SA-Co annotation file not found" in x for x in lines)


def test_unknown_crowd_rule_is_refused(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="crowd of task 'concepts'"):
        run(RunConfig(task="concepts", dataset="coco_concepts", data_root=str(shared_data / "coco_mini"),
                      out=str(tmp_path), options={"predictions": "x.json", "crowd": "sometimes"}))
