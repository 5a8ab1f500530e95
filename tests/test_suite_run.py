"""`run --suite`: skipping with where-to-get-it, failures recorded, suite-level resume, SA-23 partial
table, --model-args, and the report in md / html / latex / csv."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_bench.py"), *args], env=ENV, cwd=ROOT,
                          capture_output=True, text=True, **kw)


def in_process(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter start-up): same return code and stdout."""
    from sam_bench.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, buf.getvalue(), "")


@pytest.fixture(scope="module")
def interactive(grabcut_root, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The acceptance scenario: D holds only grabcut/ (a link), the interactive suite, felzenszwalb."""
    base = tmp_path_factory.mktemp("interactive")
    data = base / "D"
    data.mkdir()
    (data / "grabcut").symlink_to(grabcut_root)
    out = base / "O"
    done = cli("run", "--suite", "interactive", "--model", "felzenszwalb", "--data-dir", str(data), "--out", str(out),
               "--limit", "2")
    return data, out, done


def test_missing_datasets_are_skipped_with_where_to_get_them(interactive):
    data, out, done = interactive
    assert done.returncode == 0, done.stderr[-2000:]
    assert "suite interactive: planned 4, ran 1, already done 0, skipped 3, failed 0" in done.stdout
    for name in ("berkeley", "davis", "coco_mval"):
        line = next(l for l in done.stdout.splitlines() if f"skipped: interactive_{name} " in l)
        assert f"dataset '{name}' not found at {data / name}" in line and "get it from https://" in line
    metrics = json.loads((out / "interactive_grabcut" / "grabcut" / "metrics.json").read_text())
    assert metrics["objects"] == 2
    record = json.loads((out / "run.json").read_text())["tasks"]["interactive_grabcut/grabcut"]
    assert record["config"]["options"]["max_clicks"] == 20 and record["config"]["definition"]["version"] == "1"
    report = (out / "report.md").read_text()
    assert "| grabcut | " in report and "NoC@85" in report


def test_rerunning_the_same_command_redoes_nothing(interactive):
    data, out, _ = interactive
    before = (out / "interactive_grabcut" / "grabcut" / "metrics.json").stat().st_mtime_ns
    done = cli("run", "--suite", "interactive", "--model", "felzenszwalb", "--data-dir", str(data), "--out", str(out),
               "--limit", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ran 0, already done 1, skipped 3, failed 0" in done.stdout
    assert (out / "interactive_grabcut" / "grabcut" / "metrics.json").stat().st_mtime_ns == before


def test_a_failing_task_is_recorded_and_the_suite_goes_on(interactive, tmp_path):
    data, _, _ = interactive
    out = tmp_path / "failing"
    done = cli("run", "--suite", "interactive", "--model", "felzenszwalb", "--model-args", "sigma=2",
               "--data-dir", str(data), "--out", str(out), "--limit", "1")
    assert done.returncode == 1
    assert "planned 4, ran 0, already done 0, skipped 3, failed 1" in done.stdout
    assert "failed: interactive_grabcut [felzenszwalb]: ConfigError: model 'felzenszwalb' takes no --model-args" \
        in done.stdout
    state = json.loads((out / "suite.json").read_text())["interactive_grabcut/grabcut"]
    assert state["status"] == "failed" and "takes no --model-args" in state["detail"]


def test_sa23_with_two_datasets_says_2_of_23(shared_data, tmp_path):
    out = tmp_path / "sa23"
    done = in_process("run", "--suite", "sa23", "--model", "felzenszwalb", "--data-root", f"ppdls={shared_data / 'ppdls'}",
               "--data-root", f"bbbc038={shared_data / 'bbbc038'}", "--out", str(out), "--limit", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "planned 23, ran 2, already done 0, skipped 21, failed 0" in done.stdout
    report = (out / "report.md").read_text()
    assert "| felzenszwalb | 2 of 23 | 2 of 13 | 0 of 10 |" in report
    assert "2 of 23 SA-23 datasets ran; not an SA-23 number" in report and "Missing: doors," in report
    assert "| SAM ViT-H (sam_vit_h_4b8939.pth) (published) | 58.1 (81.3) | 60.8 (82.1) | 54.5 (80.3) |" in report
    assert (out / "figures" / "fig9c_miou_curves.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def two_runs(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """Two SA-23 runs on the same two datasets (felzenszwalb at 1 image and at 2), for the reports."""
    base = tmp_path_factory.mktemp("two_runs")
    dirs = []
    for limit in (1, 2):
        out = base / f"run{limit}"
        done = in_process("run", "--suite", "sa23", "--model", "felzenszwalb", "--label", f"felz{limit}",
                   "--tasks", "point_ppdls,point_bbbc038", "--data-root", f"ppdls={shared_data / 'ppdls'}",
                   "--data-root", f"bbbc038={shared_data / 'bbbc038'}", "--out", str(out), "--limit", str(limit))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "planned 2, ran 2" in done.stdout  # --tasks narrows the suite
        dirs.append(out)
    return dirs[0], dirs[1]


def metric(run: Path, name: str, key: str) -> float:
    return json.loads((run / f"point_{name}" / name / "metrics.json").read_text())[key]


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_html_report_parses_and_embeds_its_figures(two_runs, tmp_path):
    from sam_bench import report

    path = report(list(two_runs), tmp_path / "out" / "cmp.html", fmt="html")
    text = path.read_text()
    checker = _Checker()
    checker.feed(text)
    assert checker.stack == [] and text.startswith("<!DOCTYPE html>")
    # Fig. 9a and 9c, each run's mIoU curve, the accuracy-against-speed chart: all embedded
    assert len(checker.images) >= 6 and all(src.startswith("data:image/png;base64,") for src in checker.images)
    import base64

    assert base64.b64decode(checker.images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "figures" / "fig9a_miou1_deltas.png").is_file()  # beside the report
    one = 100 * metric(two_runs[0], "ppdls", "mIoU@1")
    assert f'<td class="num">{one:.1f}</td>' in text  # numbers right-aligned


def test_latex_report_has_booktabs_tables_with_the_numbers(two_runs, tmp_path):
    from sam_bench import report

    text = report(list(two_runs), tmp_path / "cmp.tex", fmt="latex").read_text()
    assert text.count(r"\begin{tabular}") == text.count(r"\bottomrule") >= 3 and r"\toprule" in text
    row = next(l for l in text.splitlines() if l.startswith("ppdls &"))
    cells = [c.strip() for c in row.rstrip("\\ ").split("&")]
    assert float(cells[1]) == pytest.approx(100 * metric(two_runs[0], "ppdls", "mIoU@1"), abs=0.05)
    assert r"point\_ppdls" in text  # specials escaped


def test_csv_report_holds_every_metric(two_runs, tmp_path):
    from sam_bench import report

    rows = list(csv.DictReader(io.StringIO(report(list(two_runs), tmp_path / "all.csv", fmt="csv").read_text())))
    for run, label in zip(two_runs, ("felz1", "felz2")):
        for name in ("ppdls", "bbbc038"):
            metrics = json.loads((run / f"point_{name}" / name / "metrics.json").read_text())
            got = {r["column"]: float(r["value"]) for r in rows if r["source"] == "metrics"
                   and r["table_row"] == label and r["section"].endswith(f"/{name}")}
            assert got == {k: float(v) for k, v in metrics.items()}
    sa23 = [(r["table_row"], r["value"]) for r in rows if r["source"] == "report" and r["column"] == "SA-23 all (23)"]
    vit_h = "SAM ViT-H (sam_vit_h_4b8939.pth) (published)"
    assert (vit_h, "58.1") in sa23 and (vit_h, "81.3") in sa23
    assert not [row for row, _ in sa23 if row.startswith("felz")]  # "2 of 23" is no number


def test_report_links_work_from_where_the_report_is_written(two_runs, tmp_path):
    from sam_bench import report

    path = report(list(two_runs), tmp_path / "elsewhere" / "r.md")
    text = path.read_text()
    for target in [part.split(")")[0] for part in text.split("](")[1:]]:
        assert (path.parent / target).is_file(), target


def test_suite_resumes_after_a_kill(synthetic_roots, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, str(ROOT / "run_bench.py"), "run", "--suite", "demo", "--model", "tiny",
            "--tasks", "demo_proposals,demo_point", "--data-root", f"demo={synthetic_roots['demo']}",
            "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "demo_proposals" / ".demo.staging" / "progress" / "part-0.jsonl"  # a run works in staging
    first = out / "demo_point" / "demo" / "metrics.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if first.exists() and part.exists() and part.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (out / "demo_proposals" / "demo" / "metrics.json").exists(), \
        "kill should land in task 2"
    finished = part.read_text().count("\n")
    done = subprocess.run(args, env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "planned 2, ran 1, already done 1, skipped 0, failed 0" in done.stdout
    record = json.loads((out / "run.json").read_text())["tasks"]["demo_proposals/demo"]
    assert record["action"] == "resume" and record["images_resumed"] == finished
