"""Datasets are registered by config files (`datasets/<name>.yaml`), read by a named reader.

A config says where the data comes from (homepage, licence), what the user must put under
`--data-root` (layout), which reader parses it with which arguments (per split), and the paper's
counts and subsampling rule. Adding a dataset is one such file plus, at most, a reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError, DataError
from ..registry import READERS
from ..resources import resource_dir
from ..suggest import did_you_mean, unknown_name
from .types import Dataset



@dataclass
class DatasetConfig:
    name: str
    title: str
    reader: str
    path: Path
    homepage: str = ""
    license: str = ""
    layout: str = ""
    default_split: Optional[str] = None
    reader_args: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> extra reader args
    paper: dict[str, Any] = field(default_factory=dict)  # images / masks / split used in the paper
    subsample: dict[str, Any] = field(default_factory=dict)  # max_masks, target_masks, seed
    notes: str = ""

    def reader_arguments(self, split: Optional[str]) -> dict[str, Any]:
        if split and not self.splits:
            raise ConfigError(f"dataset '{self.name}' has no splits ({self.path}); drop --split {split}")
        split = split or self.default_split
        args = dict(self.reader_args)
        if self.splits:
            if split not in self.splits:
                raise ConfigError(f"dataset '{self.name}' has no split '{split}'{did_you_mean(str(split), self.splits)} "
                                  f"(splits: {', '.join(sorted(self.splits))})")
            args.update(self.splits[split] or {})
        return args


def config_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(resource_dir("datasets").glob("*.yaml"))}


def dataset_names() -> list[str]:
    return sorted(config_paths())


def load_dataset_config(name: str) -> DatasetConfig:
    paths = config_paths()
    if name not in paths:
        raise ConfigError(unknown_name("dataset", name, paths))
    path = paths[name]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        return DatasetConfig(name=name, path=path, **{k: v for k, v in data.items() if k != "name"})
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def open_dataset(name: str, data_root: Optional[str], split: Optional[str] = None,
                 limit: Optional[int] = None, seed: int = 0) -> Dataset:
    """Build the dataset `name` from the files under `data_root`, subsampled and limited."""
    from .subsample import apply_subsampling  # local import: readers register on import
    from . import readers  # noqa: F401

    cfg = load_dataset_config(name)
    if not data_root:
        raise ConfigError(f"dataset '{name}' needs --data-root DIR laid out as:\n{cfg.layout.strip()}")
    root = Path(data_root).expanduser().absolute()  # as recorded: the same folder from any working directory
    if not root.is_dir():
        raise DataError(f"{root}: data root for dataset '{name}' is not a directory")
    reader = READERS.get(cfg.reader)
    dataset = reader(root, **cfg.reader_arguments(split))
    dataset.name = name
    dataset.metadata = {"dataset": name, "reader": cfg.reader, "data_root": str(root),
                        "split": split or cfg.default_split, **getattr(dataset, "metadata", {})}
    dataset = apply_subsampling(dataset, cfg.subsample, seed)
    if limit is not None:
        dataset = LimitedDataset(dataset, limit)
    return dataset


class LimitedDataset(Dataset):
    """The first `limit` images of another dataset (after subsampling)."""

    def __init__(self, base: Dataset, limit: int) -> None:
        self.base = base
        self.limit = min(limit, len(base))
        self.name = base.name
        self.metadata = {**base.metadata, "limit": limit}
        self.categories = base.categories  # typed metadata of the reader (see Dataset)
        self.annotation_file = base.annotation_file

    def __len__(self) -> int:
        return self.limit

    def image_ids(self) -> list[str]:
        return self.base.image_ids()[: self.limit]

    def get(self, index: int):
        if not 0 <= index < self.limit:
            raise IndexError(index)
        return self.base.get(index)

    def expressions(self) -> list[str]:
        return self.base.expressions()

    def input_files(self, index: int) -> list[Path]:
        return self.base.input_files(index)

    def __getattr__(self, item: str) -> Any:  # other reader-specific accessors
        return getattr(self.base, item)
