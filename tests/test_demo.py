"""The demo: the `demo` suite runs every protocol on the synthetic data and lands in the report."""
from __future__ import annotations

import json

import pytest

from sam_bench.plugins import load_plugins
from sam_bench.registry import TASKS
from sam_bench.taskdefs import expand


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from sam_bench.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, device="cpu", n_images=2)
    return out


def test_demo_suite_covers_every_builtin_protocol():
    load_plugins()
    protocols = {item.definition.protocol for item in expand("demo")}
    assert {"point", "edges", "proposals", "instances", "text"} <= protocols <= set(TASKS.names())


def test_demo_runs_every_task_with_its_models(demo_dir):
    for item in expand("demo"):
        d = item.definition
        assert item.models
        for model in item.models:
            metrics_file = demo_dir / model / d.name / d.dataset / "metrics.json"
            assert metrics_file.exists(), metrics_file
            metrics = json.loads(metrics_file.read_text())
            assert metrics and all(isinstance(v, (int, float)) for v in metrics.values())
            assert (metrics_file.parent / "items.csv").exists()
            record = json.loads((demo_dir / model / "run.json").read_text())["tasks"][f"{d.name}/{d.dataset}"]
            assert record["images"] == 2
            assert record["config"]["definition"]["name"] == d.name


def test_demo_report_has_a_section_per_task_and_labels_untrained(demo_dir):
    report = (demo_dir / "report.md").read_text()
    for protocol in {item.definition.protocol for item in expand("demo")}:
        assert TASKS.get(protocol).title in report, protocol
    assert "tiny (untrained)" in report
    # sections in the paper's order (§7.1 .. §7.5)
    order = [report.index(TASKS.get(p).title) for p in ("point", "edges", "proposals", "instances", "text")]
    assert order == sorted(order)
