"""Several parts read by (possibly different) readers, as one dataset: datasets the paper pooled
(Plittersdorf train+val+test, NDD20 above+below water, iShape's six subsets, EgoHOS sources).

    reader: concat
    reader_args:
      parts:
        - {name: above, reader: via, args: {annotations: ABOVE_LABELS.json, images: ABOVE}}
        - {name: below, reader: via, args: {annotations: BELOW_LABELS.json, images: BELOW}}

Image ids become `<part name>/<id>`, so they stay unique across parts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...registry import READERS
from ..types import Dataset, ImageSample
from .common import IndexedDataset


def _part_counts(part: Dataset) -> list[int]:
    from ..subsample import object_counts

    return object_counts(part)


@READERS.register("concat", help="several parts, each read by its own reader, as one dataset")
class ConcatDataset(IndexedDataset):
    def __init__(self, root: Path, parts: list[dict[str, Any]]) -> None:
        super().__init__(root)
        if not isinstance(parts, list) or not parts:
            raise ConfigError("concat reader: 'parts' must be a non-empty list of {name, reader, args}")
        self.parts: list[tuple[str, Dataset]] = []
        self._index: list[tuple[int, int]] = []
        for k, spec in enumerate(parts):
            if not isinstance(spec, dict) or "reader" not in spec or "name" not in spec:
                raise ConfigError(f"concat reader: part {k} needs 'name' and 'reader', got {spec!r}")
            if spec["reader"] == "concat":
                raise ConfigError("concat reader: parts cannot themselves be concat")
            dataset = READERS.get(spec["reader"])(self.root, **(spec.get("args") or {}))
            self.parts.append((str(spec["name"]), dataset))
            self._index += [(k, i) for i in range(len(dataset))]
            self._ids += [f"{spec['name']}/{i}" for i in dataset.image_ids()]
        self.metadata = {"parts": [{"name": n, "images": len(d)} for n, d in self.parts]}

    def object_counts(self) -> list[int]:
        return [c for _, d in self.parts for c in _part_counts(d)]

    def image_path(self, index: int) -> Path:
        k, i = self._index[index]
        return self.parts[k][1].image_path(i)  # type: ignore[attr-defined]

    def input_files(self, index: int) -> list[Path]:
        k, i = self._index[index]
        return self.parts[k][1].input_files(i)

    def get(self, index: int) -> ImageSample:
        self._check_index(index)
        k, i = self._index[index]
        sample = self.parts[k][1].get(i)
        sample.image_id = self._ids[index]
        sample.extra["part"] = self.parts[k][0]
        return sample
