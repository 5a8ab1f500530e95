"""Harness: resume after a kill, 2-process sharding, reruns, results layout and report."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sam_bench.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
# Same thread count everywhere so floating-point results are bit-identical across processes.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("runner_data"), n_images=6, seed=3)["demo"]


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_bench.py"), *args]


def run_args(data_root: Path, out: Path) -> list[str]:
    return ["run", "--task", "point", "--model", "tiny", "--dataset", "demo", "--data-root", str(data_root),
            "--out", str(out), "--max-clicks", "5"]


@pytest.fixture(scope="module")
def reference_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(cli(*run_args(data_root, out)), check=True, env=ENV, cwd=ROOT, capture_output=True)
    return out


def task_dir(out: Path) -> Path:
    return out / "point" / "demo"


def assert_same_results(a: Path, b: Path) -> None:
    assert json.loads((task_dir(a) / "metrics.json").read_text()) == \
        json.loads((task_dir(b) / "metrics.json").read_text())
    pd.testing.assert_frame_equal(pd.read_csv(task_dir(a) / "items.csv"), pd.read_csv(task_dir(b) / "items.csv"))


def test_results_layout(reference_run):
    run = json.loads((reference_run / "run.json").read_text())
    for key in ("sam_bench", "python", "torch", "segment_anything", "git"):
        assert key in run
    record = run["tasks"]["point/demo"]
    assert record["model"]["name"] == "tiny" and record["model"]["untrained"] is True
    assert len(record["model"]["weights_sha256"]) == 64
    assert record["device"] == "cpu" and record["images"] == 6
    assert record["wall_seconds"]["encode"] > 0 and record["wall_seconds"]["total"] > 0
    assert record["config"]["options"] == {"max_clicks": "5"}
    metrics = json.loads((task_dir(reference_run) / "metrics.json").read_text())
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    items = pd.read_csv(task_dir(reference_run) / "items.csv")
    assert set(items.image_id.astype(str)) == {str(i) for i in range(1, 7)}  # COCO json ids
    report = (reference_run / "report.md").read_text()
    assert "tiny (untrained)" in report and "untrained" in report


def test_resume_after_kill_matches_uninterrupted_run(data_root, reference_run, tmp_path):
    out = tmp_path / "killed"
    part = out / "point" / ".demo.staging" / "progress" / "part-0.jsonl"  # work in progress
    proc = subprocess.Popen(cli(*run_args(data_root, out)), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = part.read_text().count("\n")
    assert 2 <= finished_before < 6, "the kill should land midway through the 6 images"
    assert not (task_dir(out) / "metrics.json").exists()

    done = subprocess.run(cli(*run_args(data_root, out)), env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record["action"] == "resume"
    assert record["images_resumed"] == finished_before  # finished images were not redone
    assert_same_results(reference_run, out)


def test_two_process_sharding_matches_single_process(data_root, reference_run, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "sharded"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(ROOT / "run_bench.py"), *run_args(data_root, out), "--device", "cpu"]
    done = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "terminate called" not in done.stderr  # the process group is destroyed before exit
    parts = {p.name: [json.loads(line)["image_id"] for line in p.read_text().splitlines()]
             for p in (task_dir(out) / "progress").glob("part-*.jsonl")}
    assert sorted(parts) == ["part-0.jsonl", "part-1.jsonl"]
    assert parts["part-0.jsonl"] and parts["part-1.jsonl"]
    assert not set(parts["part-0.jsonl"]) & set(parts["part-1.jsonl"])
    assert json.loads((out / "run.json").read_text())["tasks"]["point/demo"]["world_size"] == 2
    assert_same_results(reference_run, out)


def test_rerun_replaces_one_task_and_keeps_others(data_root, reference_run, tmp_path):
    import shutil

    out = tmp_path / "rerun"
    shutil.copytree(reference_run, out)
    other = out / "edges" / "elsewhere"  # results of another task in the same directory
    other.mkdir(parents=True)
    (other / "metrics.json").write_text('{"ODS": 0.5}')
    stale = task_dir(out) / "stale.txt"
    stale.write_text("from the previous run")
    done = subprocess.run(cli(*run_args(data_root, out), "--limit", "2"), env=ENV, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not stale.exists()
    assert (other / "metrics.json").read_text() == '{"ODS": 0.5}'
    assert set(pd.read_csv(task_dir(out) / "items.csv").image_id.astype(str)) == {"1", "2"}
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record["action"].startswith("rerun") and record["images"] == 2


def test_report_puts_runs_side_by_side(reference_run, tmp_path):
    import shutil

    from sam_bench import report

    other = tmp_path / "second_run"
    shutil.copytree(reference_run, other)
    text = report([reference_run, other], tmp_path / "both.md").read_text()
    # Same model label in both runs: the columns are told apart by their directory names.
    assert f"tiny (untrained) (synthetic data) [{reference_run.name}]" in text
    assert "tiny (untrained) (synthetic data) [second_run]" in text


def test_cli_errors_are_one_line(tmp_path):
    done = subprocess.run(cli("run", "--task", "point", "--model", "sam", "--dataset", "demo", "--data-root",
                              str(tmp_path), "--checkpoint", str(tmp_path / "missing.pth")),
                          env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"sam-bench: error: {tmp_path / 'missing.pth'}: checkpoint file not found"
    done = subprocess.run(cli("run", "--task", "nope", "--model", "tiny", "--dataset", "demo"),
                          env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown task 'nope'; known:" in done.stderr
