"""The `point` task end to end (command line, real GrabCut files, demo data) and its report section."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sam_bench.cli import main
from sam_bench.reporting.entry import ReportEntry
from sam_bench.reporting.sa23 import sa23_section
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


def entry(tmp_path, run, dataset, miou, oracle, first_click="center") -> ReportEntry:
    task_dir = tmp_path / run / "point" / dataset
    task_dir.mkdir(parents=True)
    (task_dir / "miou_curve.png").write_bytes(b"png")
    metrics = {"mIoU@1": miou, "oracle_mIoU@1": oracle, "mIoU@2": miou, "mIoU@3": miou, "mIoU@5": miou,
               "mIoU@9": miou, "NoC@85": 3.25, "NoC@90": 7.5, "NoF@90": 2, "objects": 10, "max_clicks": 20}
    record = {"task_options": {"first_click": first_click, "max_clicks": 20, "feedback": run == "A"}}
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
    # each paper number names the checkpoint it belongs to
    assert "paper Δ: SAM (ViT-H, sam_vit_h_4b8939.pth) minus RITM, one center point" in text
    assert "SAM (ViT-H, sam_vit_h_4b8939.pth) mIoU@1 58.1, mIoU@5 81.3" in text
    assert "SAM (ViT-B, sam_vit_b_01ec64.pth) mIoU@1 55.9, mIoU@5 80.9" in text


def test_paper_numbers_are_not_beside_a_random_first_click_run(tmp_path):
    entries = [entry(tmp_path, "A", "gtea", 0.5, 0.6), entry(tmp_path, "B", "gtea", 0.25, 0.3, "random")]
    text = PointTask.report_section(entries)
    assert "paper Δ" not in text and "-21.4" not in text and "58.1" not in text  # center-click numbers
    assert "| dataset | A mIoU@1 | A oracle | B mIoU@1 | B oracle | Δ B vs A |" in text
    assert "left out: runs here use another protocol (B: first_click: run 'random', source 'center')" in text


def sa23_tables(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block.startswith("|")]


def test_sa23_published_rows_name_their_checkpoint_and_sit_beside_center_click_runs_only(tmp_path):
    entries = [entry(tmp_path, run, d, 0.5, 0.6, first_click) for run, first_click in (("A", "center"), ("B", "random"))
               for d in ("gtea", "ppdls")]
    text = sa23_section(entries, tmp_path)
    published, other = sa23_tables(text)
    assert "| SAM ViT-H (sam_vit_h_4b8939.pth) (published) | 58.1 (81.3) | 60.8 (82.1) | 54.5 (80.3) |" in published
    # SAM 2 Table 6 is the paper's Hiera-B+ model (not a released file); the EdgeTAM README names no size
    assert "| SAM 2 Hiera-B+ (paper model, not a released checkpoint) (published) | 61.4 (83.7) |" in published
    assert "| SAM 2 Hiera-B+, trained on SA-1B only (paper ablation model, not released) (published) |" in published
    assert "| SAM 2.1, size not stated (checkpoint not stated) (published) | 61.9 (83.5) |" in published
    assert "| HQ-SAM ViT-B (sam_hq_vit_b.pth) (published) | 53.9 (72.1) | - | - |" in published
    assert "| A | 2 of 23 |" in published and "| B |" not in published
    assert "| B | 2 of 23 |" in other and "(published)" not in other
    assert "B: first_click: run 'random', source 'center'" in text and "first click at the mask's center" in text


def test_sa23_without_a_center_click_run_has_no_published_rows(tmp_path):
    text = sa23_section([entry(tmp_path, "B", d, 0.5, 0.6, "random") for d in ("gtea", "ppdls")], tmp_path)
    assert "(published)" not in text and "| B | 2 of 23 |" in text
    assert "the published rows are not put beside them" in text
