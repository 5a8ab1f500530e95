"""A concept predictions file made elsewhere: COCO results format with `image_id` = query id, an RLE
`segmentation` at the image's size, `score`, optional `bbox` (what SAM 3's evaluation scripts read).
Every record is checked as it is read; a malformed one stops the run with one line naming it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pycocotools import mask as mask_utils

from ...data.coco_results import iter_json_array
from ...errors import DataError
from ...metrics.cgf1 import PredictedMask


@dataclass
class PredictionIndex:
    path: Path
    by_query: dict[str, list[tuple[int, PredictedMask]]] = field(default_factory=dict)  # (record index, mask)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_query.values())

    def for_query(self, query_id: str, size: tuple[int, int]) -> list[PredictedMask]:
        """The query's predictions in file order; a mask of another size than the image is an error."""
        out = []
        for index, pred in self.by_query.get(query_id, []):
            if [int(v) for v in pred.rle["size"]] != list(size):
                raise DataError(f"{self.path}: record {index}: mask size {list(pred.rle['size'])} differs from "
                                f"the size of query {query_id}'s image {list(size)} (height, width)")
            out.append(pred)
        return out


def load_predictions(path: str | Path, is_query: Callable[[str], bool], what: str) -> PredictionIndex:
    """Read and check every record; `is_query(id)` says whether an `image_id` names a query of the
    dataset (`what` describes the dataset's query ids for the message)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    index = PredictionIndex(path)
    for i, rec in enumerate(iter_json_array(path)):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: not an object")
        missing = [k for k in ("image_id", "segmentation", "score") if k not in rec]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)} (needs image_id = query id, an RLE "
                            "segmentation, score; bbox optional)")
        qid = rec["image_id"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise DataError(f"{where}: image_id must be a query id (int or string); got {qid!r}")
        if not is_query(str(qid)):
            raise DataError(f"{where}: image_id {qid!r} is not a query of {what}")
        score = rec["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(f"{where}: score must be a finite number; got {score!r}")
        box = rec.get("bbox")
        if box is not None and not (isinstance(box, list) and len(box) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise DataError(f"{where}: bbox must be [x, y, w, h] with finite numbers; got {box!r}")
        rle = _checked_rle(rec["segmentation"], where)
        index.by_query.setdefault(str(qid), []).append((i, PredictedMask(rle, float(score))))
    return index


def _checked_rle(segmentation: Any, where: str) -> dict[str, Any]:
    """A compressed or uncompressed RLE whose runs cover exactly height x width pixels, as a
    pycocotools RLE (bytes counts)."""
    if not isinstance(segmentation, dict) or "size" not in segmentation or "counts" not in segmentation:
        raise DataError(f"{where}: segmentation must be an RLE {{'size': [h, w], 'counts': ...}} (polygons "
                        "are not mask predictions)")
    size = segmentation["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              and v > 0 for v in size)):
        raise DataError(f"{where}: RLE size must be [height, width] positive integers; got {size!r}")
    counts = segmentation["counts"]
    pixels = size[0] * size[1]
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts) or sum(counts) != pixels:
            raise DataError(f"{where}: bad RLE: uncompressed counts must be non-negative integers summing to "
                            f"{size[0]}x{size[1]} = {pixels}")
        return mask_utils.frPyObjects(segmentation, size[0], size[1])
    if isinstance(counts, str):
        counts = counts.encode("ascii", "replace")
    if not isinstance(counts, bytes):
        raise DataError(f"{where}: bad RLE: counts must be a string (compressed) or a list of integers")
    runs = compressed_runs(counts)
    if runs is None or (runs < 0).any() or int(runs.sum()) != pixels:
        covered = "unreadable" if runs is None else f"runs cover {int(runs.sum())} pixels"
        raise DataError(f"{where}: bad RLE: compressed counts do not describe a {size[0]}x{size[1]} mask ({covered})")
    return {"size": size, "counts": counts}


def compressed_runs(counts: bytes) -> np.ndarray | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`), or None if the
    string is not one. Written here because pycocotools does not check that the runs cover the mask:
    a string cut short decodes silently, and an empty one decodes uninitialised memory."""
    chars = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    if len(chars) == 0 or (chars < 0).any() or (chars > 63).any() or chars[-1] & 0x20:
        return None  # outside the alphabet, or the last value continues past the end
    ends = np.flatnonzero((chars & 0x20) == 0)
    starts = np.r_[0, ends[:-1] + 1]
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    position = np.arange(len(chars)) - starts[group]
    if position.max() > 11:  # longer than any 64-bit count
        return None
    values = np.zeros(len(ends), np.int64)
    np.add.at(values, group, (chars & 0x1F) << (5 * position))
    negative = (chars[ends] & 0x10) != 0  # sign bit of each value's last character
    values[negative] |= -1 << (5 * (position[ends][negative] + 1))
    runs = values.copy()  # from the third value on, each is a delta to the count two before
    runs[3::2] = np.cumsum(values[1::2])[1:]
    runs[4::2] = np.cumsum(values[2::2])[1:]
    return runs
