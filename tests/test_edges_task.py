"""The `edges` task end to end: files written, metrics equal pyEdgeEval's BSDS500 evaluator run on
the saved edge maps, the mask pipeline's plumbing, and clear errors."""
from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from sam_bench.cli import main
from sam_bench.config import RunConfig
from sam_bench.data.images import read_rgb
from sam_bench.core.edge_maps import edge_nms, mask_edge_map, normalize_edges, to_uint8
from sam_bench.errors import ConfigError, DataError
from sam_bench.metrics.bsds import seeded_matching
from sam_bench.models.edge_baselines import SobelEdges
from sam_bench.runner import run


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_cli_run_matches_pyedgeeval_bsds_evaluator(synthetic_roots, tmp_path, capsys):
    from pyEdgeEval.evaluators.bsds import BSDS500Evaluator
    from pyEdgeEval.visualization.pr_curve import _calc_r50, _load_threshold_data

    root = synthetic_roots["demo_bsds"]
    out = tmp_path / "O"
    code = main(["run", "--task", "edges", "--model", "sobel", "--dataset", "demo_bsds", "--data-root", str(root),
                 "--split", "val", "--out", str(out), "--limit", "2", "--thresholds", "7", "--eval-workers", "2"])
    assert code == 0
    task_dir = out / "edges" / "demo_bsds"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    assert {"ODS", "OIS", "AP", "R50"} <= set(metrics) and metrics["images"] == 2

    # The saved maps are the model's maps, as uint8 PNGs named by image id.
    ids = ["synthetic_000", "synthetic_001"]
    for image_id in ids:
        saved = read_png(task_dir / "edge_maps" / f"{image_id}.png")
        image = read_rgb(root / "images" / "val" / f"{image_id}.jpg")
        np.testing.assert_array_equal(saved, to_uint8(SobelEdges().detect_edges(image)))

    # pyEdgeEval's own evaluator on the same files gives the same numbers.
    evaluator = BSDS500Evaluator(dataset_root=str(root), pred_root=str(task_dir / "edge_maps"), split="val")
    evaluator.set_sample_names([f"val/{i}" for i in ids])
    evaluator.set_eval_params(apply_thinning=True, apply_nms=False, max_dist=0.0075)
    with seeded_matching(1):
        theirs = evaluator.evaluate(thresholds=7, nproc=1, save_dir=str(tmp_path / "pee"), no_split_dir=True)
    for ours, key in (("ODS", "ODS_f1"), ("OIS", "OIS_f1"), ("AP", "AP"), ("ODS_threshold", "ODS_threshold"),
                      ("ODS_recall", "ODS_recall"), ("OIS_precision", "OIS_precision")):
        assert metrics[ours] == pytest.approx(float(theirs[key]), abs=1e-6), ours
    r50 = float(_calc_r50(_load_threshold_data(str(tmp_path / "pee" / "eval_bdry_thr.txt"))))
    assert metrics["R50"] == pytest.approx(r50, abs=1e-5)

    # items.csv: per-image F at the OIS threshold equals the library's per-image file.
    items = pd.read_csv(task_dir / "items.csv", dtype={"image_id": str})
    per_image = pd.read_csv(tmp_path / "pee" / "eval_bdry_img.txt", sep=r"\s+", header=None,
                            names=["name", "threshold", "recall", "precision", "f1"])
    assert list(items["image_id"]) == ids
    np.testing.assert_allclose(items["ois_f"], per_image["f1"], atol=1e-6)
    np.testing.assert_allclose(items["ois_threshold"], per_image["threshold"], atol=1e-6)
    assert ((items["ods_f"] > 0) & (items["ods_f"] <= items["ois_f"] + 1e-9)).all()
    assert (items["annotators"] == 2).all()

    curve = pd.read_csv(task_dir / "pr_curve.csv")
    assert len(curve) == 7 and read_png(task_dir / "pr_curve.png").ndim == 3
    stats = json.loads((task_dir / "edge_eval.json").read_text())
    assert stats["maps_total"] == 14 and stats["workers"] == 2
    record = json.loads((out / "run.json").read_text())["tasks"]["edges/demo_bsds"]
    assert record["task_options"]["boundary"] == "outer" and record["task_options"]["thresholds"] == 7
    report = (out / "report.md").read_text()
    # synthetic val images: the paper's BSDS500 test rows are not put beside them
    assert "Sobel filter (paper)" not in report and "(paper" not in report.split("## Zero-shot edge")[1]
    assert f"| sobel (synthetic data) [demo_bsds val, 2 images] | {format(metrics['ODS'], '.3f')[1:]} |" in report


def test_real_bsds_image_with_all_annotators(bsds_root, tmp_path):
    metrics = run(RunConfig(task="edges", model="canny", dataset="bsds500", data_root=str(bsds_root),
                            split="val", out=str(tmp_path), limit=1, options={"thresholds": 2, "eval_workers": 1}))
    task_dir = tmp_path / "edges" / "bsds500"
    items = pd.read_csv(task_dir / "items.csv", dtype={"image_id": str})
    image_id = items["image_id"][0]
    assert read_png(task_dir / "edge_maps" / f"{image_id}.png").shape in ((321, 481), (481, 321))
    assert items["annotators"][0] >= 4  # BSDS500: 4-9 annotators, all used
    assert 0.3 < metrics["ODS"] < 0.95 and 0 < metrics["R50"] <= 1


def test_edge_detectors_take_precedence_over_masks(synthetic_roots, tmp_path):
    """felzenszwalb is also a promptable segmenter; the edge task uses its own edge map."""
    from sam_bench.models.felzenszwalb import build_felzenszwalb_model

    root = synthetic_roots["demo_bsds"]
    metrics = run(RunConfig(task="edges", model="felzenszwalb", dataset="demo_bsds", data_root=str(root),
                            out=str(tmp_path), limit=1, options={"thresholds": 5, "eval_workers": 1}))
    assert "masks_per_image" not in metrics
    image = read_rgb(root / "images" / "val" / "synthetic_000.jpg")
    saved = read_png(tmp_path / "edges" / "demo_bsds" / "edge_maps" / "synthetic_000.png")
    np.testing.assert_array_equal(saved, to_uint8(build_felzenszwalb_model().detect_edges(image)))


# -- the mask pipeline, with a stand-in generator of hand-built masks ----------------------------------

@dataclass
class StandInGenerator:
    """Returns K hand-built square masks as low-res logits, like AutomaticMaskGenerator would."""

    segmenter: object
    settings: object
    seen: dict = field(default_factory=dict)

    def generate(self, image, embedding=None, rng=None):
        logits = torch.full((40, 1, 256, 256), -8.0)
        for k in range(40):  # 40 masks: two upsampling chunks
            y, x = 20 + 4 * (k % 8), 20 + 5 * (k // 8)
            logits[k, 0, y:y + 60 + k, x:x + 50] = 6.0 + k / 10
        self.seen.update(image=image, embedding=embedding, logits=logits)
        return types.SimpleNamespace(records=[{}] * 40, low_res_logits=logits, embedding=embedding)


def test_mask_pipeline_plumbing(synthetic_roots, tmp_path, monkeypatch):
    made = {}

    def generator(segmenter, settings):
        made["generator"] = StandInGenerator(segmenter, settings)
        return made["generator"]

    fake = types.ModuleType("sam_bench.amg")
    fake.AmgSettings = lambda **kw: kw
    fake.AutomaticMaskGenerator = generator
    monkeypatch.setitem(sys.modules, "sam_bench.amg", fake)
    root = synthetic_roots["demo_bsds"]
    metrics = run(RunConfig(task="edges", model="tiny", dataset="demo_bsds", data_root=str(root), out=str(tmp_path),
                            limit=1, options={"thresholds": 5, "eval_workers": 1}))
    gen = made["generator"]
    assert gen.settings == {"points_per_side": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                            "box_nms_thresh": 0.7, "crop_n_layers": 0, "return_low_res_logits": True}
    assert metrics["masks_per_image"] == 40
    # Expected: upsample every mask to the image, Sobel on the outer ring, max, normalise, NMS, rescale.
    upsampled = gen.segmenter.upsample(gen.seen["embedding"], gen.seen["logits"])[:, 0].numpy()
    raw = mask_edge_map(upsampled)
    expected = normalize_edges(edge_nms(normalize_edges(raw, "minmax")), "max")
    saved = read_png(tmp_path / "edges" / "demo_bsds" / "edge_maps" / "synthetic_000.png")
    np.testing.assert_array_equal(saved, to_uint8(expected))
    assert saved.max() == 255
    # Edges only where some mask has its boundary (NMS smooths by at most a pixel or two).
    near = cv2.dilate((raw > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not saved[~near].any()


def test_real_generator_with_tiny_and_sam_checkpoint(synthetic_roots, small_checkpoint, tmp_path):
    pytest.importorskip("sam_bench.amg", reason="automatic mask generation (sam_bench/amg.py) not there yet")
    root = synthetic_roots["demo_bsds"]
    for model, checkpoint in (("tiny", None), ("sam", str(small_checkpoint))):
        out = tmp_path / model
        metrics = run(RunConfig(task="edges", model=model, checkpoint=checkpoint, dataset="demo_bsds",
                                data_root=str(root), out=str(out), limit=1,
                                options={"thresholds": 5, "eval_workers": 1, "points_per_side": 2}))
        assert 0 < metrics["masks_per_image"] <= 12  # 2x2 grid, 3 masks per point
        assert 0 <= metrics["ODS"] <= 1
        saved = read_png(out / "edges" / "demo_bsds" / "edge_maps" / "synthetic_000.png")
        assert saved.shape == (192, 256) and saved.dtype == np.uint8


def test_bad_options_and_data(synthetic_roots, tmp_path):
    root = synthetic_roots["demo_bsds"]
    with pytest.raises(ConfigError, match="boundary must be one of"):
        run(RunConfig(task="edges", model="sobel", dataset="demo_bsds", data_root=str(root), out=str(tmp_path),
                      options={"boundary": "sideways"}))
    with pytest.raises(ConfigError, match=r"unknown option --thresholdz; did you mean --thresholds\?"):
        run(RunConfig(task="edges", model="sobel", dataset="demo_bsds", data_root=str(root), out=str(tmp_path),
                      options={"thresholdz": 3}))
    with pytest.raises(DataError, match="no edge ground truth"):
        run(RunConfig(task="edges", model="sobel", dataset="demo", data_root=str(synthetic_roots["demo"]),
                      out=str(tmp_path / "coco"), limit=1))
