"""Task `proposals`: AMG proposals scored by class-agnostic mask AR@1000 (LVIS v1 layout, real masks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coco_builders import OracleSegmenter, build_real_dataset, global_cocoeval
from sam_bench.cli import main as cli_main
from sam_bench.config import RunConfig
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError
from sam_bench.runner import run
from sam_bench.tasks.proposals import ProposalsOptions, ProposalsTask, resolve_settings

LVIS_LAYOUT = {"annotations": "annotations/lvis_v1_val.json", "images": "."}
GRID = 10  # points per side in the oracle runs (every area bin keeps objects)


def grid_hits(mask: np.ndarray, n: int) -> bool:
    """Whether a point of SAM's n x n grid (cell centres) falls inside the mask."""
    h, w = mask.shape
    offsets = (np.arange(n) + 0.5) / n
    ys, xs = np.floor(offsets * h).astype(int), np.floor(offsets * w).astype(int)
    return bool(mask[np.ix_(ys, xs)].any())


@pytest.fixture(scope="module")
def lvis_root(tmp_path_factory, grabcut_root, bsds_root):
    """LVIS v1 layout; only objects a GRID x GRID point falls in (an oracle cannot find the others)."""
    root = tmp_path_factory.mktemp("lvis")
    built = build_real_dataset(root, grabcut_root, bsds_root, lvis=True, **LVIS_LAYOUT)
    data, h_w = built["data"], {im["id"]: (im["height"], im["width"]) for im in built["data"]["images"]}
    from pycocotools import mask as mask_utils

    def visible(ann) -> bool:
        seg = ann["segmentation"]
        h, w = h_w[ann["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else \
            {"size": seg["size"], "counts": seg["counts"].encode()}
        return grid_hits(mask_utils.decode(rle).astype(bool), GRID)

    data["annotations"] = [a for a in data["annotations"] if visible(a)]
    (root / LVIS_LAYOUT["annotations"]).write_text(json.dumps(data))
    areas = [a["area"] for a in data["annotations"]]
    assert min(areas) < 32 ** 2 and max(areas) > 96 ** 2 and len(areas) >= 15  # every breakdown is populated
    return root, built


def run_proposals(root: Path, out: Path, monkeypatch, oracle, seed: int = 0, **options) -> tuple[dict, list]:
    monkeypatch.setattr("sam_bench.runner.build_model", lambda cfg, device, cache=None: oracle)
    metrics = run(RunConfig(task="proposals", model="oracle", dataset="lvis_v1", data_root=str(root),
                            out=str(out), device="cpu", seed=seed, options=options))
    return metrics, json.loads((out / "proposals" / "lvis_v1" / "predictions.json").read_text())


def test_presets():
    paper = resolve_settings(ProposalsOptions())
    assert {k: paper[k] for k in ("points_per_side", "box_nms_thresh", "rank_by", "multimask", "max_masks",
                                  "crop_n_layers", "pred_iou_thresh", "stability_score_thresh")} == {
        "points_per_side": 64, "box_nms_thresh": 0.9, "rank_by": "mean_iou_stability", "multimask": True,
        "max_masks": 1000, "crop_n_layers": 0, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    single = resolve_settings(ProposalsOptions(preset="single_output"))
    assert (single["points_per_side"], single["box_nms_thresh"], single["rank_by"], single["multimask"]) == \
        (128, 0.95, "random", False)
    assert resolve_settings(ProposalsOptions(preset="single_output", points_per_side=8))["points_per_side"] == 8
    assert ProposalsTask(ProposalsOptions()).describe()["amg"]["points_per_side"] == 64
    for bad in ({"preset": "fast"}, {"rank_by": "area"}, {"points_per_side": 0}, {"box_nms_thresh": 1.5}):
        with pytest.raises(ConfigError):
            resolve_settings(ProposalsOptions(**bad))


def test_oracle_proposals_give_ar_1_with_every_breakdown(lvis_root, tmp_path, monkeypatch):
    root, _ = lvis_root
    oracle = OracleSegmenter.for_dataset(open_dataset("lvis_v1", str(root)))
    metrics, preds = run_proposals(root, tmp_path / "out", monkeypatch, oracle, points_per_side=GRID)
    names = ["AR@1000"] + [f"AR@1000_{s}" for s in ("small", "medium", "large", "frequent", "common", "rare")]
    assert {k: v for k, v in metrics.items() if "_ci_" not in k} == {n: 1.0 for n in names}
    assert all(metrics[f"{n}_ci_low"] == metrics[f"{n}_ci_high"] == 1.0 for n in names)  # every resample: 1
    assert {p["category_id"] for p in preds} == {1} and len({p["image_id"] for p in preds}) == 4
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Table 4" in report and "| SAM (paper, ViT-H) | 59.3 | 45.5 | 81.6 | 86.9 | 59.1 | 63.9 | 65.8 |" in report
    assert "| oracle | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in report


def test_single_output_random_ranking_is_seeded(lvis_root, tmp_path, monkeypatch):
    root, _ = lvis_root
    oracle = OracleSegmenter.for_dataset(open_dataset("lvis_v1", str(root)))
    opts = {"preset": "single_output", "points_per_side": GRID, "max_masks": 20}
    m1, p1 = run_proposals(root, tmp_path / "a", monkeypatch, oracle, seed=0, **opts)
    assert all(single is False for _, single in oracle.calls)  # one mask per point
    m2, p2 = run_proposals(root, tmp_path / "b", monkeypatch, oracle, seed=0, **opts)
    m3, p3 = run_proposals(root, tmp_path / "c", monkeypatch, oracle, seed=1, **opts)
    assert p1 == p2 and m1 == m2 and p1 != p3
    per_image: dict = {}
    for p in p1:
        per_image.setdefault(p["image_id"], []).append(p["score"])
    assert all(scores == [(len(scores) - r) / len(scores) for r in range(len(scores))]  # rank order
               for scores in per_image.values())
    assert 0 < m1["AR@1000"] < 1


def test_cli_proposals_tiny_on_lvis_layout(lvis_root, tmp_path, capsys):
    root, built = lvis_root
    out = tmp_path / "O"
    rc = cli_main(["run", "--task", "proposals", "--model", "tiny", "--dataset", "lvis_v1", "--data-root", str(root),
                   "--out", str(out), "--limit", "1", "--points-per-side", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    task_dir = out / "proposals" / "lvis_v1"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    preds = json.loads((task_dir / "predictions.json").read_text())
    assert 0 < len(preds) <= 12 and {p["image_id"] for p in preds} == {1}
    assert all(set(p) == {"image_id", "category_id", "segmentation", "score"} for p in preds)
    data = json.loads((root / LVIS_LAYOUT["annotations"]).read_text())
    ref = global_cocoeval(data, preds, useCats=0, maxDets=[1000], imgIds=[1])
    assert metrics["AR@1000"] == pytest.approx(float(np.mean(ref.eval["recall"][:, 0, 0, 0])), abs=1e-12)
    run_json = json.loads((out / "run.json").read_text())["tasks"]["proposals/lvis_v1"]
    assert run_json["task_options"]["amg"]["points_per_side"] == 2
    assert "Table 4" in (out / "report.md").read_text()
