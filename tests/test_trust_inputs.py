"""Issue 17, cases 1-2: a finished image is only reused when the files it was computed from are
unchanged (resume and a suite's "already done"), and every path is made absolute before it enters
the run identity or a record. Real GrabCut files, copied and swapped in a temp folder."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from sam_bench.cli import main

NAMES = ("106024", "124080", "153077")  # the copy's images; 181079 is swapped in under a taken name
OTHER = "181079"


def _grabcut_copy(grabcut_root: Path, root: Path, names=NAMES) -> Path:
    for sub in ("data_GT", "boundary_GT"):
        (root / sub).mkdir(parents=True)
    for name in names:
        shutil.copy(grabcut_root / "data_GT" / f"{name}.jpg", root / "data_GT")
        shutil.copy(grabcut_root / "boundary_GT" / f"{name}.bmp", root / "boundary_GT")
    return root


def _swap(grabcut_root: Path, root: Path, name: str) -> None:
    """Another GrabCut image and its trimap under `name` (same file names, other content)."""
    shutil.copy(grabcut_root / "data_GT" / f"{OTHER}.jpg", root / "data_GT" / f"{name}.jpg")
    shutil.copy(grabcut_root / "boundary_GT" / f"{OTHER}.bmp", root / "boundary_GT" / f"{name}.bmp")


def point(data: Path | str, out: Path | str) -> list[str]:
    return ["run", "--task", "point", "--model", "felzenszwalb", "--dataset", "grabcut", "--data-root", str(data),
            "--out", str(out), "--max-clicks", "3", "--workers", "0"]


def test_resume_redoes_an_image_replaced_under_the_same_name(grabcut_root, tmp_path, caplog):
    """Run stops at the third image (damaged); the second image and its mask are replaced by another
    GrabCut pair under the same names; the rerun redoes it, names it, and equals a fresh run."""
    data = _grabcut_copy(grabcut_root, tmp_path / "data")
    third = data / "data_GT" / f"{NAMES[2]}.jpg"
    good = third.read_bytes()
    third.write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    assert main(point(data, out)) == 2  # two images finished, kept in the staging folder
    third.write_bytes(good)
    _swap(grabcut_root, data, NAMES[1])
    with caplog.at_level(logging.WARNING):
        assert main(point(data, out)) == 0
    changed = data / "boundary_GT" / f"{NAMES[1]}.bmp"  # same size as the old trimap: its hash decides
    assert f"{NAMES[1]}: input changed since it was scored (" in caplog.text and str(changed) in caplog.text
    assert f"{NAMES[0]}: input changed" not in caplog.text
    record = json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]
    assert record["action"] == "resume" and record["images_resumed"] == 1
    fresh = tmp_path / "fresh"
    assert main(point(data, fresh)) == 0
    assert (out / "point/grabcut/items.csv").read_bytes() == (fresh / "point/grabcut/items.csv").read_bytes()
    assert (json.loads((out / "point/grabcut/metrics.json").read_text())
            == json.loads((fresh / "point/grabcut/metrics.json").read_text()))


def test_touched_but_unchanged_files_are_not_redone(grabcut_root, tmp_path, caplog):
    """A new mtime with the same bytes (a copy, `touch`) is confirmed by the content hash: kept."""
    data = _grabcut_copy(grabcut_root, tmp_path / "data", NAMES[:2])
    second = data / "data_GT" / f"{NAMES[1]}.jpg"
    good = second.read_bytes()
    second.write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    assert main(point(data, out)) == 2
    second.write_bytes(good)
    first = data / "data_GT" / f"{NAMES[0]}.jpg"
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 5_000_000_000))
    with caplog.at_level(logging.WARNING):
        assert main(point(data, out)) == 0
    assert "input changed" not in caplog.text
    assert json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]["images_resumed"] == 1


def suite(data: Path, out: Path) -> list[str]:
    return ["run", "--suite", "interactive_grabcut", "--model", "felzenszwalb", "--data-root", f"grabcut={data}",
            "--out", str(out), "--limit", "2"]


def test_suite_does_not_call_changed_data_already_done(grabcut_root, tmp_path, capsys):
    data = _grabcut_copy(grabcut_root, tmp_path / "data", NAMES[:2])
    out = tmp_path / "suite"
    assert main(suite(data, out)) == 0
    assert main(suite(data, out)) == 0
    assert "ran 0, already done 1" in capsys.readouterr().out
    _swap(grabcut_root, data, NAMES[1])
    assert main(suite(data, out)) == 0
    assert "ran 1, already done 0" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main(suite(data, fresh)) == 0
    task = "interactive_grabcut/grabcut"
    assert (out / task / "items.csv").read_bytes() == (fresh / task / "items.csv").read_bytes()
    record = json.loads((out / "run.json").read_text())["tasks"][task]
    assert record["inputs_digest"] == json.loads((fresh / "run.json").read_text())["tasks"][task]["inputs_digest"]


def test_relative_data_root_is_recorded_absolute_and_not_resumed_elsewhere(grabcut_root, tmp_path, monkeypatch):
    """The same command with `--data-root data` from two working directories reads two folders: the
    second must start over (not resume the first's images), and every record holds absolute paths."""
    first, second = tmp_path / "a", tmp_path / "b"
    _grabcut_copy(grabcut_root, first / "data", NAMES[:2])
    _grabcut_copy(grabcut_root, second / "data", NAMES[:2])
    _swap(grabcut_root, second / "data", NAMES[0])
    out = tmp_path / "out"
    broken = first / "data" / "data_GT" / f"{NAMES[1]}.jpg"
    good = broken.read_bytes()
    broken.write_bytes(good[:100])
    monkeypatch.chdir(first)
    assert main(point("data", out)) == 2  # stops at the second image, the first is finished
    broken.write_bytes(good)
    monkeypatch.chdir(second)
    assert main(point("data", "../out")) == 0
    record = json.loads((out / "run.json").read_text())["tasks"]["point/grabcut"]
    assert record["config"]["data_root"] == str(second / "data") and record["config"]["out"] == str(out)
    assert record["dataset"]["data_root"] == str(second / "data")
    assert record["action"] == "settings changed since the interrupted run: starting over"
    assert record["images_resumed"] == 0
    assert all(Path(p).is_absolute() for p in json.loads((out / "point/grabcut/inputs.json").read_text()))
