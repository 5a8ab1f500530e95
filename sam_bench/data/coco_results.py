"""COCO results files: json-ready RLE masks, detections read as a stream, per-image predictions.

Results files (a json array of `image_id, category_id, score` records with a `bbox` or a
`segmentation`) reach gigabytes: detections are parsed one record at a time and held as arrays,
and predictions are written one file per image, merged into one results file at the end.
"""
from __future__ import annotations

import json
import logging
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..errors import DataError
from ..io import atomic_write, write_text
from .readers.common import check_xywh

log = logging.getLogger(__name__)


def json_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """A pycocotools RLE (bytes counts) -> a json-ready COCO segmentation (str counts, int size)."""
    counts = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts}


def rle_encode(masks: np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
    """(N, H, W) bool masks (numpy or torch, any device) -> pycocotools RLEs (bytes counts)."""
    if len(masks) == 0:
        return []
    if isinstance(masks, torch.Tensor):
        # (N, W, H) C-contiguous is (H, W, N) Fortran-contiguous: what pycocotools wants, no copy.
        columns = masks.permute(0, 2, 1).contiguous().cpu().numpy().view(np.uint8)
        return mask_utils.encode(columns.transpose(2, 1, 0))
    return mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))


def encode_masks(masks: np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
    """(N, H, W) bool masks -> compressed RLEs with str counts (json-ready COCO segmentation)."""
    return [json_rle(r) for r in rle_encode(masks)]


@dataclass
class DetectionIndex:
    """A COCO results file held as arrays, grouped by image: boxes xywh, categories, scores."""

    path: Path
    boxes: np.ndarray  # (N, 4) float64 xywh
    category_ids: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N,) float64
    _ranges: dict[int, tuple[int, int]]

    def __len__(self) -> int:
        return len(self.scores)

    def image_ids(self) -> list[int]:
        return list(self._ranges)

    def for_image(self, image_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, end = self._ranges.get(int(image_id), (0, 0))
        return self.boxes[start:end], self.category_ids[start:end], self.scores[start:end]


def iter_json_array(path: Path, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """The elements of a top-level json array, parsed one at a time (results files reach GBs)."""
    decoder = json.JSONDecoder()
    buffer, pos, started, eof = "", 0, False, False
    offset = 0  # characters of the file before `buffer`
    with open(path, "r", encoding="utf-8") as f:
        while True:
            while pos < len(buffer) and buffer[pos] in (" \t\r\n," if started else " \t\r\n"):
                pos += 1
            if not started and pos < len(buffer):
                if buffer[pos] != "[":
                    raise DataError(f"{path}: not a JSON array of detections (COCO results format: "
                                    f"[{{\"image_id\", \"category_id\", \"bbox\", \"score\"}}, ...]); "
                                    f"it starts with {buffer[pos:pos + 20]!r}")
                started, pos = True, pos + 1
                continue
            if started and pos < len(buffer) and buffer[pos] == "]":
                return
            try:
                if pos >= len(buffer):
                    raise ValueError("need more data")
                value, end = decoder.raw_decode(buffer, pos)
                if end == len(buffer) and not eof:
                    raise ValueError("value may continue")  # a number cut at the chunk border
            except ValueError:
                if eof and not started:
                    raise DataError(f"{path}: empty file, expected a JSON array of detections") from None
                if eof:
                    raise DataError(f"{path}: invalid or truncated JSON at character {offset + pos}: "
                                    f"{buffer[pos:pos + 30]!r}") from None
                chunk = f.read(chunk_size)
                eof = not chunk
                offset += pos
                buffer, pos = buffer[pos:] + chunk, 0
                continue
            yield value
            pos = end


def load_detections(path: str | Path, category_ids: Optional[set[int]]) -> DetectionIndex:
    """Stream a COCO results file (image_id, category_id, bbox xywh, score), validating each record;
    category ids are checked against `category_ids` unless it is None."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: detections file not found")
    img, cat = array("q"), array("q")
    box, score = array("d"), array("d")
    for i, rec in enumerate(iter_json_array(path)):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: not an object")
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in rec]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)} (COCO results format needs "
                            "image_id, category_id, bbox [x, y, w, h], score)")
        b, s = check_xywh(rec["bbox"], where), rec["score"]
        if not _finite(s):
            raise DataError(f"{where}: score must be a finite number; got {s!r}")
        if not _integral(rec["image_id"]) or not _integral(rec["category_id"]):
            raise DataError(f"{where}: image_id and category_id must be integers")
        if category_ids is not None and int(rec["category_id"]) not in category_ids:
            raise DataError(f"{where}: category_id {rec['category_id']} is not a category of the "
                            "annotation file")
        img.append(int(rec["image_id"]))
        cat.append(int(rec["category_id"]))
        box.extend(float(v) for v in b)
        score.append(float(s))
    images = np.frombuffer(img, np.int64) if len(img) else np.zeros(0, np.int64)
    order = np.argsort(images, kind="stable")  # stable: the file's order within an image is kept
    images = images[order]
    starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]]) if len(images) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(images)]
    ranges = {int(images[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    boxes = np.frombuffer(box, np.float64).reshape(-1, 4) if len(box) else np.zeros((0, 4))
    cats = np.frombuffer(cat, np.int64) if len(cat) else np.zeros(0, np.int64)
    scores = np.frombuffer(score, np.float64) if len(score) else np.zeros(0)
    return DetectionIndex(path, boxes[order], cats[order], scores[order], ranges)


def warn_detection_coverage(detections: DetectionIndex, dataset_ids: list[str]) -> None:
    """Warn, with counts, about an empty detections file or detections for images outside the run."""
    if not len(detections):
        log.warning("%s: holds no detections; every image of the run gets no mask (AP 0)", detections.path)
        return
    ours = set(dataset_ids)
    outside = [i for i in detections.image_ids() if str(i) not in ours]
    if outside:
        n = sum(len(detections.for_image(i)[2]) for i in outside)
        log.warning("%s: %d detections for %d image ids not in this run's images (after subsampling / --limit) "
                    "are ignored, e.g. %s", detections.path, n, len(outside), ", ".join(map(str, outside[:5])))
    without = len(ours - {str(i) for i in detections.image_ids()})
    if without:
        log.warning("%s: %d of the run's %d images have no detection", detections.path, without, len(ours))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integral(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


class PerImageResults:
    """COCO results streamed to disk: one json per image (atomic), merged into one file at the end.

    An interrupted run keeps the files of finished images, so resuming redoes only the rest; the
    merge reads one image at a time, so memory stays flat however many masks the run produced.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def write(self, image_id: Any, records: list[dict[str, Any]]) -> None:
        write_text(self.dir / f"{image_id}.json", json.dumps(records))

    def merge(self, image_ids: Sequence[Any], path: Path, what: str = "predictions") -> Optional[int]:
        """Concatenate the images' files (in this order) into `path`; None if already merged."""
        if not self.dir.is_dir():
            if path.is_file():
                return None  # merged by an earlier attempt that stopped before metrics.json
            raise DataError(f"{self.dir}: per-image predictions missing; rerun with --fresh")
        missing = [i for i in image_ids if not (self.dir / f"{i}.json").is_file()]
        if missing:
            raise DataError(f"{self.dir}: no predictions for {len(missing)} images (e.g. {missing[:3]}); "
                            "rerun with --fresh")
        count = 0

        def write(f) -> None:
            nonlocal count
            f.write("[")
            for image_id in image_ids:
                for rec in json.loads((self.dir / f"{image_id}.json").read_text()):
                    f.write(("," if count else "") + "\n" + json.dumps(rec))
                    count += 1
            f.write("\n]\n")

        atomic_write(path, write)
        for image_id in image_ids:
            (self.dir / f"{image_id}.json").unlink()
        for leftover in self.dir.iterdir():  # e.g. images dropped from a run resumed with --limit
            leftover.unlink()
        self.dir.rmdir()
        log.info("%s: %d %s written to %s", path.parent, count, what, path.name)
        return count
