"""Issue 10: scoring workers die with a parent killed by SIGKILL; the torchrun group is torn down;
cache entries of the wrong shape are recomputed; detections and skipped objects are reported."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

POOL_SCRIPT = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from sam_bench.core.workers import die_with_parent
pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent,
                           initargs=(os.getpid(),))
futures = [pool.submit(time.sleep, 60) for _ in range(2)]
time.sleep(1.0)
print(" ".join(str(p) for p in pool._processes), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _kill_and_expect_gone(parent: subprocess.Popen, workers: list[int], message: str) -> None:
    """SIGKILL `parent`, then wait up to 10 s for every worker pid to be gone."""
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")
def test_pool_workers_die_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(ROOT)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    _kill_and_expect_gone(parent, workers, "workers outlived their killed parent")


def test_cache_entry_of_the_wrong_shape_is_recomputed(tiny_model, tmp_path, caplog):
    from sam_bench.core.cache import EmbeddingCache
    from sam_bench.models.cached import CachedSegmenter

    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)
    cached = CachedSegmenter(tiny_model, EmbeddingCache(tmp_path))
    first = cached.encode(image)
    entry = next(tmp_path.glob("??/*.npz"))
    np.savez(entry, **{"f:image_embed": np.zeros((1, 8, 4, 4), np.float16)}, original_size=np.array([40, 50]),
             input_size=np.array([819, 1024]), meta=np.array("{}"))  # valid npz, wrong shape
    fresh = CachedSegmenter(tiny_model, EmbeddingCache(tmp_path))
    with caplog.at_level(logging.WARNING):
        again = fresh.encode(image)
    assert f"embedding cache entry {entry} is not an embedding of this model" in caplog.text
    assert torch.equal(again.features["image_embed"], first.features["image_embed"])
    assert fresh.cache.misses == 1 and fresh.cache.hits == 0


def test_detections_outside_the_run_and_empty_files_are_warned(tmp_path, caplog):
    from sam_bench.data.coco_results import load_detections, warn_detection_coverage
    from sam_bench.errors import DataError

    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": i, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}
                                for i in (1, 1, 7, 8)]))
    with caplog.at_level(logging.WARNING):
        warn_detection_coverage(load_detections(path, {1}), ["1", "2"])
    assert f"{path}: 2 detections for 2 image ids not in this run's images" in caplog.text
    assert f"{path}: 1 of the run's 2 images have no detection" in caplog.text
    path.write_text("[]")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warn_detection_coverage(load_detections(path, {1}), ["1"])
    assert f"{path}: holds no detections" in caplog.text
    path.write_text("<html>not json</html>")
    with pytest.raises(DataError, match=r"dets.json: not a JSON array of detections .* it starts with '<html>"):
        load_detections(path, {1})
    path.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0')
    with pytest.raises(DataError, match=r"dets.json: invalid or truncated JSON at character 1: "):
        load_detections(path, {1})


def test_runs_without_a_terminal_log_the_time_left(caplog, monkeypatch):
    from sam_bench.engine import eta

    monkeypatch.setattr(eta.sys.stderr, "isatty", lambda: False, raising=False)
    clock = iter([0.0, 10.0, 20.0, 30.0])
    monkeypatch.setattr(eta.time, "perf_counter", lambda: next(clock))
    log = eta.EtaLog("point/demo", 100, enabled=True)
    with caplog.at_level(logging.INFO):
        log.step()  # first image: 10 s -> 99 images left
        log.step()  # within the minute: quiet
    assert caplog.messages == ["point/demo: 1/100 images, 10.0 s per image, about 16 min 30 s left"]


def test_loader_workers_die_with_a_killed_run(synthetic_roots, tmp_path):
    """`kill -9` of a run must not leave its DataLoader workers (same command line) behind."""
    out = tmp_path / "killed"
    args = [sys.executable, str(ROOT / "run_bench.py"), "run", "--task", "point", "--model", "tiny",
            "--dataset", "demo", "--data-root", str(synthetic_roots["demo"]), "--out", str(out),
            "--device", "cpu", "--workers", "1"]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def loader_workers() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != run.pid:
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if str(out).encode() in cmdline:
                    found.append(int(proc.name))
        return found

    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None and not loader_workers():
        time.sleep(0.05)
    workers = loader_workers()
    assert run.poll() is None and workers, "the run should be loading images with a worker"
    _kill_and_expect_gone(run, workers, "loader workers outlived their killed run")
