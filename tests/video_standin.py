"""A scripted stand-in VideoSegmenter whose masks are known by construction, for hand-traced
protocol tests (tests/test_vos_interactive.py).

Frames are a grid of 5x5 cells separated by 1 px gaps: cell (r, c) covers rows 6r+1..6r+5 and
columns 6c+1..6c+5, so every cell's RITM click is its centre (6c+3, 6r+3) (distance 3, unique) and
equal cells tie, going to the first in row-major order. Masks are sets of cells.

The "tracker" is causal: its output on frame t is the scripted track `base[t]`, except on prompted
frames (their prompted mask) and where a click on an earlier-or-same frame s >= t - memory set or
removed a cell (later clicks win). Nothing depends on frames after t, as with SAM 2 tracking forward.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from sam_bench.data.video import VideoFrames, VideoSample
from sam_bench.core.types import ModelInfo
from sam_bench.models.video import FrameLogits, FrameMasks, VideoSegmenter, VideoSession

Cell = tuple[int, int]
ROWS, COLS = 2, 3
H, W = 6 * ROWS + 1, 6 * COLS + 1


def cells_mask(cells: set[Cell] | frozenset[Cell]) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    for r, c in cells:
        mask[6 * r + 1:6 * r + 6, 6 * c + 1:6 * c + 6] = True
    return mask


def centre(cell: Cell) -> tuple[int, int]:
    """(x, y) of a cell's RITM click."""
    return 6 * cell[1] + 3, 6 * cell[0] + 3


def cell_at(x: float, y: float) -> Cell:
    return int(y) // 6, int(x) // 6


def mask_cells(mask: np.ndarray) -> set[Cell]:
    return {(r, c) for r in range(ROWS) for c in range(COLS) if mask[6 * r + 3, 6 * c + 3]}


def sample(gt: list[set[Cell]], object_id: int = 1) -> VideoSample:
    """A video whose every frame is annotated with one object (the cells `gt[t]`)."""
    n = len(gt)
    frames = VideoFrames([f"{t:05d}" for t in range(n)], [], H, W, lambda t: np.zeros((H, W, 3), np.uint8))
    return VideoSample("scripted", frames, {object_id: 0}, list(range(n)),
                       lambda t: cells_mask(gt[t]).astype(np.int32) * object_id)


class ScriptedSession(VideoSession):
    def __init__(self, base: list[set[Cell]], memory: int, log: list[tuple]) -> None:
        self.base, self.memory, self.log = base, memory, log
        self.prompted: dict[tuple[int, int], set[Cell]] = {}  # (object, frame) -> its mask
        self.edits: list[tuple[int, int, Cell, bool]] = []  # (object, frame, cell, on), in order
        self.tracked: set[tuple[int, int]] = set()  # (object, frame) given out by propagate

    def _out(self, frame: int, obj: int) -> np.ndarray:
        return cells_mask(self.prompted[(obj, frame)])

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        self.log.append(("mask", frame, object_id))
        self.prompted[(object_id, frame)] = mask_cells(mask)
        return {object_id: self._out(frame, object_id)}

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        self.log.append(("box", frame, object_id, tuple(float(v) for v in box)))
        x0, y0, x1, y1 = box
        self.prompted[(object_id, frame)] = {cell_at(x, y) for r in range(ROWS) for c in range(COLS)
                                             for x, y in [centre((r, c))] if x0 <= x < x1 and y0 <= y < y1}
        return {object_id: self._out(frame, object_id)}

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        self.log.append(("points", frame, object_id, tuple(map(tuple, points.tolist())), tuple(labels.tolist())))
        cells = self.prompted.get((object_id, frame))
        if cells is None:  # a tracked frame becomes a prompted one: start from its tracked mask
            cells = self.track(frame, object_id) if (object_id, frame) in self.tracked else set()
        cells = set(cells)
        for (x, y), label in zip(points, labels):
            cell = cell_at(x, y)
            (cells.add if label else cells.discard)(cell)
            self.edits.append((object_id, frame, cell, bool(label)))
        self.prompted[(object_id, frame)] = cells
        return {object_id: self._out(frame, object_id)}

    def track(self, frame: int, obj: int) -> set[Cell]:
        if (obj, frame) in self.prompted:
            return set(self.prompted[(obj, frame)])
        cells = set(self.base[frame])
        for o, s, cell, on in self.edits:
            if o == obj and s <= frame <= s + self.memory:
                (cells.add if on else cells.discard)(cell)
        return cells

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        """Logits +1 inside the mask, -1 outside."""
        self.log.append(("propagate", start_frame, reverse, max_frames))
        objects = sorted({o for o, _ in self.prompted})
        start = min(f for _, f in self.prompted) if start_frame is None else start_frame
        n = len(self.base)
        count = n if max_frames is None else max_frames + 1
        order = range(start, max(start - count, -1), -1) if reverse else range(start, min(start + count, n))
        for t in order:
            self.tracked |= {(o, t) for o in objects}
            yield t, {o: np.where(cells_mask(self.track(t, o)), 1.0, -1.0).astype(np.float32) for o in objects}


class ScriptedVideoSegmenter(VideoSegmenter):
    """Tracks with `base` (the same scripted track for every object); clicks persist `memory` frames."""

    def __init__(self, base: list[set[Cell]], memory: int = 1) -> None:
        self.base, self.memory = base, memory
        self.log: list[tuple] = []
        self.info = ModelInfo(name="scripted", untrained=True)

    def open_video(self, frames: VideoFrames) -> VideoSession:
        assert len(frames) == len(self.base)
        return ScriptedSession(self.base, self.memory, self.log)


# --- the same tracker on real files, for runner-level tests -------------------------------------
# Frames are black with white cells (JPEG keeps a cell's centre white); the tracker's own track is
# the white cells of each frame with deliberate, frame-dependent errors (see `frame_track`).
SCALE = 4  # pixels per stand-in pixel on disk: 52x76 frames, cells 20x20 (JPEG-safe centres)


def frame_track(frame: np.ndarray, t: int) -> set[Cell]:
    """The stand-in's unprompted mask on frame t: its white cells, the first one dropped on odd
    frames, cell (1, 2) added on every third frame."""
    small = frame[::SCALE, ::SCALE, 0]
    cells = sorted(c for c in ((r, k) for r in range(ROWS) for k in range(COLS)) if small[6 * c[0] + 3, 6 * c[1] + 3] > 128)
    track = set(cells[1:] if t % 2 else cells)
    return track | {(1, 2)} if t % 3 == 2 else track


class FileVideoSegmenter(ScriptedVideoSegmenter):
    """The scripted tracker on frames read from disk (coordinates scaled down by SCALE)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__([])
        self.delay = delay
        self.info = ModelInfo(name="scripted_video", untrained=True)

    def open_video(self, frames: VideoFrames) -> VideoSession:
        base = [frame_track(frames.frame(t), t) for t in range(len(frames))]
        return ScaledSession(base, self.memory, self.log, self.delay)


class ScaledSession(ScriptedSession):
    def __init__(self, base: list[set[Cell]], memory: int, log: list[tuple], delay: float) -> None:
        super().__init__(base, memory, log)
        self.delay = delay

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameMasks:
        return _up(super().add_mask(frame, object_id, mask[::SCALE, ::SCALE]))

    def add_box(self, frame: int, object_id: int, box: np.ndarray) -> FrameMasks:
        return _up(super().add_box(frame, object_id, np.asarray(box) / SCALE))

    def add_points(self, frame: int, object_id: int, points: np.ndarray, labels: np.ndarray,
                   clear_old: bool = False) -> FrameMasks:
        return _up(super().add_points(frame, object_id, np.asarray(points) / SCALE, labels, clear_old))

    def propagate_logits(self, start_frame: Optional[int] = None, reverse: bool = False,
                         max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameLogits]]:
        import time

        for t, out in super().propagate_logits(start_frame, reverse, max_frames):
            time.sleep(self.delay)
            yield t, _up(out)


def _up(out: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return {k: np.kron(m, np.ones((SCALE, SCALE), m.dtype)) for k, m in out.items()}


def register() -> None:
    """`scripted_video` in sam-bench's model registry (`--model-args delay=SECONDS` per frame)."""
    from sam_bench.registry import MODELS

    if "scripted_video" not in MODELS:
        MODELS.register("scripted_video", help="test stand-in tracker")(
            lambda checkpoint=None, device=None, precision="fp32", batch_size=None, delay="0": FileVideoSegmenter(float(delay)))


def write_davis(root, videos: dict[str, list[dict[int, set[Cell]]]]) -> None:
    """A DAVIS 2017 layout (val split) whose frame t shows the cells of every object of
    `videos[name][t]` in white; palette PNG annotations with the object ids."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    for name, frames in videos.items():
        (root / "JPEGImages/480p" / name).mkdir(parents=True)
        (root / "Annotations/480p" / name).mkdir(parents=True)
        for t, objects in enumerate(frames):
            ids = np.zeros((H, W), np.uint8)
            for k, cells in sorted(objects.items(), reverse=True):
                ids[cells_mask(cells)] = k
            big = np.kron(ids, np.ones((SCALE, SCALE), np.uint8))
            Image.fromarray(np.repeat(((big > 0) * 255).astype(np.uint8)[:, :, None], 3, axis=2)).save(
                root / "JPEGImages/480p" / name / f"{t:05d}.jpg", quality=95)
            png = Image.fromarray(big, mode="P")
            png.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * (253 * 3))
            png.save(root / "Annotations/480p" / name / f"{t:05d}.png")
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("".join(f"{n}\n" for n in videos))
