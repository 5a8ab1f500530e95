"""`sam-bench detect`: run a detector over a COCO/LVIS-format dataset and write its boxes as a COCO
results file (image_id, category_id, bbox xywh, score) for `instances --detections`.

Beside the results file goes a note, `<stem>.source.json`, naming the box source (a label, by
default the detector spec), the detector, its weights and their sha256; the `instances` task reads
it, records the box source in run.json and prints it wherever AP is shown.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, DataError
from ..io import atomic_write, write_json

log = logging.getLogger(__name__)


def source_note_path(results: str | Path) -> Path:
    """Where the box-source note of a results file lives: `dets.json` -> `dets.source.json`."""
    results = Path(results)
    return results.with_name(f"{results.stem}.source.json")


def read_source_note(results: str | Path) -> Optional[dict[str, Any]]:
    """The note `detect` wrote beside a results file, or None when there is none."""
    path = source_note_path(results)
    if not path.is_file():
        return None
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable box-source note: {exc}") from None
    if not isinstance(note, dict) or not isinstance(note.get("box_source"), str):
        raise DataError(f"{path}: box-source note without a 'box_source' label")
    return note


def run_detect(detector: str, dataset: str, data_root: str, out: str, weights: Optional[str] = None,
               split: Optional[str] = None, limit: Optional[int] = None, device: str = "auto",
               label: Optional[str] = None) -> Path:
    """Detect on every image of `dataset`; write the COCO results file `out` and its note."""
    from tqdm import tqdm

    from ..core.device import resolve_device
    from ..data.registry import open_dataset
    from ..data.coco_meta import coco_image_id
    from .sources import SCORE_THRESHOLD, build_source

    data = open_dataset(dataset, data_root, split, limit)
    categories = list(data.categories)
    if not categories:
        raise ConfigError(f"detect needs a COCO/LVIS-format dataset with categories; '{dataset}' has none")
    source = build_source(detector, weights, resolve_device(device), categories)
    records: list[dict[str, Any]] = []
    for index in tqdm(range(len(data)), desc=f"detect/{dataset}", unit="img", dynamic_ncols=True):
        sample = data.get(index)
        image_id = coco_image_id(sample)
        boxes, cats, scores = source(sample.load_image())
        records += [{"image_id": image_id, "category_id": int(c), "bbox": [float(v) for v in b],
                     "score": float(s)} for b, c, s in zip(boxes, cats, scores)]
    path = Path(out)
    atomic_write(path, lambda f: json.dump(records, f))
    note = {"box_source": label or _default_label(detector), **source.info, "dataset": dataset,
            "split": data.metadata.get("split"), "images": len(data), "detections": len(records),
            "score_threshold": SCORE_THRESHOLD, "dropped_unknown_classes": source.dropped}
    write_json(source_note_path(path), note)
    if source.dropped:
        log.warning("%s: %d detections of classes that are not categories of '%s' were dropped",
                    path, source.dropped, dataset)
    return path


def _default_label(spec: str) -> str:
    """`torchvision:NAME` as is; the directory or config file name for the others."""
    kind, _, rest = spec.partition(":")
    return spec if kind == "torchvision" else f"{kind}:{Path(rest).stem or Path(rest).name}"
