"""Issue 17: every failure a user can cause is one line (a full disk, damaged run.json / suite.json,
an --out that is a file, lost progress records, a killed torchrun launcher), and mistyped input is
named with close matches (unknown flags, names, --data-root NAME=PATH, a suite where nothing ran)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sam_bench.cli import build_parser, main
from sam_bench.engine import progress

ROOT = Path(__file__).resolve().parents[1]
from conftest import GRABCUT_THREE as NAMES


@pytest.fixture
def grabcut(grabcut_copy: Path) -> Path:
    return grabcut_copy


def point(data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "point", "--model", "felzenszwalb", "--dataset", "grabcut", "--data-root", str(data),
            "--out", str(out), "--max-clicks", "1", "--workers", "0", *extra]


def one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines()
             if not line.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1, lines
    return lines[0]


def _fail_on_call(monkeypatch, n: int, fail) -> None:
    """Call `fail(appender, result)` instead of the n-th progress append (1-based)."""
    original, calls = progress._Appender.append, []

    def append(self, result, inputs=None):
        calls.append(result.image_id)
        if len(calls) == n:
            return fail(self, result)
        return original(self, result, inputs)

    monkeypatch.setattr(progress._Appender, "append", append)


# one line, never a traceback -----------------------------------------------------------------------

def test_disk_full_is_one_line_naming_the_folder_and_nothing_is_lost(grabcut, tmp_path, capsys, monkeypatch):
    def full(appender, result):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out"
    _fail_on_call(monkeypatch, 2, full)
    assert main(point(grabcut, out)) == 2
    line = one_error(capsys)
    assert line.startswith(f"sam-bench: error: {out}: disk full (") and line.endswith(
        " MiB free); finished images are kept: free some space and rerun the same command to resume")
    monkeypatch.undo()
    assert main(point(grabcut, out)) == 0
    record = json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]
    assert record["action"] == "resume" and record["images_resumed"] == 1


def test_lost_progress_records_are_one_line_with_the_remedy(grabcut, tmp_path, capsys, monkeypatch):
    def damaged(appender, result):  # the record of this image is damaged under the live run
        appender.file.write('{"image_id": "' + result.image_id + '", "rows"\n')
        appender.file.flush()

    out = tmp_path / "out"
    _fail_on_call(monkeypatch, 2, damaged)
    assert main(point(grabcut, out)) == 2
    assert one_error(capsys) == (f"sam-bench: error: {out / 'point' / '.grabcut.staging' / 'progress'}: 1 images have "
                                 f"no result (e.g. {NAMES[1]}; their records were damaged during the run, or their shard "
                                 "has not finished); rerun the same command to redo them")
    monkeypatch.undo()
    assert main(point(grabcut, out)) == 0
    assert json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]["images_resumed"] == 2


@pytest.mark.parametrize("command", ["run", "suite", "report"])
def test_damaged_run_json_is_one_line(grabcut, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text('{"tasks": {')
    argv = {"run": point(grabcut, out),
            "suite": ["run", "--suite", "interactive_grabcut", "--model", "felzenszwalb", "--data-root",
                      f"grabcut={grabcut}", "--out", str(out), "--limit", "1"],
            "report": ["report", str(out)]}[command]
    assert main(argv) == 2
    line = one_error(capsys)
    assert line.startswith(f"sam-bench: error: {out / 'run.json'}: damaged run.json (the record of this results "
                           "folder) (Expecting") and line.endswith("restore it or move it away")


def test_damaged_suite_json_is_one_line(grabcut, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "suite.json").write_text("[1, 2")
    assert main(["run", "--suite", "interactive_grabcut", "--model", "felzenszwalb", "--data-root",
                 f"grabcut={grabcut}", "--out", str(out)]) == 2
    assert one_error(capsys).startswith(f"sam-bench: error: {out / 'suite.json'}: damaged suite state")


@pytest.mark.parametrize("how", ["task", "suite", "demo"])
def test_out_that_is_a_file_is_the_same_line_for_tasks_suites_and_the_demo(grabcut, tmp_path, capsys, how):
    out = tmp_path / "a_file"
    out.write_text("not a folder")
    argv = {"task": point(grabcut, out),
            "suite": ["run", "--suite", "interactive_grabcut", "--model", "felzenszwalb", "--data-root",
                      f"grabcut={grabcut}", "--out", str(out)],
            "demo": ["--demo", "--out", str(out)]}[how]
    assert main(argv) == 2
    assert one_error(capsys) == f"sam-bench: error: {out}: cannot create the --out folder: File exists"
    assert out.read_text() == "not a folder"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")
def test_ranks_die_with_a_killed_torchrun_launcher(grabcut, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", str(ROOT / "run_bench.py"),
         *point(grabcut, out, "--max-clicks", "20")[:-2], "--model", "tiny"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ranks() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != launcher.pid:
                try:
                    if str(out).encode() in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
                except OSError:
                    continue
        return found

    staging = out / "point" / ".grabcut.staging"
    deadline = time.time() + 120
    while time.time() < deadline and launcher.poll() is None and not staging.exists():
        time.sleep(0.05)
    alive = ranks()
    assert launcher.poll() is None and alive, "the rank should be running"
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.time() + 10
    while time.time() < deadline and ranks():
        time.sleep(0.1)
    assert not ranks(), "ranks outlived their killed torchrun launcher"


# input a user mistypes ------------------------------------------------------------------------------

def test_unknown_run_flag_is_named_with_the_close_match_and_leaves_no_folder(grabcut, tmp_path, capsys):
    out = tmp_path / "new" / "out"
    assert main(point(grabcut, out, "--limt", "2")) == 2
    assert one_error(capsys) == "sam-bench: error: unknown option --limt; did you mean --limit?"
    assert main(point(grabcut, out, "--max-click", "2")) == 2
    assert one_error(capsys) == "sam-bench: error: unknown option --max-click; did you mean --max-clicks?"
    assert not (tmp_path / "new").exists()


def test_failed_argument_check_in_an_existing_out_leaves_it_as_it_was(grabcut, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = point(grabcut, out, "--checkpoint", str(tmp_path / "missing.pth"))
    argv[argv.index("felzenszwalb")] = "sam"
    assert main(argv) == 2
    assert one_error(capsys).startswith(f"sam-bench: error: {tmp_path / 'missing.pth'}")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("flag,value,said", [
    ("--model", "felzenzwalb", "unknown model 'felzenzwalb'; did you mean felzenszwalb? (known: "),
    ("--dataset", "grabcat", "unknown dataset 'grabcat'; did you mean grabcut? (known: "),
    ("--task", "pont", "unknown task 'pont'; did you mean point? (known: "),
])
def test_close_matches_for_models_datasets_and_tasks(grabcut, tmp_path, capsys, flag, value, said):
    argv = point(grabcut, tmp_path / "out")
    argv[argv.index(flag) + 1] = value
    assert main(argv) == 2
    assert one_error(capsys).startswith(f"sam-bench: error: {said}")
    assert not (tmp_path / "out").exists()


def test_close_match_for_suites(tmp_path, capsys):
    assert main(["run", "--suite", "interactve", "--model", "felzenszwalb", "--out", str(tmp_path / "o")]) == 2
    assert one_error(capsys).startswith("sam-bench: error: unknown suite or task definition 'interactve'; "
                                        "did you mean interactive? (suites: ")


def test_data_root_name_the_suite_does_not_use(grabcut, tmp_path, capsys):
    assert main(["run", "--suite", "interactive", "--model", "felzenszwalb", "--data-root", f"grabcutt={grabcut}",
                 "--out", str(tmp_path / "o")]) == 2
    assert one_error(capsys) == ("sam-bench: error: --data-root grabcutt=...: suite 'interactive' uses no dataset "
                                 "'grabcutt'; did you mean grabcut? (its datasets: berkeley, coco_mval, davis, grabcut)")


def test_suite_where_nothing_ran_exits_3(tmp_path, capsys):
    empty = tmp_path / "D"
    empty.mkdir()
    assert main(["run", "--suite", "interactive", "--model", "felzenszwalb", "--data-dir", str(empty),
                 "--out", str(tmp_path / "o")]) == 3
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "nothing ran: all 4 tasks of suite 'interactive' were skipped (see above)"


def test_edges_scoring_processes_have_their_own_option(synthetic_roots, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("options: {workers: 2}\n")
    base = ["run", "--task", "edges", "--model", "sobel", "--dataset", "demo_bsds", "--data-root",
            str(synthetic_roots["demo_bsds"]), "--split", "val", "--limit", "1", "--thresholds", "3"]
    assert main([*base, "--out", str(tmp_path / "old"), "--config", str(config)]) == 2
    assert one_error(capsys) == "sam-bench: error: option --workers of task 'edges' is now --eval-workers"
    out = tmp_path / "new"
    assert main([*base, "--out", str(out), "--workers", "0", "--eval-workers", "1"]) == 0
    assert "processes (--eval-workers 1)" in (out / "report.md").read_text()
    record = json.loads((out / "run.json").read_text())["tasks"]["edges/demo_bsds"]
    assert record["config"]["workers"] == 0 and record["config"]["options"]["eval_workers"] == "1"


def test_every_run_flag_has_one_line_of_help():
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    flags = [a for a in run._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 20
    assert all(a.help and "\n" not in a.help for a in flags), [a.option_strings for a in flags if not a.help]


def test_python_api_shows_progress(grabcut, tmp_path, capsys):
    import sam_bench

    metrics = sam_bench.run(task="point", model="felzenszwalb", dataset="grabcut", data_root=str(grabcut),
                            out=str(tmp_path / "api"), limit=2, workers=0, options={"max_clicks": 1})
    assert metrics["objects"] == 2
    err = capsys.readouterr().err
    assert "INFO sam_bench.runner: point/grabcut: new; 2 images, 0 already done" in err
    assert "INFO sam_bench.engine.eta: point/grabcut: 2/2 images" in err


def test_readme_python_example_is_bounded(grabcut_root, tmp_path):
    """The README's example, run as printed (paths pointed at the shared GrabCut): it names a limit."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("    import sam_bench\n")
    code = "\n".join(line[4:] for line in readme[start:].split("\n\n")[0].splitlines())
    assert "limit=" in code
    code = code.replace("/data/grabcut", str(grabcut_root)).replace('"results/tiny"', repr(str(tmp_path / "tiny")))
    code = code.replace('"report.md"', repr(str(tmp_path / "report.md")))
    scope: dict = {}
    t0 = time.perf_counter()
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["metrics"]["objects"] == 3 and (tmp_path / "report.md").is_file()
    assert time.perf_counter() - t0 < 120
