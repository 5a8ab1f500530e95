"""Task `vos` end to end with a scripted VideoSegmenter whose masks are known (exact J&F against the
independent metric implementation of test_vos_metrics), scoring a predictions folder, the readers on
the real samples, bad files named in one line, and resume after kill -9 without redoing a video."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vos_scripted  # noqa: F401  (registers the model)
from sam_bench.api import run
from sam_bench.data.registry import open_dataset
from sam_bench.data.vos_submission import resolve_overlaps
from sam_bench.errors import DataError
from test_vos_metrics import ref_f, ref_j
from vos_scripted import expected_mask

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def davis_root(shared_data: Path, tmp_path_factory) -> Path:
    """DAVIS 2017 layout with two videos: the real judo sample and a second name for the same files."""
    sample = shared_data / "davis2017_sample"
    root = tmp_path_factory.mktemp("davis")
    for kind in ("JPEGImages", "Annotations"):
        (root / kind / "480p").mkdir(parents=True)
        for name in ("judo", "judo2"):
            (root / kind / "480p" / name).symlink_to(sample / kind / "480p" / "judo")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("judo\njudo2\n")
    return root


def _gt(davis_root: Path) -> list[np.ndarray]:
    folder = davis_root / "Annotations" / "480p" / "judo"
    return [np.array(Image.open(folder / f"{t:05d}.png")).astype(np.int32) for t in range(16)]


def _expected_metrics(davis_root: Path, prompt_masks: dict[int, np.ndarray]) -> dict[str, float]:
    gt = _gt(davis_root)
    per_object = {}
    for k, m in prompt_masks.items():
        js, fs = [], []
        for t in range(1, 15):
            pred = resolve_overlaps({o: expected_mask(pm, 0, t) for o, pm in prompt_masks.items()}, gt[t].shape)
            js.append(ref_j(gt[t] == k, pred == k))
            fs.append(ref_f(gt[t] == k, pred == k))
        per_object[k] = (np.mean(js), np.mean(fs))
    j = np.mean([v[0] for v in per_object.values()])
    f = np.mean([v[1] for v in per_object.values()])
    return {"J_mean": j, "F_mean": f, "J&F": (j + f) / 2}


def test_readers_on_the_real_samples(shared_data):
    davis = open_dataset("davis2017", str(shared_data / "davis2017_sample"))
    sample = davis.get(0)
    assert davis.image_ids() == ["judo"] and sample.objects == {1: 0, 2: 0} and sample.annotated == list(range(16))
    assert (sample.height, sample.width) == (480, 854) and sample.frames.frame(3).shape == (480, 854, 3)
    assert set(np.unique(sample.load_annotation(5)).tolist()) <= {0, 1, 2}
    with pytest.raises(DataError, match="ImageSets/2016/val.txt: video list not found"):
        open_dataset("davis2016", str(shared_data / "davis2017_sample"))
    from sam_bench.data.readers.vos import VideoFolderDataset

    merged = VideoFolderDataset(shared_data / "davis2017_sample", frames="JPEGImages/480p",
                                annotations="Annotations/480p", merge_objects=True).get(0)
    assert merged.objects == {1: 0}
    assert np.array_equal(merged.load_annotation(4) == 1, sample.load_annotation(4) > 0)

    later = VideoFolderDataset(shared_data / "later_objects_sample", frames="JPEGImages", annotations="Annotations")
    with pytest.raises(DataError, match=r"Annotations/judo/00005\.png: annotation is 853x480, the video's frames are 854x480"):
        later.get(0)


def test_later_objects_defect_is_one_line(shared_data, tmp_path, capsys):
    root = tmp_path / "yt"
    (root / "train").mkdir(parents=True)
    for kind in ("JPEGImages", "Annotations"):
        (root / "train" / kind).symlink_to(shared_data / "later_objects_sample" / kind)
    (root / "train" / "meta.json").write_text(json.dumps({"videos": {"judo": {"objects": {}}}}))
    from sam_bench.cli import main

    assert main(["data", "check", "ytvos2019", "--data-root", str(root), "--split", "train"]) == 1
    out = capsys.readouterr().out
    assert "train/Annotations/judo/00005.png: annotation is 853x480, the video's frames are 854x480" in out
    code = main(["run", "--task", "vos", "--model", "scripted_vos", "--dataset", "ytvos2019", "--split", "train",
                 "--data-root", str(root), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "00005.png: annotation is 853x480" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def finished(davis_root, tmp_path_factory) -> tuple[Path, dict[str, float]]:
    out = tmp_path_factory.mktemp("vos_run")
    return out, run("vos", "scripted_vos", "davis2017", out=out, data_root=str(davis_root))


def test_end_to_end_exact_jf_and_predictions_score_the_same(davis_root, finished, tmp_path):
    gt0 = _gt(davis_root)[0]
    expected = _expected_metrics(davis_root, {1: gt0 == 1, 2: gt0 == 2})
    out, metrics = finished
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(v, abs=1e-12), k
    assert metrics["videos"] == 2 and metrics["objects"] == 4 and metrics["frames"] == 32
    task_dir = out / "vos" / "davis2017"
    pred = task_dir / "predictions"
    assert sorted(p.name for p in (pred / "judo").iterdir()) == [f"{t:05d}.png" for t in range(16)]
    png = Image.open(pred / "judo" / "00004.png")
    assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]  # DAVIS palette: id 1 is dark red
    for name in ("objects.csv", "sequences.csv", "jf_per_sequence.png", "items.csv"):
        assert (task_dir / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "J&F (%) per dataset" in report and "SAM 2 Hiera-L (paper model, not a released checkpoint)" in report
    # the same files scored as a submission folder made elsewhere: the same numbers
    again = run("vos", None, "davis2017", out=tmp_path / "scored", data_root=str(davis_root),
                options={"predictions": str(pred)})
    for k in ("J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        assert again[k] == metrics[k], k
    # per-object J and F per frame are kept for resampling
    record = json.loads((task_dir / "progress").glob("*.jsonl").__next__().read_text().splitlines()[0])
    assert len(record["payload"]["objects"][0]["j"]) == 14
    # intervals over sequences: all of them drawn once give the dataset's numbers
    from sam_bench.metrics.bootstrap import UnitSample

    units = UnitSample.from_json(json.loads((task_dir / "units.json").read_text()))
    assert units.unit == "sequence" and len(units.ids) == 2
    for k, v in units.evaluate(np.arange(2)).items():
        assert v == pytest.approx(metrics[k], abs=1e-12), k
    assert metrics["J&F_ci_low"] <= metrics["J&F"] <= metrics["J&F_ci_high"]


@pytest.mark.parametrize("damage, message", [
    ("missing", r"judo/00007\.png: prediction of frame 00007 of video 'judo' missing"),
    ("extra_id", r"judo/00003\.png: object id\(s\) 7 not in the ground truth of video 'judo' \(objects 1, 2\)"),
    ("size", r"judo/00002\.png: annotation is 853x480, the video's frames are 854x480"),
])
def test_bad_prediction_files_are_named(davis_root, tmp_path, capsys, damage, message):
    from sam_bench.cli import main

    gt_folder = davis_root / "Annotations" / "480p" / "judo"
    pred = tmp_path / "pred"
    for video in ("judo", "judo2"):
        shutil.copytree(gt_folder, pred / video)
    target = pred / "judo"
    if damage == "missing":
        (target / "00007.png").unlink()
    elif damage == "extra_id":
        ids = np.array(Image.open(target / "00003.png"))
        ids[:5, :5] = 7
        Image.fromarray(ids).save(target / "00003.png")
    else:
        Image.fromarray(np.zeros((480, 853), np.uint8)).save(target / "00002.png")
    code = main(["run", "--task", "vos", "--dataset", "davis2017", "--data-root", str(davis_root),
                 "--predictions", str(pred), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0
    assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1, err
    import re

    assert re.search(message, err), err


def test_prompt_box_and_clicks_reach_the_model(davis_root, tmp_path):
    box = run("vos", "scripted_vos", "davis2017", out=tmp_path / "box", data_root=str(davis_root), limit=1,
              options={"prompt": "box"})
    gt0 = _gt(davis_root)[0]
    boxes = {}
    for k in (1, 2):
        ys, xs = np.nonzero(gt0 == k)
        m = np.zeros(gt0.shape, bool)
        m[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        boxes[k] = m
    assert box["J&F"] == pytest.approx(_expected_metrics(davis_root, boxes)["J&F"], abs=1e-12)
    clicks = run("vos", "scripted_vos", "davis2017", out=tmp_path / "clicks", data_root=str(davis_root), limit=1,
                 options={"prompt": "clicks", "clicks": 3})
    record = json.loads(next((tmp_path / "clicks" / "vos" / "davis2017" / "progress").glob("*.jsonl")).read_text())
    given = record["payload"]["prompts"]
    from sam_bench.prompts.clicks import center_click

    first = center_click(gt0 == 1)
    assert given["1"][0] == [first.x, first.y, 1] and len(given["1"]) == 3
    assert 0 < clicks["J&F"] < 1


def test_resume_after_kill_does_not_redo_a_finished_video(davis_root, finished, tmp_path):
    out, log = tmp_path / "killed", tmp_path / "opened.txt"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "VOS_SCRIPTED_LOG": str(log),
           "VOS_SCRIPTED_DELAY": "0.1"}
    script = ("import sys, vos_scripted; from sam_bench.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", script, "run", "--task", "vos", "--model", "scripted_vos", "--dataset", "davis2017",
           "--data-root", str(davis_root), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = out / "vos" / ".davis2017.staging" / "progress"
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.stat().st_size for p in progress.glob("*.jsonl")):
        time.sleep(0.05)
    time.sleep(0.3)  # into the second video
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert log.read_text().split() == ["judo", "judo2"], "the kill should land in the second video"
    done = subprocess.run(cmd, env={**env, "VOS_SCRIPTED_DELAY": "0"}, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["judo", "judo2", "judo2"]  # judo was not redone
    metrics = json.loads((out / "vos" / "davis2017" / "metrics.json").read_text())
    assert metrics["J&F"] == finished[1]["J&F"]  # the same numbers as an uninterrupted run


def test_sav_layout_per_object_files_scored_as_sav_evaluator(shared_data, tmp_path):
    """SA-V layout built from the DAVIS sample: per-object binary PNGs every 4th frame, objects that
    overlap in the ground truth; inference on all 16 frames, scoring on annotated frames 4 and 8."""
    from scipy import ndimage

    sample = shared_data / "davis2017_sample"
    root = tmp_path / "sav"
    (root / "sav_val" / "JPEGImages_24fps").mkdir(parents=True)
    (root / "sav_val" / "JPEGImages_24fps" / "judo").symlink_to(sample / "JPEGImages" / "480p" / "judo")
    ids = {t: np.array(Image.open(sample / "Annotations" / "480p" / "judo" / f"{t:05d}.png")) for t in range(16)}
    gt = {t: {1: ndimage.binary_dilation(ids[t] == 1, iterations=6), 2: ids[t] == 2} for t in (0, 4, 8, 12)}
    assert any((g[1] & g[2]).any() for g in gt.values())  # the objects overlap
    for t, objects in gt.items():
        for k, mask in objects.items():
            folder = root / "sav_val" / "Annotations_6fps" / "judo" / f"{k:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8)).save(folder / f"{t:05d}.png")
    (root / "sav_val" / "sav_val.txt").write_text("judo\n")
    out = tmp_path / "o"
    metrics = run("vos", "scripted_vos", "sav", out=out, data_root=str(root), split="val")
    js, fs = [], []
    for k in (1, 2):
        j = [ref_j(gt[t][k], expected_mask(gt[0][k], 0, t)) for t in (4, 8)]
        f = [ref_f(gt[t][k], expected_mask(gt[0][k], 0, t)) for t in (4, 8)]
        js.append(np.mean(j))
        fs.append(np.mean(f))
    assert metrics["J_mean"] == pytest.approx(np.mean(js), abs=1e-12)
    assert metrics["F_mean"] == pytest.approx(np.mean(fs), abs=1e-12)
    pred = out / "vos" / "sav" / "predictions" / "judo"
    assert sorted(p.name for p in pred.iterdir()) == ["001", "002"]
    assert len(list((pred / "001").glob("*.png"))) == 16  # every 24 fps frame
    both = [np.array(Image.open(pred / f"{k:03d}" / "00003.png")) > 0 for k in (1, 2)]
    assert (both[0] & both[1]).any()  # overlaps kept, one file per object
    again = run("vos", None, "sav", out=tmp_path / "scored", data_root=str(root), split="val",
                options={"predictions": str(out / "vos" / "sav" / "predictions")})
    assert again["J&F"] == metrics["J&F"]


def test_objects_given_on_later_frames_and_a_server_split(shared_data, tmp_path, capsys, monkeypatch):
    """YouTube-VOS valid layout from the later-objects sample (its one-pixel-narrow 00005.png padded
    here): objects prompted on frames 0, 5, 8, 13; the submission is written, no number."""
    src = shared_data / "later_objects_sample"
    root = tmp_path / "yt" / "valid"
    (root / "Annotations" / "judo").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "JPEGImages" / "judo").symlink_to(src / "JPEGImages" / "judo")
    for png in (src / "Annotations" / "judo").glob("*.png"):
        im = Image.open(png)
        values = np.array(im)
        if values.shape[1] == 853:
            values = np.pad(values, ((0, 0), (0, 1)))
        fixed = Image.fromarray(values, mode="P")
        fixed.putpalette(im.getpalette())
        fixed.save(root / "Annotations" / "judo" / png.name)
    (root / "meta.json").write_text(json.dumps({"videos": {"judo": {"objects": {}}}}))
    dataset = open_dataset("ytvos2019", str(tmp_path / "yt"))
    assert dataset.get(0).objects == {1: 0, 2: 5, 3: 8, 4: 13}
    out = tmp_path / "o"
    monkeypatch.setenv("VOS_SCRIPTED_LOG", str(tmp_path / "opened.txt"))
    metrics = run("vos", "scripted_vos", "ytvos2019", out=out, data_root=str(tmp_path / "yt"))
    assert (tmp_path / "opened.txt").read_text().split() == ["judo"] * 4  # one session per object, as sam2's script
    assert "J&F" not in metrics and metrics["videos"] == 1 and metrics["objects"] == 4
    assert "send it to the YouTube-VOS 2019 server" in capsys.readouterr().out
    pred = out / "vos" / "ytvos2019" / "predictions" / "Annotations" / "judo"
    assert len(list(pred.glob("*.png"))) == 16
    frame4, frame5 = (np.array(Image.open(pred / f"{t:05d}.png")) for t in (4, 5))
    assert 2 not in frame4 and 2 in frame5 and 4 not in frame5  # objects exist from their prompt frame on
    record = json.loads(next((out / "vos" / "ytvos2019" / "progress").glob("*.jsonl")).read_text())
    assert record["payload"]["objects"] == []
    report = (out / "report.md").read_text()
    assert "Server-only splits (no local number)" in report


def test_sav_rule_counts_an_object_from_where_it_is_seen():
    """sav_evaluator adds an object to its set when it first appears in the ground truth or the
    prediction: earlier frames where both are empty are not averaged (DAVIS counts them as 1)."""
    from sam_bench.data.video import VideoFrames, VideoSample
    from sam_bench.tasks.vos.video import VideoScorer

    shape = (20, 20)
    gt = {t: np.zeros(shape, np.int32) for t in range(6)}
    for t in (3, 4):
        gt[t][5:10, 5:10] = 1
    frames = VideoFrames([f"{t:05d}" for t in range(6)], [], 20, 20, load=lambda i: None)
    sample = VideoSample("v", frames, {1: 0}, list(range(6)), gt.__getitem__)
    pred = {t: {1: gt[t] == 1} for t in range(6)}
    pred[3][1][:] = False  # a miss on frame 3
    results = {}
    for rule in ("first_last", "sav"):
        scorer = VideoScorer(sample, rule)
        for t in range(6):
            scorer.add(t, pred[t])
        results[rule] = scorer.scores[1]
    assert results["first_last"].frames == [1, 2, 3, 4] and results["first_last"].j == [1.0, 1.0, 0.0, 1.0]
    assert results["sav"].frames == [3, 4] and results["sav"].j == [0.0, 1.0]


def test_a_tracker_beneath_the_runners_wrappers_is_used():
    from sam_bench.models.checked import FiniteOutputs
    from sam_bench.models.base import PromptableSegmenter
    from sam_bench.tasks.vos.task import video_segmenter
    from vos_scripted import ScriptedSegmenter

    class Both(ScriptedSegmenter, PromptableSegmenter):  # a family that is both (as sam2 may be)
        encode = decode = upsample = None

    model = Both()
    assert video_segmenter(FiniteOutputs(model)) is model


def test_data_check_names_a_missing_frame(shared_data, tmp_path, capsys):
    from sam_bench.cli import main

    sample = shared_data / "davis2017_sample"
    root = tmp_path / "davis"
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        folder = root / kind / "480p" / "judo"
        folder.mkdir(parents=True)
        for t in range(16):
            if not (kind == "JPEGImages" and t == 7):
                (folder / f"{t:05d}.{ext}").symlink_to(sample / kind / "480p" / "judo" / f"{t:05d}.{ext}")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("judo\n")
    assert main(["data", "check", "davis2017", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "JPEGImages/480p/judo: frame 00007.jpg missing (frames are numbered without gaps)" in out
    assert "Annotations/480p/judo/00007.png: annotation without a frame" in out


@pytest.mark.parametrize("separately", [False, True])
def test_overlap_rule_follows_sam2s_script(tmp_path, separately):
    """Joint tracking: the lowest id wins an overlap (put_per_obj_mask). Objects tracked on their own
    (later objects): the higher logit wins (_apply_non_overlapping_constraints), then logits > 0."""
    from sam_bench.data.video import VideoFrames, VideoSample
    from sam_bench.tasks.vos.video import track_video
    from vos_scripted import ScriptedSegmenter, ScriptedSession

    class Louder(ScriptedSession):  # object 2's logits are twice object 1's
        def propagate_logits(self, *args, **kwargs):
            for t, logits in super().propagate_logits(*args, **kwargs):
                yield t, {k: v * k for k, v in logits.items()}

    class Segmenter(ScriptedSegmenter):
        def open_video(self, frames):
            return Louder(frames)

    ids = np.zeros((8, 8), np.int32)
    ids[2:6, 2:6] = 1
    gt = {0: ids.copy(), 1: ids.copy()}
    gt[1][4:8, 4:8] = 2  # object 2 appears on frame 1, overlapping object 1's mask
    frames = VideoFrames(["00000", "00001", "00002"], [], 8, 8, load=lambda i: None)
    sample = VideoSample("v", frames, {1: 0, 2: 1}, [0, 1], gt.__getitem__)
    track_video(Segmenter(), sample, "mask", 1, tmp_path / "pred", "davis", None, separately, progress=False)
    written = np.array(Image.open(tmp_path / "pred" / "v" / "00001.png"))
    # frame 1: object 1 moved 3 px right (rows 2-5, columns 5-7), object 2 at rows 4-7, columns 4-7
    assert written[4, 5] == (2 if separately else 1)
    assert written[2, 5] == 1 and written[7, 4] == 2 and written[0, 0] == 0
