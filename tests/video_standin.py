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
from sam_bench.models.video import FrameMasks, VideoSegmenter, VideoSession

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

    def propagate(self, start_frame: Optional[int] = None, reverse: bool = False,
                  max_frames: Optional[int] = None) -> Iterator[tuple[int, FrameMasks]]:
        self.log.append(("propagate", start_frame, reverse, max_frames))
        objects = sorted({o for o, _ in self.prompted})
        start = min(f for _, f in self.prompted) if start_frame is None else start_frame
        n = len(self.base)
        count = n if max_frames is None else max_frames + 1
        order = range(start, max(start - count, -1), -1) if reverse else range(start, min(start + count, n))
        for t in order:
            self.tracked |= {(o, t) for o in objects}
            yield t, {o: cells_mask(self.track(t, o)) for o in objects}


class ScriptedVideoSegmenter(VideoSegmenter):
    """Tracks with `base` (the same scripted track for every object); clicks persist `memory` frames."""

    def __init__(self, base: list[set[Cell]], memory: int = 1) -> None:
        self.base, self.memory = base, memory
        self.log: list[tuple] = []
        self.info = ModelInfo(name="scripted", untrained=True)

    def open_video(self, frames: VideoFrames) -> VideoSession:
        assert len(frames) == len(self.base)
        return ScriptedSession(self.base, self.memory, self.log)
