"""The instance-dataset interface every reader produces and every task consumes."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np


@dataclass
class ObjectAnnotation:
    """One ground-truth object of an image."""

    object_id: str
    mask: np.ndarray  # (H, W) bool
    category: Optional[str] = None
    category_id: Optional[int] = None
    box: Optional[tuple[float, float, float, float]] = None  # x0, y0, x1, y1 (pixels)
    area: Optional[float] = None  # pixel area (COCO "area" when the source gives one)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.box is None and self.mask.any():
            ys, xs = np.nonzero(self.mask)
            self.box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        if self.area is None:
            self.area = float(np.count_nonzero(self.mask))


@dataclass(frozen=True)
class CocoImage:
    """The image's record in a COCO / LVIS annotation json (what COCO / LVIS scoring needs)."""

    id: int
    neg_category_ids: tuple[int, ...] = ()  # LVIS: categories verified absent
    not_exhaustive_category_ids: tuple[int, ...] = ()  # LVIS: categories not exhaustively annotated


@dataclass
class EdgeTruth:
    """Boundary ground truth of every annotator (BSDS500 layout)."""

    boundaries: list[np.ndarray]  # (H, W) bool per annotator
    source: Optional[Path] = None  # the groundTruth .mat file the BSDS evaluation reads, when there is one


@dataclass
class ImageSample:
    """One image with its objects. Pixels in `ignore` are excluded from IoU and never clicked."""

    image_id: str
    load_image: Callable[[], np.ndarray]  # -> (H, W, 3) uint8 RGB
    height: int
    width: int
    objects: list[ObjectAnnotation] = field(default_factory=list)
    ignore: Optional[np.ndarray] = None  # (H, W) bool
    path: Optional[Path] = None
    coco: Optional[CocoImage] = None  # set by readers of COCO-format annotation files
    edges: Optional[EdgeTruth] = None  # set by readers with boundary annotations
    extra: dict[str, Any] = field(default_factory=dict)  # free-form reader detail (e.g. RefCOCO expressions)


class Dataset(ABC):
    """A sequence of ImageSamples with a stable order and unique image ids."""

    name: str = "dataset"
    #: Recorded in run.json: reader, root, split, subsampling seed and counts, ...
    metadata: dict[str, Any]
    #: COCO category records (id, name, LVIS frequency, ...) of COCO-format datasets; () otherwise.
    categories: Sequence[dict[str, Any]] = ()
    #: The COCO / LVIS annotation json that scoring reads, for COCO-format datasets.
    annotation_file: Optional[Path] = None

    def expressions(self) -> list[str]:
        """Every referring expression of a RefCOCO-format dataset; [] for the others."""
        return []

    def input_files(self, index: int) -> list[Path]:
        """The files image `index` is read from (image, masks, annotation file): what its result is
        computed from, checked when a run resumes (engine/inputs.py). Readers that know their files
        say so without decoding; this fallback builds the sample."""
        sample = self.get(index)
        return [p for p in (getattr(sample, "path", None), self.annotation_file) if p is not None]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def image_ids(self) -> list[str]: ...

    @abstractmethod
    def get(self, index: int) -> ImageSample: ...

    def __iter__(self) -> Iterator[ImageSample]:
        for i in range(len(self)):
            yield self.get(i)
