"""SA-1B (Segment Anything 1B) in its release layout: `sa_<id>.jpg` + `sa_<id>.json` per image.

Each json holds `{"image": {image_id, width, height, file_name}, "annotations": [{id, segmentation
(compressed RLE), bbox (xywh), area, predicted_iou, point_coords, crop_box, stability_score}]}`.
Masks are class-agnostic (no category). `subset: N` keeps N images drawn at random with
`subset_seed` (EdgeSAM and others evaluate on 1k-image subsets of SA-1B); the draw is recorded
in metadata, the kept images stay in file-name order. A json is parsed only when its image is
read or counted, so a subset of a tar's 11k images costs only its own files.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import ConfigError, DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import ImageSample, ObjectAnnotation
from .common import IndexedDataset, decode_segmentation, list_files, require_dir


@READERS.register("sa1b", help="SA-1B release layout: sa_<id>.jpg + sa_<id>.json (RLE masks), seeded image subsets")
class SA1BDataset(IndexedDataset):
    def __init__(self, root: Path, images: str = ".", annotations: Optional[str] = None,
                 subset: Optional[int] = None, subset_seed: int = 0) -> None:
        super().__init__(root)
        self.image_dir = require_dir(self.root, images, "image")
        self.ann_dir = require_dir(self.root, annotations, "annotation") if annotations else self.image_dir
        found = [p for p in list_files(self.image_dir, (".jpg",)) if p.name.startswith("sa_")]
        pairs = [(p, self.ann_dir / f"{p.stem}.json") for p in found]
        missing = [a.name for _, a in pairs if not a.is_file()]
        if missing:
            raise DataError(f"{self.ann_dir}: no annotation json for {len(missing)} image(s), "
                            f"e.g. {', '.join(missing[:3])}")
        if not pairs:
            raise DataError(f"{self.image_dir}: no sa_<id>.jpg images")
        self.metadata = {"images_total": len(pairs)}
        if subset is not None:
            if not 1 <= int(subset) <= len(pairs):
                raise ConfigError(f"sa1b reader: subset {subset} is not in 1..{len(pairs)} (images in {self.image_dir})")
            keep = np.sort(np.random.default_rng(int(subset_seed)).choice(len(pairs), int(subset), replace=False))
            pairs = [pairs[i] for i in keep]
            self.metadata.update(subset=int(subset), subset_seed=int(subset_seed))
        self._pairs = pairs
        self._ids = [p.stem for p, _ in pairs]

    def image_path(self, index: int) -> Path:
        return self._pairs[index][0]

    def _load(self, index: int) -> dict[str, Any]:
        path = self._pairs[index][1]
        try:
            data = json.loads(path.read_text())
            image, anns = data["image"], data["annotations"]
            if not isinstance(anns, list):
                raise TypeError("'annotations' is not a list")
            return {"height": int(image["height"]), "width": int(image["width"]), "annotations": anns}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not an SA-1B annotation json ({type(exc).__name__}: {exc})") from None

    def annotation_paths(self, index: int) -> list[Path]:
        return [self._pairs[index][1]]

    def object_counts(self) -> list[int]:
        return [len(self._load(i)["annotations"]) for i in range(len(self))]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        data = self._load(index)
        h, w = data["height"], data["width"]
        json_path = self._pairs[index][1]
        objects = []
        for k, ann in enumerate(data["annotations"]):
            where = f"{json_path} (annotation {ann.get('id', k)})"
            if "segmentation" not in ann:
                raise DataError(f"{where}: no 'segmentation'")
            mask = decode_segmentation(ann["segmentation"], h, w, where)
            box = None
            if isinstance(ann.get("bbox"), (list, tuple)) and len(ann["bbox"]) == 4:
                x, y, bw, bh = (float(v) for v in ann["bbox"])
                box = (x, y, x + bw, y + bh)
            objects.append(ObjectAnnotation(
                object_id=str(ann.get("id", k)), mask=mask, box=box,
                area=float(ann["area"]) if "area" in ann else None,
                extra={key: ann[key] for key in ("predicted_iou", "stability_score") if key in ann}))
        path = self._pairs[index][0]
        return ImageSample(image_id=self._ids[index], load_image=functools.partial(read_rgb, path),
                           height=h, width=w, objects=objects, path=path)
