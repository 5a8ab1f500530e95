"""`run --suite --launcher`: shards in separate submitit processes equal the in-process run, a killed
shard resumes with only its unfinished images, `--score later` + `sam-bench score` equals scoring at
the end, retries and failures, `sam-bench status`, and the SLURM executor's parameters.

Every launched element is a real process that imports torch (seconds each on 2 cores), so the runs
here use one cheap task definition (demo_edges: tiny SAM, 2x2 AMG grid, pyEdgeEval scoring) on 7
generated images.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest

from sam_bench.cli import main
from sam_bench.engine.lock import BusyError, TaskLock
from sam_bench.engine.shards import Shard
from sam_bench.launch.status import status_rows

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": str(ROOT)}
TASK = Path("demo_edges") / "demo_bsds"
SHARD_PART = "part-shard-0-of-3.jsonl"


def suite_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--suite", "demo", "--tasks", "demo_edges", "--model", "tiny", "--data-dir", str(data),
            "--data-root", f"demo_bsds={data / 'bsds'}", "--out", str(out), *extra]


def cli(*args: str) -> tuple[int, str]:
    """The CLI in this process: (exit code, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(list(args))
    return code, buf.getvalue()


def launched(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run_bench.py"), *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from sam_bench.data.synthetic import generate

    base = tmp_path_factory.mktemp("launch_data")
    generate(base, n_images=7, seed=3)
    return base


@pytest.fixture(scope="module")
def in_process(data, tmp_path_factory) -> Path:
    """The reference: the same suite task in this process, scored at the end."""
    out = tmp_path_factory.mktemp("in_process")
    code, stdout = cli(*suite_args(data, out))
    assert code == 0, stdout
    return out / TASK


def results(task_dir: Path) -> tuple[dict, str]:
    return json.loads((task_dir / "metrics.json").read_text()), (task_dir / "items.csv").read_text()


def part_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")] \
        if path.exists() else []


def test_three_shards_with_one_killed_and_rerun_equal_the_in_process_run(data, in_process, tmp_path):
    out = tmp_path / "O"
    work = out / "demo_edges" / ".demo_bsds.staging"
    state = out / ".launch" / "state" / "demo_edges__demo_bsds__tiny__shard-0-of-3.json"
    driver = launched(*suite_args(data, out, "--launcher", "local", "--shards", "3", "--retries", "0"))
    # Shard 1/3 holds positions 0, 3 and 6: kill it (SIGKILL, no clean-up) after its first image.
    deadline = time.time() + 300
    while not (len(part_lines(work / "progress" / SHARD_PART)) >= 1 and state.exists()):
        assert driver.poll() is None and time.time() < deadline, "shard 1/3 never recorded an image"
        time.sleep(0.01)
    os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=300)
    assert not (work / "progress" / "shard-0-of-3.json").exists(), "shard 1/3 finished before it was killed"
    killed_with = len(part_lines(work / "progress" / SHARD_PART))
    assert killed_with < 3
    assert driver.returncode == 1, stderr[-3000:]
    failure = next(line for line in stdout.splitlines() if line.startswith("  failed: demo_edges"))
    assert "shard 1/3 (job " in failure and "; log: " in failure and failure.rstrip().endswith("_log.err")
    assert (work / "progress" / "shard-1-of-3.json").exists() and (work / "progress" / "shard-2-of-3.json").exists()

    code, _ = cli("status", str(out))
    rows = {r.part: r for r in status_rows(out)}
    assert code == 1
    assert rows["shard 1/3"].state == "failed" and "died without a word" in rows["shard 1/3"].detail
    assert rows["shard 1/3"].detail.startswith("job ") and rows["shard 1/3"].detail.endswith("_log.err")
    assert rows["shard 2/3"].state == rows["shard 3/3"].state == "done" and rows["scoring"].state == "planned"

    # The same command again: only shard 1/3 and the scoring run, and only its unfinished images.
    rerun = launched(*suite_args(data, out, "--launcher", "local", "--shards", "3"))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "suite demo: planned 1, ran 1," in stdout
    plan = json.loads((out / "launch.json").read_text())["elements"]
    assert [len(plan[f"demo_edges/demo_bsds/tiny/shard-{k}-of-3"]["attempts"]) for k in range(3)] == [1, 0, 0]
    task = out / TASK
    lines = part_lines(task / "progress" / SHARD_PART)
    assert len(lines) == 3  # killed_with images kept, 3 - killed_with redone, none twice
    assert len({json.loads(line)["image_id"] for line in lines}) == 3
    record = json.loads((task / "run_record.json").read_text())
    assert record["images_resumed"] == killed_with and record["shards"] == 3 and record["images"] == 7
    assert results(task) == results(in_process)

    code, table = cli("status", str(out))
    assert code == 0 and table.splitlines()[-1].endswith(": 4 scored"), table


def test_score_later_then_score_equals_scoring_at_the_end(data, in_process, tmp_path):
    out = tmp_path / "O"
    code, stdout = cli(*suite_args(data, out, "--score", "later"))
    assert code == 0 and "stored for scoring 1" in stdout, stdout
    work = out / "demo_edges" / ".demo_bsds.staging"
    assert not (out / TASK).exists() and len(part_lines(work / "progress" / "part-0.jsonl")) == 7
    assert not (work / "metrics.json").exists() and not (work / "eval_cache").exists()  # no scoring happened
    code, table = cli("status", str(out))
    assert code == 1 and "whole task   done" in table

    scorer = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "score", str(out), "--launcher", "local"],
                            env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert scorer.returncode == 0, scorer.stderr[-3000:]
    assert f"scored: {out / TASK}" in scorer.stdout
    assert results(out / TASK) == results(in_process)
    code, table = cli("status", str(out))
    assert code == 0, table
    code, stdout = cli(*suite_args(data, out))  # the suite counts the scored task as finished
    assert "ran 0, already done 1" in stdout


def test_a_shard_that_keeps_failing_is_retried_then_reported_with_its_log(data, tmp_path):
    broken = tmp_path / "D"
    (broken / "bsds").mkdir(parents=True)
    (broken / "bsds" / "groundTruth").symlink_to(data / "bsds" / "groundTruth")
    images = broken / "bsds" / "images" / "val"
    images.mkdir(parents=True)
    for image in sorted((data / "bsds" / "images" / "val").iterdir()):
        (images / image.name).symlink_to(image)
    first = sorted(images.iterdir())[0]
    first.unlink()
    first.write_bytes(b"not a jpeg")
    out = tmp_path / "O"
    run = subprocess.run([sys.executable, str(ROOT / "run_bench.py"),
                          *suite_args(broken, out, "--launcher", "local", "--retries", "1", "--limit", "2")],
                         env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    failure = next(line for line in run.stdout.splitlines() if line.startswith("  failed: demo_edges"))
    assert "shard 1/1 (job " in failure and first.name in failure and "; log: " in failure
    plan = json.loads((out / "launch.json").read_text())["elements"]
    attempts = plan["demo_edges/demo_bsds/tiny/shard-0-of-1"]["attempts"]
    assert len(attempts) == 2  # the first run and one retry
    assert Path(attempts[-1]["stderr"]).read_text().count(first.name) >= 1
    code, table = cli("status", str(out))
    row = next(line for line in table.splitlines() if "shard 1/1" in line)
    assert code == 1 and " failed " in row and f"job {attempts[-1]['job_id']}: " in row and first.name in row


def test_status_reports_each_state(tmp_path):
    """planned / queued / running / done / failed / scored, from the files a launch leaves."""
    from sam_bench.engine.shards import write_shard_record
    from sam_bench.launch.plan import Element, record_submission, write_plan, write_state
    from sam_bench.suite_runner import Outcome, record_outcome

    out = tmp_path / "O"
    tasks = {name: [Element(name, "demo", "tiny", str(out), {}, f"stamp-{name}", "demo", (k, 3)) for k in range(3)]
             for name in ("a", "b")}
    elements = tasks["a"] + tasks["b"]
    write_plan(out, {"suite": "demo"}, elements)
    log = tmp_path / "job.err"
    log.write_text("INFO point/demo: 1/3 images\nlast words\n")
    a0, a1, a2 = tasks["a"]
    for e in (a1, a2, *tasks["b"]):
        record_submission(out, e.key, f"job-{e.key}", log, log)
    write_state(out, a1.key, "running", f"job-{a1.key}")
    write_state(out, a2.key, "running", f"job-{a2.key}")  # ... and then killed: its lock is free
    lock = TaskLock(a1.task_dir, part=Shard(1, 3).name).acquire()  # a1's job, alive
    b0, b1, b2 = tasks["b"]
    write_state(out, b0.key, "failed", f"job-{b0.key}", "DataError: x.jpg: not an image")
    write_shard_record(b1.task_dir.parent / ".demo.staging", Shard(1, 3), {})
    try:
        rows = [(r.part, r.state, r.detail) for r in status_rows(out)]
    finally:
        lock.release()
    assert [state for _, state, _ in rows] == ["planned", "running", "failed", "failed", "done", "queued"]
    assert rows[1][2].startswith(f"job job-{a1.key} (pid ") and rows[1][2].endswith("last words")
    assert "died without a word" in rows[2][2] and rows[2][2].endswith(f"; log: {log}")
    assert rows[3][2] == f"job job-{b0.key}: DataError: x.jpg: not an image; log: {log}"
    # a scored task: results in place, suite.json says it ran with these settings
    for e in tasks["b"]:
        (e.task_dir).mkdir(parents=True, exist_ok=True)
    (b0.task_dir / "metrics.json").write_text("{}")
    (b1.task_dir.parent / ".demo.staging" / "progress" / "shard-1-of-3.json").unlink()
    record_outcome(out, Outcome("b", "demo", "tiny", "ran", "scored"), "stamp-b", "demo")
    assert [r.state for r in status_rows(out)][3:] == ["scored"] * 3


def test_a_second_submission_does_not_run_a_running_shard(tmp_path):
    from sam_bench.config import RunConfig
    from sam_bench.stages import run_shard

    cfg = RunConfig(task="edges", model="tiny", dataset="demo_bsds", out=str(tmp_path / "O"), name="demo_edges")
    held = TaskLock(tmp_path / "O" / "demo_edges" / "demo_bsds", part="shard-1-of-2").acquire()
    try:
        with pytest.raises(BusyError, match=r"busy: another run \(pid \d+\) is writing .*demo_bsds \(shard-1-of-2\)"):
            run_shard(cfg, Shard(1, 2))
    finally:
        held.release()


def launch_args(**given) -> Namespace:
    flags = dict(launcher="slurm", slurm_partition=None, slurm_account=None, gpus_per_job=None, cpus_per_job=None,
                 mem=None, time=None, max_parallel=None, retries=None, shards=None)
    return Namespace(**{**flags, **given})


def test_slurm_executor_parameters_for_a_command_line(tmp_path, monkeypatch):
    """The submitit parameters and the sbatch lines submitit writes from them (no cluster needed)."""
    import submitit

    from sam_bench.cli import build_parser
    from sam_bench.launch.settings import executor_parameters, launch_settings, make_executor

    args, _ = build_parser().parse_known_args([
        "run", "--suite", "sa23", "--model", "tiny", "--launcher", "slurm", "--slurm-partition", "gpu",
        "--slurm-account", "vision", "--gpus-per-job", "1", "--cpus-per-job", "8", "--mem", "32G",
        "--time", "2:30:00", "--shards", "4", "--max-parallel", "16", "--retries", "2"])
    settings = launch_settings(args)
    assert (settings.shards, settings.retries) == (4, 2)
    assert executor_parameters(settings, "sam-bench-sa23") == {
        "name": "sam-bench-sa23", "timeout_min": 150, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1,
        "cpus_per_task": 8, "slurm_setup": ["export OMP_NUM_THREADS=8"], "mem_gb": 32.0,
        "slurm_partition": "gpu", "slurm_account": "vision", "slurm_array_parallelism": 16}
    assert executor_parameters(settings, "s", gpus=False)["gpus_per_node"] == 0  # scoring asks for no GPU

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    executor = make_executor(settings, tmp_path / "logs", "sam-bench-sa23")
    executor._executor.parameters["map_count"] = 92  # a 92-element array, as submitit sets it
    sbatch = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=vision", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --time=150",
                 "#SBATCH --array=0-91%16", "#SBATCH --job-name=sam-bench-sa23", "export OMP_NUM_THREADS=8"):
        assert line in sbatch.splitlines(), (line, sbatch)


@pytest.mark.parametrize("given, message", [
    (dict(launcher=None, shards=3), "--shards goes with --launcher local|slurm"),
    (dict(launcher="local", slurm_partition="gpu"), "--slurm-partition and --slurm-account go with --launcher slurm"),
    (dict(time="soon"), "--time: expected minutes, H:MM, H:MM:SS or D-HH:MM:SS, got 'soon'"),
    (dict(mem="lots"), "--mem: expected a size such as 32G or 500M, got 'lots'"),
    (dict(shards=0), "--shards: must be at least 1, got 0"),
])
def test_launcher_flags_are_checked(given, message):
    from sam_bench.errors import ConfigError
    from sam_bench.launch.settings import launch_settings

    with pytest.raises(ConfigError) as err:
        launch_settings(launch_args(**given))
    assert str(err.value) == message


def test_time_and_memory_read_as_sbatch_does():
    from sam_bench.launch.settings import parse_gigabytes, parse_minutes

    assert [parse_minutes(t) for t in ("90", "1:30", "1:30:00", "1-00:00:00", "0:00:30")] == [90, 90, 90, 1440, 1]
    assert [parse_gigabytes(m) for m in ("32G", "32GB", "512M", "1T", "16")] == [32, 32, 0.5, 1024, 16]


def test_without_submitit_the_launcher_says_what_to_install(tmp_path, monkeypatch):
    from sam_bench.errors import ConfigError
    from sam_bench.launch.settings import LaunchSettings, make_executor

    monkeypatch.setitem(sys.modules, "submitit", None)  # what `import submitit` meets when it is not installed
    with pytest.raises(ConfigError) as err:
        make_executor(LaunchSettings(), tmp_path, "x")
    assert str(err.value) == "--launcher needs submitit: pip install 'submitit>=1.5' (or sam-bench[cluster])"
