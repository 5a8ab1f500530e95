"""The demo: every registered task runs on the synthetic data and lands in the report."""
from __future__ import annotations

import json

import pytest

from sam_bench.plugins import load_plugins
from sam_bench.registry import TASKS


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from sam_bench.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, device="cpu", n_images=2)
    return out


def test_demo_runs_every_task_with_its_models(demo_dir):
    load_plugins()
    assert TASKS.names(), "no task registered"
    for name in TASKS.names():
        task = TASKS.get(name)
        for model in task.demo_models:
            metrics_file = demo_dir / model / name / task.demo_dataset / "metrics.json"
            assert metrics_file.exists(), metrics_file
            metrics = json.loads(metrics_file.read_text())
            assert metrics and all(isinstance(v, (int, float)) for v in metrics.values())
            assert (metrics_file.parent / "items.csv").exists()
            record = json.loads((demo_dir / model / "run.json").read_text())["tasks"][f"{name}/{task.demo_dataset}"]
            assert record["images"] == 2


def test_demo_report_has_a_section_per_task_and_labels_untrained(demo_dir):
    report = (demo_dir / "report.md").read_text()
    for name in TASKS.names():
        assert TASKS.get(name).title in report, name
    assert "tiny (untrained)" in report
