"""COCO / LVIS facts the COCO-scored tasks read from a dataset and its samples: one place for the
image id, the category list and the crowd rule (shared by instances, proposals and text)."""
from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError, DataError
from .types import Dataset, ImageSample

log = logging.getLogger(__name__)


def coco_image_id(sample: ImageSample, required: bool = True) -> Any:
    """The image's id in the annotation json (`sample.coco`, set by the `coco` and `refcoco` readers)."""
    if sample.coco is None:
        if not required:
            return None
        raise DataError(f"image {sample.image_id}: no COCO image record (COCO/LVIS protocols need the 'coco' reader)")
    return sample.coco.id


def dataset_categories(dataset: Dataset, task: str) -> list[dict[str, Any]]:
    """The dataset's COCO category records; a task scored per category cannot run without them."""
    categories = list(dataset.categories)
    if not categories:
        raise ConfigError(f"task '{task}' needs a COCO/LVIS-format dataset (reader 'coco' with "
                          f"categories); '{dataset.name}' has none")
    if dataset.metadata.get("crowd") == "drop":
        log.warning("%s: crowd annotations are dropped by the dataset config; COCO evaluation "
                    "ignores detections on crowd regions only with `crowd: keep`", dataset.name)
    return categories


def check_crowd(sample: ImageSample, dataset: Dataset, task: str) -> None:
    """COCO evaluation needs crowd regions as annotations, not merged into an ignore mask."""
    if sample.ignore is not None and dataset.metadata.get("crowd", "ignore") == "ignore":
        raise ConfigError(f"task '{task}' on '{dataset.name}': image {sample.image_id} has crowd "
                          "regions merged into an ignore mask; set `crowd: keep` in the dataset's "
                          "reader_args so they are scored as COCO does")
