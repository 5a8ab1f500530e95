"""The `point` task end to end (command line, real GrabCut files, demo data) and its report section."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sam_bench.cli import main
from sam_bench.reporting.entry import ReportEntry
from sam_bench.tasks.point.task import PointTask
from sam_bench.taskdefs import expand

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["mIoU@1", "mIoU@2", "mIoU@3", "mIoU@5", "mIoU@9", "oracle_mIoU@1", "NoC@85", "NoC@90", "NoF@90"]
COLUMNS = ["image_id", "object_id", "click", "x", "y", "positive", "iou", "iou_oracle"]


def check_outputs(out: Path, n_images: int, max_clicks: int) -> dict:
    task_dir = out / "point" / "grabcut"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    assert all(name in metrics for name in METRICS if not name.startswith("mIoU@") or int(name[5:]) <= max_clicks)
    assert metrics["objects"] == n_images and metrics["max_clicks"] == max_clicks
    items = pd.read_csv(task_dir / "items.csv")
    assert set(COLUMNS) <= set(items.columns)
    first = items[items.click == 1]
    assert len(first) == n_images and first.iou_oracle.notna().all() and (first.iou_oracle >= first.iou).all()
    assert items[items.click > 1].iou_oracle.isna().all()
    # metrics.json is the mean of the per-click IoUs in items.csv (objects here never stop early).
    assert metrics["mIoU@1"] == pytest.approx(first.iou.mean(), abs=1e-12)
    assert metrics["mBIoU@1"] == pytest.approx(first.biou.mean(), abs=1e-12)
    assert (task_dir / "miou_curve.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## Point-prompted valid masks" in report and "point/grabcut/miou_curve.png)" in report
    assert f"| grabcut | {100 * metrics['mIoU@1']:.1f} | {100 * metrics['oracle_mIoU@1']:.1f} |" in report
    return metrics


def test_cli_felzenszwalb_on_grabcut(grabcut_root, tmp_path, capsys):
    # In-process `main` is what run_bench.py calls (it saves a ~10 s interpreter start on CI).
    out = tmp_path / "felz"
    assert main(["run", "--task", "point", "--model", "felzenszwalb", "--dataset", "grabcut",
                 "--data-root", str(grabcut_root), "--out", str(out), "--limit", "3"]) == 0
    metrics = check_outputs(out, 3, 20)
    assert metrics["mIoU@9"] > metrics["mIoU@1"]  # clicks on the errors help a real segmenter
    assert "NoC@90" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["tiny", "sam"])
def test_cli_sam_models_on_grabcut(model, grabcut_root, small_checkpoint, tmp_path):
    out = tmp_path / model
    args = ["run", "--task", "point", "--model", model, "--dataset", "grabcut", "--data-root", str(grabcut_root),
            "--out", str(out), "--limit", "2", "--max-clicks", "3"]
    if model == "sam":
        args += ["--checkpoint", str(small_checkpoint)]
    assert main(args) == 0
    check_outputs(out, 2, 3)
    record = json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]
    assert record["task_options"] == {"first_click": "center", "max_clicks": 3, "feedback": True}


def test_demo_models_on_demo_data(synthetic_roots, tmp_path):
    from sam_bench import api

    metrics = api.run("point", "felzenszwalb", "demo", out=tmp_path / "demo", data_root=str(synthetic_roots["demo"]),
                      options=expand("demo_point")[0].definition.options)
    assert metrics["objects"] >= 4 * 3 and metrics["max_clicks"] == 5
    assert 0.0 < metrics["mIoU@1"] <= metrics["oracle_mIoU@1"] <= 1.0


def entry(tmp_path, run, dataset, miou, oracle) -> ReportEntry:
    task_dir = tmp_path / run / "point" / dataset
    task_dir.mkdir(parents=True)
    (task_dir / "miou_curve.png").write_bytes(b"png")
    metrics = {"mIoU@1": miou, "oracle_mIoU@1": oracle, "mIoU@2": miou, "mIoU@3": miou, "mIoU@5": miou,
               "mIoU@9": miou, "NoC@85": 3.25, "NoC@90": 7.5, "NoF@90": 2, "objects": 10, "max_clicks": 20}
    record = {"task_options": {"first_click": "center", "max_clicks": 20, "feedback": run == "A"}}
    return ReportEntry(run, tmp_path / run, dataset, metrics, record, task_dir)


def test_report_section_layout(tmp_path):
    entries = [entry(tmp_path, "A", "gtea", 0.5, 0.6), entry(tmp_path, "A", "grabcut", 0.7, 0.8),
               entry(tmp_path, "B", "gtea", 0.25, 0.3), entry(tmp_path, "B", "grabcut", 0.8, 0.9)]
    text = PointTask.report_section(entries)
    assert "| dataset | A mIoU@1 | A oracle | B mIoU@1 | B oracle | Δ B vs A | paper Δ SAM−RITM |" in text
    assert "| gtea | 50.0 | 60.0 | 25.0 | 30.0 | -25.0 | -21.4 |" in text  # Fig. 9a: GTEA -21.4
    assert "| grabcut | 70.0 | 80.0 | 80.0 | 90.0 | 10.0 | - |" in text
    assert "| mean (2 datasets) | 60.0 | 70.0 | 52.5 | 60.0 | -7.5 | - |" in text
    assert "| gtea / B | 25.0 | 25.0 | 25.0 | 25.0 | 25.0 |" in text
    assert "| gtea / A | 3.25 | 7.50 | 2 | 10 |" in text
    assert "previous low-res logits fed back" in text and "previous low-res logits not fed back" in text
    assert "mIoU@1 58.1, mIoU@5 81.3" in text  # the paper's SA-23 mean for ViT-H
