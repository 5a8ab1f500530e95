"""The paper's subsampling of large datasets (§7.1 / D.1): a dataset with more than `max_masks`
(15k) masks is reduced by drawing random images until about `target_masks` (10k) masks.

Images are drawn in a seeded random order and kept until the running mask count reaches the
target (the image that crosses it is kept: "about" 10k); images without objects are never drawn.
The kept images stay in the dataset's own order. The seed is the rule's `seed` when the config
pins one (so every run and model sees the same images), else the run's seed; it is recorded with
the counts in `dataset.metadata["subsample"]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .types import Dataset, ImageSample


def object_counts(dataset: Dataset) -> list[int]:
    """Objects per image, from the reader's cheap count when it has one, else by loading samples."""
    counter = getattr(dataset, "object_counts", None)
    counts = counter() if callable(counter) else None
    if counts is None:
        counts = [len(dataset.get(i).objects) for i in range(len(dataset))]
    if len(counts) != len(dataset):
        raise DataError(f"dataset '{dataset.name}': {len(counts)} object counts for {len(dataset)} images")
    return [int(c) for c in counts]


def choose_images(counts: Sequence[int], target_masks: int, seed: int) -> list[int]:
    """Indices (sorted) of the images drawn at random until their masks reach target_masks."""
    order = np.random.default_rng(seed).permutation(len(counts))
    chosen, total = [], 0
    for i in order:
        if total >= target_masks:
            break
        if counts[i] > 0:
            chosen.append(int(i))
            total += counts[i]
    return sorted(chosen)


class SubsetDataset(Dataset):
    """The images of `base` at `indices`, in that order; reader attributes pass through."""

    def __init__(self, base: Dataset, indices: Sequence[int], metadata: dict[str, Any]) -> None:
        self.base = base
        self.indices = list(indices)
        self.name = base.name
        self.metadata = metadata
        self.categories = base.categories  # typed metadata of the reader (see Dataset)
        self.annotation_file = base.annotation_file
        ids = base.image_ids()
        self._ids = [ids[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def image_ids(self) -> list[str]:
        return list(self._ids)

    def get(self, index: int) -> ImageSample:
        if not 0 <= index < len(self.indices):
            raise IndexError(index)
        return self.base.get(self.indices[index])

    def object_counts(self) -> list[int]:
        counts = object_counts(self.base)
        return [counts[i] for i in self.indices]

    def expressions(self) -> list[str]:
        return self.base.expressions()

    def input_files(self, index: int) -> list[Path]:
        return self.base.input_files(self.indices[index])

    def __getattr__(self, item: str) -> Any:  # other reader-specific accessors
        if item == "base":
            raise AttributeError(item)
        return getattr(self.base, item)


def apply_subsampling(dataset: Dataset, rule: Optional[dict[str, Any]], seed: int) -> Dataset:
    """`dataset` itself when no rule applies or it is small enough, else a seeded random subset."""
    if not rule:
        return dataset
    unknown = set(rule) - {"max_masks", "target_masks", "seed"}
    if unknown or "max_masks" not in rule or "target_masks" not in rule:
        raise ConfigError(f"dataset '{dataset.name}': subsample rule needs max_masks and target_masks "
                          f"(optional seed), got {sorted(rule)}")
    max_masks, target = int(rule["max_masks"]), int(rule["target_masks"])
    counts = object_counts(dataset)
    total = sum(counts)
    if total <= max_masks:
        dataset.metadata = {**getattr(dataset, "metadata", {}),
                            "subsample": {"applied": False, "images": len(counts), "masks": total}}
        return dataset
    used_seed = int(rule.get("seed", seed))
    chosen = choose_images(counts, target, used_seed)
    info = {"applied": True, "seed": used_seed, "max_masks": max_masks, "target_masks": target,
            "images_total": len(counts), "masks_total": total, "images": len(chosen),
            "masks": sum(counts[i] for i in chosen)}
    return SubsetDataset(dataset, chosen, {**getattr(dataset, "metadata", {}), "subsample": info})
