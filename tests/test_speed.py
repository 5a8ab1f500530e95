"""run.json's speed record (engine/speed.py) and the Pareto front of the accuracy-against-speed charts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sam_bench.config import RunConfig
from sam_bench.engine import speed
from sam_bench.reporting.speed import pareto_front
from sam_bench.runner import run

MiB = 2**20


def test_pareto_front_keeps_the_runs_nothing_beats_on_both_axes():
    # (images per second, accuracy): the fastest first along the front
    points = [(10.0, 50.0), (5.0, 70.0), (4.0, 60.0), (20.0, 40.0), (1.0, 80.0), (5.0, 65.0)]
    assert pareto_front(points) == [3, 0, 1, 4]
    # fewer clicks is better (NoC@90): the front runs the other way
    assert pareto_front(points, lower_better=True) == [3]
    assert pareto_front([(10.0, 9.0), (5.0, 4.0), (2.0, 6.0), (1.0, 3.0)], lower_better=True) == [0, 1, 3]


def _rss_bytes() -> int:
    return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmRSS:"))


def _peak_after_big_allocation(roots: dict[str, Path], out: Path) -> tuple[dict, int]:
    """Allocate and write more than the process holds now plus 512 MiB, free it, run a small point
    task in this process (weight-free: it adds well under 512 MiB); its speed record and the size of
    the allocation."""
    size = _rss_bytes() + 512 * MiB
    big = np.ones(size // 8)  # written, so resident
    assert big[-1] == 1.0
    del big  # a big numpy buffer is an mmap: freed to the system at once
    run(RunConfig(task="point", model="felzenszwalb", dataset="demo", data_root=str(roots["demo"]), out=str(out),
                  device="cpu", ci=0, limit=1, workers=0, options={"max_clicks": 1}))
    return json.loads((out / "run.json").read_text())["tasks"]["point/demo"]["speed"], size


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_is_the_tasks_own_not_an_earlier_allocations(synthetic_roots, tmp_path):
    record, size = _peak_after_big_allocation(synthetic_roots, tmp_path / "task")
    assert record["peak_memory_scope"] == "task"
    # the task's peak holds what the process held when it started and what it added, not the freed buffer
    assert 0 < record["peak_memory_bytes"] < size


def test_peak_memory_falls_back_to_the_process_peak_and_says_so(synthetic_roots, tmp_path, monkeypatch):
    monkeypatch.setattr(speed, "PROC_CLEAR_REFS", tmp_path / "no_such_dir" / "clear_refs")  # no reset possible
    record, size = _peak_after_big_allocation(synthetic_roots, tmp_path / "process")
    assert record["peak_memory_scope"] == "process"
    assert record["peak_memory_bytes"] >= size  # ru_maxrss: the freed buffer counts


def test_scored_later_the_speed_record_names_the_evaluating_process(synthetic_roots, tmp_path, monkeypatch):
    """`--score later`: `sam-bench score` writes run.json on the CPU in another process; the device and
    peak memory are those of the process that evaluated the images (kept in its shard record)."""
    from sam_bench.stages import score_stored

    monkeypatch.setattr(speed, "device_name", lambda device: "the evaluating accelerator")
    run(RunConfig(task="point", model="felzenszwalb", dataset="demo", data_root=str(synthetic_roots["demo"]),
                  out=str(tmp_path), device="cpu", ci=0, limit=1, workers=0, options={"max_clicks": 1}), score=False)
    monkeypatch.undo()
    score_stored(tmp_path / "point" / "demo")
    record = json.loads((tmp_path / "run.json").read_text())["tasks"]["point/demo"]
    assert record["speed"]["device_name"] == "the evaluating accelerator" and "measured" not in record
    assert record["speed"]["peak_memory_scope"] in ("task", "process") and record["speed"]["peak_memory_bytes"] > 0


def test_shards_peak_is_the_largest_of_their_processes():
    parts = [{"device_name": "H200", "device_type": "cuda", "peak_memory_bytes": 5, "peak_memory_scope": "task"},
             {"device_name": "H200", "device_type": "cuda", "peak_memory_bytes": 9, "peak_memory_scope": "process"}]
    assert speed.merge_measured(parts) == {"device_name": "H200", "device_type": "cuda", "peak_memory_bytes": 9,
                                           "peak_memory_scope": "process"}
