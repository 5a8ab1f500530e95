"""SA-Co (SAM 3's concept benchmark) as released: COCO-style json per subset, one "image" entry per
(image, noun phrase) query with `text_input`, `is_instance_exhaustive` and `file_name`; RLE masks with
`iscrowd`; a query without annotations is a negative. Gold gives three annotator files per subset
(`gold_<subset>_merged_{a,b,c}_test.json`), Silver one. One sample per image file, holding every
query that names it (`sample.extra["concept_queries"]`), so a model sees each image once.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...registry import READERS
from ..concepts import QUERIES_KEY, ConceptQuery, TruthMask
from ..images import read_rgb
from ..types import ImageSample
from .coco import load_json
from .common import IndexedDataset, segmentation_rle


def annotation_path(root: Path, name: str) -> Path:
    """`root/name`; the files on Hugging Face carry `_release` before `_test.json`
    (`gold_metaclip_merged_a_release_test.json`) where sam3's scripts name them without: both are found."""
    path = root / name
    released = root / name.replace("_test.json", "_release_test.json")
    if not path.is_file() and released.is_file():
        return released
    if not path.is_file():
        raise DataError(f"{path}: SA-Co annotation file not found")
    return path


@READERS.register("saco", help="SA-Co concept json (SAM 3): (image, noun phrase) queries, one file per annotator")
class SacoDataset(IndexedDataset):
    def __init__(self, root: Path, annotations: list[str] | str, images: str = ".") -> None:
        super().__init__(root)
        names = [annotations] if isinstance(annotations, str) else list(annotations)
        self.annotation_files = [annotation_path(self.root, n) for n in names]
        self.annotation_file = self.annotation_files[0]
        self.image_dir = self.root / images
        files = [self._load(p) for p in self.annotation_files]
        self._queries: dict[str, dict[str, Any]] = {}
        for image in files[0]["images"]:
            self._queries[self._query_id(image, self.annotation_files[0])] = image
        self._exhaustive = {qid: self._flag(q, self.annotation_files[0]) for qid, q in self._queries.items()}
        for path, data in zip(self.annotation_files[1:], files[1:]):
            others = {self._query_id(im, path): im for im in data["images"]}
            if set(others) != set(self._queries):
                odd = sorted(set(others) ^ set(self._queries))
                raise DataError(f"{path}: its queries differ from {self.annotation_files[0].name}'s "
                                f"({len(odd)} ids in one file only, e.g. {', '.join(odd[:3])})")
            for qid, image in others.items():  # the evaluator scores queries exhaustive in every file
                self._exhaustive[qid] = self._exhaustive[qid] and self._flag(image, path)
        self._anns: list[dict[str, list[dict[str, Any]]]] = []
        for path, data in zip(self.annotation_files, files):
            by_query: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for ann in data["annotations"]:
                if not isinstance(ann, dict) or "image_id" not in ann:
                    raise DataError(f"{path}: annotation without 'image_id': {str(ann)[:120]}")
                by_query[str(ann["image_id"])].append(ann)
            unknown = sorted(set(by_query) - set(self._queries))
            if unknown:
                raise DataError(f"{path}: annotations of unknown queries, e.g. image_id {unknown[0]}")
            self._anns.append(by_query)
        groups: dict[str, list[str]] = {}
        for qid, image in self._queries.items():
            if not image.get("file_name"):
                raise DataError(f"{self.annotation_file}: query {qid} has no 'file_name'")
            groups.setdefault(str(image["file_name"]), []).append(qid)
        self._groups = list(groups.items())
        self._ids = [name for name, _ in self._groups]
        self.metadata = {"annotation_files": [str(p) for p in self.annotation_files],
                         "image_dir": str(self.image_dir), "queries": len(self._queries),
                         "exhaustive_queries": sum(self._exhaustive.values())}

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataError(f"{path}: not an SA-Co json (needs 'images' and 'annotations' lists)")
        return data

    @staticmethod
    def _query_id(image: Any, path: Path) -> str:
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(f"{path}: image entry without 'id'")
        return str(image["id"])

    @staticmethod
    def _flag(image: dict[str, Any], path: Path) -> bool:
        if "is_instance_exhaustive" not in image:
            raise DataError(f"{path}: query {image['id']} has no 'is_instance_exhaustive'")
        return bool(image["is_instance_exhaustive"])

    def query_ids(self) -> dict[str, Any]:
        """Every query of the annotation files (whatever a run's --limit): id -> the id as written."""
        return {qid: q["id"] for qid, q in self._queries.items()}

    def object_counts(self) -> list[int]:
        return [sum(1 for qid in qids for a in self._anns[0].get(qid, []) if not a.get("iscrowd"))
                for _, qids in self._groups]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._groups[index][0]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        file_name, qids = self._groups[index]
        sizes = set()
        queries = []
        for qid in qids:
            image = self._queries[qid]
            where = f"{self.annotation_file} (query {qid})"
            try:
                height, width = int(image["height"]), int(image["width"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: query without integer 'height'/'width'") from None
            sizes.add((height, width))
            if not isinstance(image.get("text_input"), str):
                raise DataError(f"{where}: no 'text_input' noun phrase")
            truths = [[self._truth(ann, height, width, path) for ann in anns.get(qid, [])]
                      for path, anns in zip(self.annotation_files, self._anns)]
            queries.append(ConceptQuery(qid, image["text_input"], truths, self._exhaustive[qid], image["id"]))
        if len(sizes) > 1:
            raise DataError(f"{self.annotation_file}: queries of {file_name} give different image sizes {sorted(sizes)}")
        (height, width), = sizes
        path = self.image_path(index)
        return ImageSample(image_id=file_name, load_image=functools.partial(read_rgb, path), height=height,
                           width=width, path=path, extra={QUERIES_KEY: queries})

    @staticmethod
    def _truth(ann: dict[str, Any], height: int, width: int, path: Path) -> TruthMask:
        where = f"{path} (annotation {ann.get('id')})"
        if "segmentation" not in ann:
            raise DataError(f"{where}: no 'segmentation'")
        rle = segmentation_rle(ann["segmentation"], height, width, where)
        if [int(v) for v in rle["size"]] != [height, width]:
            raise DataError(f"{where}: mask size {list(rle['size'])} differs from the image size {[height, width]}")
        return TruthMask(rle, bool(ann.get("iscrowd", 0)))
