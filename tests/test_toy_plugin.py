"""examples/sam_bench_toy_plugin registers a model through the `sam_bench.models` entry point."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sam_bench import plugins
from sam_bench.core.types import Prompts
from sam_bench.registry import MODELS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sam_bench_toy_plugin"


@pytest.fixture
def installed_toy_plugin(tmp_path, monkeypatch):
    """The example package as pip would install it: its code on sys.path plus a dist-info with
    the entry point, found by importlib.metadata like any installed distribution."""
    dist = tmp_path / "sam_bench_toy_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sam-bench-toy-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[sam_bench.models]\ntoy_disk = sam_bench_toy_plugin.disk\n"
                                            "toy_still = sam_bench_toy_plugin.still\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(plugins, "_loaded", False)
    yield
    for name in ("toy_disk", "toy_still"):  # keep the global registry as other tests expect it
        MODELS._entries.pop(name, None)
        MODELS._help.pop(name, None)
    for name in [m for m in sys.modules if m.startswith("sam_bench_toy_plugin")]:
        del sys.modules[name]


def test_entry_point_registers_the_toy_model(installed_toy_plugin, capsys):
    from sam_bench.cli import list_entries

    plugins.load_plugins()
    list_entries("models")
    assert "toy_disk" in capsys.readouterr().out
    model = MODELS.get("toy_disk")(radius="3")  # --model-args arrive as strings
    embedding = model.encode(np.zeros((20, 30, 3), np.uint8))
    decoded = model.decode(embedding, Prompts(np.array([[[10.0, 8.0], [0.0, 0.0]]]), np.array([[1, 0]])), True)
    mask = model.upsample(embedding, decoded.low_res_logits)[0, 0].numpy() > model.mask_threshold
    ys, xs = np.mgrid[:20, :30] + 0.5
    assert np.array_equal(mask, (xs - 10) ** 2 + (ys - 8) ** 2 <= 9)


def test_entry_point_registers_a_video_model(installed_toy_plugin):
    """`toy_still`: a VideoSegmenter plugin; objects keep their prompt's mask, frames come in SAM 2's order."""
    from sam_bench.data.video import VideoFrames
    from sam_bench.models.video import VideoSegmenter
    from sam_bench.models.video_baseline import as_video_segmenter

    plugins.load_plugins()
    model = MODELS.get("toy_still")()
    assert isinstance(model, VideoSegmenter) and as_video_segmenter(model) is model
    frames = VideoFrames([f"{i:05d}" for i in range(4)], [Path(f"{i}.jpg") for i in range(4)], 20, 30,
                         lambda i: np.zeros((20, 30, 3), np.uint8))
    session = model.open_video(frames)
    mask = np.zeros((20, 30), bool)
    mask[5:9, 3:12] = True
    assert np.array_equal(session.add_mask(1, 4, mask)[4], mask)
    box = session.add_box(2, 6, np.array([0, 0, 4, 2]))[6]
    assert box.sum() == 15 and box[:3, :5].all()
    tracked = list(session.propagate())
    assert [f for f, _ in tracked] == [1, 2, 3]
    assert all(np.array_equal(masks[4], mask) and np.array_equal(masks[6], box) for _, masks in tracked)
    assert [f for f, _ in session.propagate(start_frame=2, reverse=True)] == [2, 1, 0]
