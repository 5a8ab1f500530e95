"""Issue 10, runs that can be trusted: one run per task folder, reruns that keep the previous
results until the new ones are complete, a run identity with everything that changes numbers,
damaged progress lines, read-only folders and one-line errors for bad settings."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam_bench.cli import main
from sam_bench.data.synthetic import generate
from sam_bench.engine.lock import BusyError, TaskLock

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
RESULT_FILES = ("point/demo/metrics.json", "point/demo/items.csv", "run.json", "report.md")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("trust_data"), n_images=4, seed=5)["demo"]


def args(data_root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "point", "--model", "tiny", "--dataset", "demo", "--data-root", str(data_root),
            "--out", str(out), "--max-clicks", "2", *extra]


def cli(*argv: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_bench.py"), *argv]


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory) -> Path:
    """A complete run (in-process) to rerun over."""
    out = tmp_path_factory.mktemp("finished")
    assert main(args(data_root, out)) == 0
    return out


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RESULT_FILES}


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1, stderr
    return lines[0]


# 1. one run per task folder ---------------------------------------------------------------------

def test_second_run_into_a_busy_folder_fails_with_one_line(data_root, tmp_path, capsys):
    out = tmp_path / "busy"
    with TaskLock(out / "point" / "demo"):
        assert main(args(data_root, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sam-bench: error: busy: another run (pid {os.getpid()}) is writing {out / 'point' / 'demo'}")
    assert not (out / "point" / "demo").exists() and not (out / "run.json").exists()


def test_lock_of_a_killed_process_is_free(tmp_path):
    task_dir = tmp_path / "out" / "point" / "demo"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from sam_bench.engine.lock import TaskLock; TaskLock(__import__('pathlib').Path(sys.argv[2])).acquire();"
                               "print('locked', flush=True); time.sleep(60)", str(ROOT), str(task_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(BusyError, match=f"pid {holder.pid}"):
        TaskLock(task_dir).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    TaskLock(task_dir).acquire().release()  # the kernel dropped the dead holder's lock


@pytest.mark.parametrize("second", [[], ["--max-clicks", "3"]], ids=["same-settings", "different-settings"])
def test_two_runs_started_together_one_runs_one_says_busy(data_root, tmp_path, second):
    out = tmp_path / "together"
    procs = [subprocess.Popen(cli(*args(data_root, out, *extra)), env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for extra in ([], second)]
    done = [(p.returncode, *out) for p, out in ((p, p.communicate(timeout=600)) for p in procs)]
    codes = sorted(rc for rc, _, _ in done)
    assert codes == [0, 2], [d[2][-2000:] for d in done]
    winner = next(i for i, d in enumerate(done) if d[0] == 0)
    loser = done[1 - winner]
    assert one_line_error(loser[2]).startswith("sam-bench: error: busy: another run (pid ")
    task_dir = out / "point" / "demo"
    records = [json.loads(line) for line in (task_dir / "progress" / "part-0.jsonl").read_text().splitlines()]
    assert sorted(r["image_id"] for r in records) == sorted({r["image_id"] for r in records})  # no image twice
    assert len(records) == 4
    max_clicks = ["2", "3" if second else "2"][winner]
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record["config"]["options"]["max_clicks"] == max_clicks
    assert json.loads((task_dir / "metrics.json").read_text())["max_clicks"] == int(max_clicks)


# 2. reruns keep the previous results until the new ones are complete ------------------------------

def test_rerun_killed_midway_keeps_previous_results(data_root, finished, tmp_path):
    out = tmp_path / "rerun_killed"
    shutil.copytree(finished, out)
    before = snapshot(out)
    part = out / "point" / ".demo.staging" / "progress" / "part-0.jsonl"
    proc = subprocess.Popen(cli(*args(data_root, out, "--max-clicks", "3")), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (part.exists() and part.read_text().count("\n")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.read_text().count("\n") >= 1, "the kill should land after the first image"
    assert snapshot(out) == before


def test_failing_rerun_keeps_previous_results_then_resumes(data_root, finished, tmp_path, caplog):
    """A corrupt image stops the rerun at the third image: the old results stay; a damaged progress
    line is dropped with a warning naming file and line; the resumed run redoes only that image."""
    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    out = tmp_path / "rerun_fails"
    shutil.copytree(finished, out)
    before = snapshot(out)
    ann = json.loads((data / "annotations.json").read_text())
    third = data / "images" / ann["images"][2]["file_name"]
    good = third.read_bytes()
    third.write_bytes(good[: len(good) // 2])
    assert main(args(data, out, "--max-clicks", "3")) == 2
    assert snapshot(out) == before
    part = out / "point" / ".demo.staging" / "progress" / "part-0.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    assert len(lines) == 2
    part.write_text("{\"image_id\": \"1\", \"rows\n" + lines[1])  # first record damaged, ends in a newline
    third.write_bytes(good)
    with caplog.at_level(logging.WARNING):
        assert main(args(data, out, "--max-clicks", "3")) == 0
    assert f"{part}:1: dropping a damaged progress record" in caplog.text
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record["action"] == "resume" and record["images_resumed"] == 1
    assert json.loads((out / "point" / "demo" / "metrics.json").read_text())["max_clicks"] == 3
    assert not (out / "point" / ".demo.staging").exists()
    reference = tmp_path / "reference"
    assert main(args(data, reference, "--max-clicks", "3")) == 0
    assert (reference / "point/demo/items.csv").read_bytes() == (out / "point/demo/items.csv").read_bytes()


# 3. the identity holds everything that changes numbers ------------------------------------------

def test_identity_covers_cache_precision_model_args_device_batch_size():
    import torch

    from sam_bench.config import RunConfig
    from sam_bench.runner import run_fingerprint

    def fp(cached=False, device="cpu", **settings):
        cfg = RunConfig(task="point", model="tiny", dataset="demo", **settings)
        model = {"name": "tiny", "model_args": dict(cfg.model_args)}
        return run_fingerprint(cfg, {"max_clicks": 2}, model, {"data_root": "d"}, cached, torch.device(device))

    base = fp()
    assert fp(cached=True) != base  # fp16-rounded embeddings
    assert fp(precision="bf16") != base
    assert fp(model_args={"seed": "1"}) != base
    assert fp(device="cuda") != base
    assert fp(seed=1) != base
    assert fp(batch_size=1) != fp(batch_size=64)
    assert fp(label="x", out="elsewhere", cache_dir="c", fresh=True, device="cpu") == base


def test_batch_size_changes_rounding_so_it_is_in_the_identity(data_root, finished, tmp_path):
    """Why batch_size is part of the identity: other batch shapes round differently."""
    import pandas as pd

    out = tmp_path / "batch1"
    assert main(args(data_root, out, "--batch-size", "1")) == 0
    a, b = (pd.read_csv(d / "point/demo/items.csv") for d in (finished, out))
    assert (a.iou == b.iou).all()  # the masks agree here...
    assert (a.pred_iou - b.pred_iou).abs().max() < 1e-5  # ...but predicted IoUs differ in the last digits
    assert json.loads((out / "point/demo/metrics.json").read_text()) == \
        json.loads((finished / "point/demo/metrics.json").read_text())


def test_resuming_with_the_cache_on_starts_over(data_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    ann = json.loads((data / "annotations.json").read_text())
    third = data / "images" / ann["images"][2]["file_name"]
    good = third.read_bytes()
    third.write_bytes(good[:100])
    out = tmp_path / "out"
    assert main(args(data, out)) == 2  # interrupted after two images, without the cache
    third.write_bytes(good)
    assert main(args(data, out, "--cache-dir", str(tmp_path / "cache"))) == 0
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record["action"].startswith("settings changed") and record["images_resumed"] == 0


# crashes that are one line ----------------------------------------------------------------------

@pytest.mark.parametrize("yaml_text, message", [
    ("limit: abc", "'limit': expected int, got 'abc'"),
    ("options: [1, 2]", "'options': expected a mapping of name: value, got [1, 2]"),
    ("options: {max_clicks: 2.7}", "option 'max_clicks' of task 'point': expected int, got 2.7"),
    ("limit: 0", "'limit': must be at least 1 (it is the number of images to run), got 0"),
])
def test_run_config_values_are_type_checked(data_root, tmp_path, capsys, yaml_text, message):
    config = tmp_path / "run.yaml"
    config.write_text(f"task: point\nmodel: tiny\ndataset: demo\ndata_root: {data_root}\nout: {tmp_path / 'o'}\n{yaml_text}\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_negative_limit_is_one_line(data_root, tmp_path, capsys):
    assert main(args(data_root, tmp_path / "o", "--limit", "-2")) == 2
    assert capsys.readouterr().err.strip() == \
        "sam-bench: error: --limit: must be at least 1 (it is the number of images to run), got -2"


def test_nan_logits_fail_naming_the_checkpoint(data_root, small_checkpoint, tmp_path, capsys):
    import torch

    state = torch.load(small_checkpoint, weights_only=True)
    path = tmp_path / "overflow.pth"  # finite weights whose products overflow to inf / NaN
    state["mask_decoder.iou_prediction_head.layers.2.bias"].fill_(3e38)
    state["mask_decoder.iou_prediction_head.layers.2.weight"].fill_(3e38)
    torch.save(state, path)
    argv = args(data_root, tmp_path / "o", "--limit", "1")
    argv[argv.index("tiny")] = "sam"
    assert main([*argv, "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sam-bench: error: {path}: model 'sam' produced NaN or infinite"), err


def without_root_powers() -> list[str]:
    """Command prefix under which permission bits apply: root loses its override capabilities."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permission bits cannot be tested")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def test_read_only_out_and_cache(data_root, tmp_path):
    cache = tmp_path / "cache"
    assert main(args(data_root, tmp_path / "first", "--cache-dir", str(cache), "--limit", "1")) == 0
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    for path in [readonly, cache, *cache.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        done = subprocess.run(without_root_powers() + cli(*args(data_root, readonly / "o", "--limit", "1")), env=ENV,
                              cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 2
        assert one_line_error(done.stderr) == \
            f"sam-bench: error: {readonly / 'o'}: cannot create the --out folder: Permission denied"
        out = tmp_path / "out"
        done = subprocess.run(without_root_powers() + cli(*args(data_root, out, "--limit", "1", "--cache-dir", str(cache))),
                              env=ENV, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "is read-only: its entries are used, new ones are not stored" in done.stderr
        record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
        assert record["embedding_cache"]["hits"] == 1
    finally:
        for path in [readonly, cache, *cache.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


# small things -----------------------------------------------------------------------------------

def test_result_files_respect_the_umask(finished, data_root, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "umask"
        assert main(args(data_root, out, "--limit", "1")) == 0
    finally:
        os.umask(old)
    for name in RESULT_FILES:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_report_on_a_missing_folder_fails(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == \
        f"sam-bench: error: {tmp_path / 'nope'}: not a sam-bench run directory (no such folder)"


def test_undefined_metrics_are_null_and_explained(finished, tmp_path):
    from sam_bench import report

    out = tmp_path / "nan"
    shutil.copytree(finished, out)
    from sam_bench.io import write_json

    metrics_path = out / "point/demo/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["NoC@90"] = float("nan")
    write_json(metrics_path, metrics)
    assert '"NoC@90": null' in metrics_path.read_text()
    text = report([out]).read_text()
    assert "## Undefined metrics" in text and "point/demo: NoC@90" in text


def test_terminal_prints_percentages():
    from sam_bench.reporting.terminal import format_metric

    assert format_metric("mIoU@1", 0.8123) == "81.2 %"
    assert format_metric("NoC@90", 4.25) == "4.25"
    assert format_metric("objects", 12) == "12"
    assert format_metric("AP", None).startswith("n/a")


def test_list_tasks_is_fast_and_describes_options():
    started = time.perf_counter()
    done = subprocess.run(cli("list", "tasks"), env=ENV, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 2.0, f"list tasks took {elapsed:.1f} s"
    assert "--first-click" in done.stdout and "center: farthest from the boundary; random" in done.stdout
    assert "detector | predicted_iou | detector_x_predicted_iou" in done.stdout


def test_run_json_follows_the_results_on_disk_after_a_kill_between_swap_and_record(finished, data_root, tmp_path):
    out = tmp_path / "stale"
    shutil.copytree(finished, out)
    run_json = json.loads((out / "run.json").read_text())
    run_json["tasks"]["point/demo"]["finished"] = "from an older run"  # as if killed right after the swap
    (out / "run.json").write_text(json.dumps(run_json))
    argv = args(data_root, out)
    argv[argv.index("tiny")] = "sam"
    assert main([*argv, "--checkpoint", str(tmp_path / "missing.pth")]) == 2  # the next run fails early...
    record = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]
    assert record == json.loads((out / "point/demo/run_record.json").read_text())  # ...but run.json is mended
    assert record["finished"] != "from an older run"
