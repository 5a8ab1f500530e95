"""RefCOCO / RefCOCO+ / RefCOCOg in the format of the `refer` toolkit (Licheng Yu et al.).

Files: `refs(<splitBy>).p`, a pickle of ref dicts (ref_id, ann_id, image_id, category_id, split,
sentences [{sent_id, sent, raw, tokens}]), and `instances.json`, COCO-format images, annotations
(polygon masks) and categories; images are COCO train2014 files. One ImageSample per image of the
split: its objects are the referred annotations, `extra["expressions"]` every sentence of every ref
in the image (an image is encoded once for all its expressions).
"""
from __future__ import annotations

import json
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...registry import READERS
from ..images import read_rgb
from ..types import CocoImage, ImageSample, ObjectAnnotation
from .common import IndexedDataset, decode_segmentation, require_dir, require_file


class _PlainUnpickler(pickle.Unpickler):
    """The refs pickle holds only lists, dicts, strings and numbers: refuse anything that imports code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refuses to load {module}.{name} (refs hold only plain values)")


def load_refs(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            # The official files were pickled by Python 2: decode its byte strings as UTF-8.
            refs = _PlainUnpickler(f, encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a readable refs pickle: {exc}") from None
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise DataError(f"{path}: expected a list of ref dicts, got {type(refs).__name__}")
    return refs


class RefCocoDataset(IndexedDataset):
    def __init__(self, root: Path, refs: str, instances: str, images: str, split: str,
                 sentence_field: str = "sent") -> None:
        super().__init__(root)
        refs_path = require_file(root, refs, "refs pickle")
        instances_path = require_file(root, instances, "instances json")
        self.image_dir = require_dir(root, images, "COCO train2014 image")
        self.annotation_file = instances_path
        try:
            coco = json.loads(instances_path.read_text())
            self._images = {int(im["id"]): im for im in coco["images"]}
            self._anns = {int(a["id"]): a for a in coco["annotations"]}
            self.categories: list[dict[str, Any]] = list(coco["categories"])
            self._category_names = {int(c["id"]): c["name"] for c in self.categories}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{instances_path}: not a COCO instances json: {type(exc).__name__}: {exc}") from None
        all_refs = load_refs(refs_path)
        splits = sorted({str(r.get("split")) for r in all_refs})
        chosen = [r for r in all_refs if r.get("split") == split]
        if not chosen:
            raise DataError(f"{refs_path}: no refs in split '{split}'; splits in the file: {splits}")
        self._expressions: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ref in chosen:
            where = f"{refs_path}: ref {ref.get('ref_id')}"
            try:
                image_id, ann_id = int(ref["image_id"]), int(ref["ann_id"])
                sentences = ref["sentences"]
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where}: missing or bad field {exc}") from None
            if image_id not in self._images:
                raise DataError(f"{where}: image {image_id} is not in {instances_path}")
            if ann_id not in self._anns:
                raise DataError(f"{where}: annotation {ann_id} is not in {instances_path}")
            for s in sentences:
                text = s.get(sentence_field, s.get("raw")) if isinstance(s, dict) else None
                if not isinstance(text, str):
                    raise DataError(f"{where}: a sentence has no '{sentence_field}' text")
                self._expressions[image_id].append({
                    "ref_id": int(ref["ref_id"]), "sent_id": int(s.get("sent_id", -1)), "ann_id": ann_id,
                    "category_id": int(ref.get("category_id", self._anns[ann_id]["category_id"])),
                    "sentence": text.strip()})
        for exprs in self._expressions.values():
            exprs.sort(key=lambda e: (e["ref_id"], e["sent_id"]))
        self._image_ids = sorted(self._expressions)
        self._ids = [str(i) for i in self._image_ids]
        self.metadata = {"refs": str(refs_path), "instances": str(instances_path), "refs_split": split,
                         "splits_in_file": splits, "refs_in_split": len(chosen),
                         "expressions": sum(len(e) for e in self._expressions.values()),
                         "sentence_field": sentence_field}

    def expressions(self) -> list[str]:
        """Every sentence of the split, in dataset order (encoded once by the text task)."""
        return [e["sentence"] for i in self._image_ids for e in self._expressions[i]]

    def object_counts(self) -> list[int]:
        """Referred annotations per image (= len(sample.objects)); expressions are in metadata."""
        return [len({e["ann_id"] for e in self._expressions[i]}) for i in self._image_ids]

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        image_id = self._image_ids[index]
        info = self._images[image_id]
        height, width = int(info["height"]), int(info["width"])
        path = self.image_dir / info["file_name"]
        expressions = self._expressions[image_id]
        objects = []
        for ann_id in dict.fromkeys(e["ann_id"] for e in expressions):
            ann = self._anns[ann_id]
            mask = decode_segmentation(ann["segmentation"], height, width,
                                       f"{self.annotation_file}: annotation {ann_id}")
            objects.append(ObjectAnnotation(
                object_id=str(ann_id), mask=mask, category=self._category_names.get(int(ann["category_id"])),
                category_id=int(ann["category_id"]), area=float(ann.get("area", mask.sum())),
                extra={"iscrowd": int(ann.get("iscrowd", 0))}))
        return ImageSample(image_id=str(image_id), load_image=lambda: read_rgb(path), height=height, width=width,
                           objects=objects, path=path, coco=CocoImage(image_id),
                           extra={"expressions": [dict(e) for e in expressions]})


@READERS.register("refcoco", help="RefCOCO/RefCOCO+/RefCOCOg: refs(<split_by>).p + instances.json + train2014 images")
def read_refcoco(root: Path, refs: str, instances: str, images: str = "train2014", split: str = "val",
                 sentence_field: str = "sent") -> RefCocoDataset:
    return RefCocoDataset(Path(root), refs, instances, images, split, sentence_field)
