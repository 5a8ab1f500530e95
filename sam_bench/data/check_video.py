"""`data check` for video datasets: every video's frames and annotation files, named file by file.

Per video: the frame folder holds JPEG frames (complete files; numbered without gaps where the
dataset's frames are every frame of the video), every annotation PNG has its frame, is complete and
has the frames' size (read from the PNG header, no full decode), and the video has at least one
object to prompt. Prints videos, frames, annotated frames and objects beside the paper's counts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import DataError
from .images import check_complete
from .readers.vos import VideoFolderDataset

MAX_LISTED = 5


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _missing_numbers(stems: list[str]) -> list[int]:
    numbers = sorted(int(s) for s in stems if s.isdigit())
    return sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers)) if numbers else []


def check_video(dataset: VideoFolderDataset, index: int) -> tuple[list[str], dict[str, int]]:
    """(problems, counts) of one video; each problem is one line naming the file."""
    video = dataset.image_ids()[index]
    problems: list[str] = []
    counts = {"frames": 0, "annotated": 0, "objects": 0}
    try:
        paths = dataset.frame_paths(video)
        counts["frames"] = len(paths)
        size = _size(paths[0])
        for p in paths:
            check_complete(p, "frame")
        if dataset.contiguous:
            for n in _missing_numbers([p.stem for p in paths])[:MAX_LISTED]:
                problems.append(f"{paths[0].parent}: frame {n:05d}.jpg missing (frames are numbered without gaps)")
        annotated = dataset.annotation_paths(video, [p.stem for p in paths])
    except DataError as exc:
        return problems + [str(exc)], counts
    counts["annotated"] = len(annotated)
    for t, files in annotated.items():
        for png in files.values():
            try:
                check_complete(png, "annotation")
                if _size(png) != size:
                    w, h = _size(png)
                    problems.append(f"{png}: annotation is {w}x{h}, the video's frames are {size[0]}x{size[1]}")
            except (DataError, OSError) as exc:
                problems.append(str(exc))
    if not problems:
        try:
            counts["objects"] = len(dataset.get(index).objects)
        except DataError as exc:
            problems.append(str(exc))
        if counts["objects"] == 0 and not problems:
            problems.append(f"{dataset.annotations_dir / video}: no object in any annotation")
    return problems, counts


def check_videos(dataset: VideoFolderDataset, paper: dict, out: Callable[[str], None]) -> list[str]:
    """Check every video; print the counts; return the problems (at most MAX_LISTED per kind shown)."""
    problems: list[str] = []
    totals = {"frames": 0, "annotated": 0, "objects": 0}
    for i in range(len(dataset)):
        found, counts = check_video(dataset, i)
        problems += found
        for k in totals:
            totals[k] += counts[k]
    out(f"videos     {len(dataset):<8}  paper: {paper.get('videos') or '-'}"
        + (f" ({paper['split']})" if paper.get("split") else ""))
    out(f"objects    {totals['objects']:<8}  paper: {paper.get('objects') or '-'}")
    out(f"frames     {totals['frames']} ({totals['annotated']} with ground truth)")
    if dataset.server:
        out(f"scoring    ground truth on the server: {dataset.server}")
    return problems
