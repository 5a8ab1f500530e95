"""The paper's subsampling of large datasets (placeholder until the point-task issue fills it in)."""
from __future__ import annotations

from typing import Any

from .types import Dataset


def apply_subsampling(dataset: Dataset, rule: dict[str, Any], seed: int) -> Dataset:
    return dataset
