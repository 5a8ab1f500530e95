"""vos_interactive: the offline and online loops against hand-traced runs of a scripted tracker
(tests/video_standin.py), and the task's J&F@k from those runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sam_bench.cli import main
from sam_bench.data.registry import open_dataset
from sam_bench.engine.context import ImageResult
from sam_bench.errors import ConfigError
from sam_bench.metrics.bootstrap import UNITS_FILE, UnitSample
from sam_bench.metrics.vos import boundary_f, scored_frames
from sam_bench.prompts.clicks import Click
from sam_bench.tasks.vos_interactive.protocol import ObjectTruth, offline, online, unpack
from sam_bench.tasks.vos_interactive.task import (VosInteractiveOptions as Settings, VosInteractiveTask, interactive_metrics,
                                                  round_scores)

from video_standin import FileVideoSegmenter, ScriptedVideoSegmenter, cells_mask, centre, register, sample, write_davis

A, B, C, D, E = (0, 0), (0, 1), (1, 0), (1, 1), (0, 2)  # cells; E is never the object
GT = [{A, B, C, D}] * 6
# The tracker's own masks (J vs GT): f1 1, f2 0.5, f3 0.6, f4 0.25, f5 0.75. A click changes its
# cell on its frame and the next one (memory 1).
BASE = [{A}, {A, B, C, D}, {A, B}, {A, B, C, E}, {A}, {A, B, C}]


def click(cell, positive=True) -> Click:
    x, y = centre(cell)
    return Click(x, y, positive)


def run(setting: str, **options):
    video = sample(GT)
    model = ScriptedVideoSegmenter(BASE)
    truth = ObjectTruth.of(video, 1)
    settings = Settings(setting=setting, frames=4, **options)
    loop = offline if setting == "offline" else online
    result = loop(model.open_video(video.frames), truth, settings, truth.frames)
    return truth, result, model.log


def cells_of(result, k: int, frame: int) -> set:
    mask = unpack(result.rounds[k - 1][frame], (13, 19))
    return {cell for cell in (A, B, C, D, E, (1, 2)) if mask[6 * cell[0] + 3, 6 * cell[1] + 3]}


# First interaction (both settings): 3 clicks on frame 0 from nothing. All four cells are equal
# 5x5 squares, so each click goes to the first missing cell in row-major order: A, B, C.
FIRST = [click(A), click(B), click(C)]


def test_offline_matches_the_hand_trace():
    truth, result, log = run("offline")
    # Pass 1: J f1..f5 = 1, .5, .6, .25, .75 -> f4; three clicks B, C, D fix it (and f5 after).
    # Pass 2: f2 (.5) is the worst; C and D fix it, no error left for a third click; f3 gains
    # C, D: {A,B,C,D,E}, J .8. Pass 3: f3; one negative click on E. Four frames: stop.
    assert [i.frame for i in result.interactions] == [0, 4, 2, 3]
    assert [i.clicks for i in result.interactions] == [FIRST, [click(B), click(C), click(D)],
                                                       [click(C), click(D)], [click(E, False)]]
    assert [i.j_before for i in result.interactions] == [None, 0.25, 0.5, 0.8]
    assert [i.j_after for i in result.interactions] == [0.75, 1.0, 1.0, 1.0]
    assert cells_of(result, 2, 5) == {A, B, C, D} and cells_of(result, 3, 3) == {A, B, C, D, E}
    # Scored frames (DAVIS rule): 1..4. J per round: (1+.5+.6+.25)/4, (1+.5+.6+1)/4, (1+1+.8+1)/4, 1.
    scores = [round_scores(truth, masks, [1, 2, 3, 4]) for masks in result.rounds]
    assert [j for j, _ in scores] == pytest.approx([0.5875, 0.775, 0.95, 1.0])
    # F from the traced masks of each round (metrics/vos.py's boundary F is tested on its own).
    traced = [[{A, B, C, D}, {A, B}, {A, B, C, E}, {A}], [{A, B, C, D}, {A, B}, {A, B, C, E}, {A, B, C, D}],
              [{A, B, C, D}, {A, B, C, D}, {A, B, C, D, E}, {A, B, C, D}], [{A, B, C, D}] * 4]
    gt = cells_mask(GT[0])
    for (_, f), masks in zip(scores, traced):
        assert f == pytest.approx(np.mean([boundary_f(gt, cells_mask(m)) for m in masks]))
    # Each pass re-propagates from the first frame (pass_start: first_frame).
    assert [e[1:] for e in log if e[0] == "propagate"] == [(0, False, None)] * 4


def test_online_matches_the_hand_trace():
    truth, result, log = run("online")
    # f1 J 1; f2 .5 < .75: pause (the pass first runs on without clicks: round 1 = offline's
    # round 1). C, D fix f2 and reach f3 ({A,B,C,D,E}, .8 >= .75, no pause); f4 .25: pause, B, C, D;
    # f5 then {A,B,C,D}. No frame below .75 is left: three interacted frames of four allowed.
    assert [i.frame for i in result.interactions] == [0, 2, 4]
    assert [i.clicks for i in result.interactions] == [FIRST, [click(C), click(D)], [click(B), click(C), click(D)]]
    assert [i.j_before for i in result.interactions] == [None, 0.5, 0.25]
    scores = [round_scores(truth, masks, [1, 2, 3, 4]) for masks in result.rounds]
    # Round 2 is the run that stops after two frames: f4 keeps the tracker's {A} (J .25).
    assert [j for j, _ in scores] == pytest.approx([0.5875, (1 + 1 + 0.8 + 0.25) / 4, 0.95])
    assert cells_of(result, 2, 4) == {A} and cells_of(result, 3, 5) == {A, B, C, D}
    # Frames before a pause are never re-tracked: propagation restarts at the paused frame.
    assert [e[1] for e in log if e[0] == "propagate"] == [0, 2, 4]


def test_metrics_carry_the_last_round_and_average_objects():
    objects = [{"scored_frames": 4, "J": [0.5, 1.0], "F": [0.7, 0.9], "clicks": 5, "frames": 2},
               {"scored_frames": 4, "J": [0.3], "F": [0.1], "clicks": 3, "frames": 1},
               {"scored_frames": 0, "J": [float("nan")], "F": [float("nan")], "clicks": 3, "frames": 1}]
    m = interactive_metrics(objects, 3)
    assert m["J@1"] == pytest.approx(0.4) and m["F@1"] == pytest.approx(0.4)
    assert m["J@2"] == m["J@3"] == pytest.approx(0.65) and m["F@3"] == pytest.approx(0.5)
    assert m["J&F@2"] == pytest.approx(0.575)
    assert m["J&F"] == pytest.approx((0.4 + 0.575 + 0.575) / 3)
    assert (m["objects"], m["objects_unscored"], m["clicks"]) == (2, 1, pytest.approx(11 / 3))


def test_bootstrap_units_resampled_once_each_give_the_metrics():
    """Sequences as units; an object unscored at a round (NaN, SA-V's rule) or with no scored frame
    is left out of that round's mean, as `interactive_metrics` leaves it out."""
    nan = float("nan")
    payloads = {"s1": [{"scored_frames": 4, "J": [0.5, 1.0], "F": [0.7, 0.9], "clicks": 5, "frames": 2},
                       {"scored_frames": 4, "J": [nan, 0.2, 0.4], "F": [nan, 0.4, 0.6], "clicks": 9, "frames": 3}],
                "s2": [{"scored_frames": 4, "J": [0.3], "F": [0.1], "clicks": 3, "frames": 1}],
                "s3": [{"scored_frames": 0, "J": [nan], "F": [nan], "clicks": 3, "frames": 1}]}
    results = [ImageResult(v, [], {"objects": objects, "skipped": []}) for v, objects in payloads.items()]
    units = VosInteractiveTask(Settings(frames=3)).bootstrap_units(None, results)
    expected = interactive_metrics([o for objects in payloads.values() for o in objects], 3)
    assert units.evaluate(np.arange(3)) == pytest.approx({m: expected[m] for m in ("J&F", "J&F@1", "J&F@2", "J&F@3")})
    # one sequence drawn three times: its own metrics
    alone = interactive_metrics(payloads["s2"], 3)
    assert units.evaluate(np.array([1, 1, 1]))["J&F"] == pytest.approx(alone["J&F"])
    ci = units.intervals(200, 0)
    assert ci["J&F_ci_low"] <= expected["J&F"] <= ci["J&F_ci_high"] and ci == units.intervals(200, 0)  # seeded


def test_ties_and_pass_start_options():
    # Pass 1 of the offline trace with f2 and f4 both at J .5: earliest picks f2, latest f4.
    base = [{A}, {A, B, C, D}, {A, B}, {A, B, C, E}, {C, D}, {A, B, C}]
    for ties, frame in (("earliest", 2), ("latest", 4)):
        video, model = sample(GT), ScriptedVideoSegmenter(base)
        truth = ObjectTruth.of(video, 1)
        result = offline(model.open_video(video.frames), truth,
                         Settings(frames=2, frame_ties=ties, pass_start="interacted"), truth.frames)
        assert result.interactions[1].frame == frame
        # pass_start interacted: forward from the frame, then back to the first frame
        assert [e[1:] for e in model.log if e[0] == "propagate"][-2:] == [(frame, False, None), (frame, True, frame)]


def test_bad_options_are_one_line():
    with pytest.raises(ConfigError, match="option setting of task 'vos_interactive': 'both'"):
        Settings(setting="both")
    with pytest.raises(ConfigError, match="option threshold"):
        Settings(threshold=1.5)


# --- runner level: the stand-in tracker on a DAVIS-layout folder ---------------------------------
VIDEOS = {  # frame t -> {object id: cells}
    "a": [{1: {A, B, C}}] * 6,
    "b": [{1: {A, D}, 2: {E}}] * 5,
    "c": [{1: {B, C, D}}] * 6,
}
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis_standin")
    write_davis(root, VIDEOS)
    register()
    return root


def run_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "vos_interactive", "--model", "scripted_video", "--dataset", "davis2017",
            "--data-root", str(root), "--out", str(out), "--frames", "3", *extra]


@pytest.fixture(scope="module")
def finished(davis_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vosi_run")
    assert main(run_args(davis_root, out)) == 0
    return out


def test_run_records_every_round_and_scores_like_the_protocol(davis_root, finished):
    task_dir = finished / "vos_interactive" / "davis2017"
    items = pd.read_csv(task_dir / "items.csv", dtype={"frame": str})
    metrics = json.loads((task_dir / "metrics.json").read_text())
    # The same loop called directly on the reader's videos gives the same rows and numbers.
    dataset = open_dataset("davis2017", str(davis_root), "val", None, 0)
    objects = []
    for i in range(len(dataset)):
        video = dataset.get(i)
        for object_id in sorted(video.objects):
            truth = ObjectTruth.of(video, object_id)
            result = offline(FileVideoSegmenter().open_video(video.frames), truth, Settings(frames=3), truth.frames)
            scores = [round_scores(truth, masks, scored_frames(video.annotated, 0, "first_last")) for masks in result.rounds]
            rows = items[(items.image_id == video.video_id) & (items.object_id == object_id)]
            assert list(rows.frame) == [video.frames.names[x.frame] for x in result.interactions]
            assert list(rows.n_clicks) == [len(x.clicks) for x in result.interactions]
            assert list(rows.J) == pytest.approx([s[0] for s in scores])
            objects.append({"scored_frames": 1, "J": [s[0] for s in scores], "F": [s[1] for s in scores],
                            "clicks": sum(len(x.clicks) for x in result.interactions), "frames": len(result.interactions)})
    assert (metrics.pop("baseline"), metrics.pop("objects_skipped")) == (0, 0)  # a tracker; every object prompted
    intervals = {k: metrics.pop(k) for k in list(metrics) if "_ci_" in k}
    assert metrics == pytest.approx(interactive_metrics(objects, 3))
    # 95% intervals over the 3 sequences (seed 0): J&F and each J&F@k, the point value inside
    assert sorted(intervals) == sorted(f"{m}_ci_{e}" for m in ("J&F", "J&F@1", "J&F@2", "J&F@3") for e in ("low", "high"))
    for m in ("J&F", "J&F@1", "J&F@2", "J&F@3"):
        assert intervals[f"{m}_ci_low"] <= metrics[m] <= intervals[f"{m}_ci_high"]
    units = UnitSample.from_json(json.loads((task_dir / UNITS_FILE).read_text()))
    assert (units.unit, units.ids) == ("sequence", ["a", "b", "c"])
    assert units.evaluate(np.arange(3)) == pytest.approx({m: metrics[m] for m in units.data})
    assert metrics["objects"] == 4 and metrics["J&F@3"] > metrics["J&F@1"]
    first = items.iloc[0]
    assert (first.k, first.prompt, first.n_clicks) == (1, "clicks", len(first.clicks.split()))
    report = (finished / "report.md").read_text()
    assert "### Offline: J&F (%) after k interacted frames" in report and "[open] ties between frames" in report
    evidence = next(x for x in report.splitlines() if x.startswith("| davis2017 / ") and " split; " in x)
    low, high = (100 * intervals[f"J&F_ci_{e}"] for e in ("low", "high"))
    assert f"| {100 * metrics['J&F']:.1f} [{low:.1f}, {high:.1f}] |" in evidence
    # headline: SAM 2's summary J&F (J&F@8 too, which this 3-frame run has not); the curve is the section's table
    assert "| dataset / run | data | J&F |\n" in report and "| @1 | @2 | @3 | mean | clicks |" in report
    assert (finished / "figures/vos_interactive_curves.png").stat().st_size > 0
    assert (task_dir / "jf_curve.png").stat().st_size > 0


def test_same_inputs_give_byte_identical_results(davis_root, finished, tmp_path):
    assert main(run_args(davis_root, tmp_path)) == 0
    for name in ("items.csv", "metrics.json"):
        path = Path("vos_interactive/davis2017") / name
        assert (tmp_path / path).read_bytes() == (finished / path).read_bytes()


def test_resume_after_kill_redoes_at_most_the_current_video(davis_root, finished, tmp_path):
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import video_standin; video_standin.register(); "
            "from sam_bench.cli import main; raise SystemExit(main(sys.argv[3:]))")
    argv = [sys.executable, "-c", code, str(ROOT / "tests"), str(ROOT),
            *run_args(davis_root, tmp_path, "--model-args", "delay=0.1")]
    part = tmp_path / "vos_interactive" / ".davis2017.staging" / "progress" / "part-0.jsonl"
    proc = subprocess.Popen(argv, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (part.exists() and part.read_text().count("\n")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.read_text().count("\n") == 1, "the kill should land in the second video"
    assert main(run_args(davis_root, tmp_path, "--model-args", "delay=0.1")) == 0  # resume in this process
    record = json.loads((tmp_path / "run.json").read_text())["tasks"]["vos_interactive/davis2017"]
    assert record["images_resumed"] == 1  # the first video was kept, the second redone
    for name in ("items.csv", "metrics.json"):
        path = Path("vos_interactive/davis2017") / name
        assert (tmp_path / path).read_bytes() == (finished / path).read_bytes()


@pytest.mark.parametrize("first", ["mask", "box"])
def test_first_interaction_mask_or_box(first):
    truth, result, log = run("offline", first=first)
    assert (result.interactions[0].prompt, result.interactions[0].clicks, result.interactions[0].j_after) == (first, [], 1.0)
    expected = ("mask", 0, 1) if first == "mask" else ("box", 0, 1, (1.0, 1.0, 12.0, 12.0))  # x0 y0 x1+1 y1+1
    assert log[0] == expected
    # frame 0 is perfect from the start, so the corrective frames are the traced ones: f4 then f2 and f3
    assert [i.frame for i in result.interactions] == [0, 4, 2, 3]


def test_propagate_each_click_passes_between_the_clicks_of_a_frame():
    _, plain, _ = run("offline")
    _, each, log = run("offline", propagate_each_click=True)
    assert [(i.frame, i.clicks) for i in each.interactions] == [(i.frame, i.clicks) for i in plain.interactions]
    # The first frame's clicks come before any pass; f4 (3 clicks) and f2 (2) add 2 + 1 passes; f3 (1) none.
    kinds = [e[0] for e in log]
    assert kinds.count("propagate") == 4 + 3
    f4 = [e[0] for e in log[log.index(("points", 4, 1, ((9.0, 3.0),), (1,))):]][:5]
    assert f4 == ["points", "propagate", "points", "propagate", "points"]


def test_an_image_dataset_is_one_line(synthetic_roots, tmp_path, capsys):
    register()
    argv = ["run", "--task", "vos_interactive", "--model", "scripted_video", "--dataset", "demo",
            "--data-root", str(synthetic_roots["demo"]), "--out", str(tmp_path), "--limit", "1"]
    assert main(argv) != 0
    assert "task 'vos_interactive' needs a video dataset; 'demo' holds images" in capsys.readouterr().err
