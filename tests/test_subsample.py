"""The paper's subsampling: seeded, deterministic, about target_masks, recorded, no mask decoding."""
from __future__ import annotations

import numpy as np
import pytest

from sam_bench.data.subsample import apply_subsampling, choose_images
from sam_bench.data.types import Dataset, ImageSample, ObjectAnnotation
from sam_bench.errors import ConfigError

RULE = {"max_masks": 150, "target_masks": 100}


class CountingDataset(Dataset):
    """Image i has counts[i] objects; get() is counted so the test can see masks were not built."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.name = "fake"
        self.metadata = {"dataset": "fake"}
        self.gets = 0
        self.marker = "reader attribute"

    def __len__(self) -> int:
        return len(self.counts)

    def image_ids(self) -> list[str]:
        return [f"img{i}" for i in range(len(self.counts))]

    def object_counts(self) -> list[int]:
        return list(self.counts)

    def get(self, index: int) -> ImageSample:
        self.gets += 1
        objs = [ObjectAnnotation(f"o{k}", np.ones((2, 2), bool)) for k in range(self.counts[index])]
        return ImageSample(f"img{index}", lambda: np.zeros((2, 2, 3), np.uint8), 2, 2, objs)


def counts(n: int = 60) -> list[int]:
    return [int(c) for c in np.random.default_rng(123).integers(0, 8, size=n)]


def test_small_dataset_is_untouched():
    ds = CountingDataset([1, 2, 3])
    out = apply_subsampling(ds, RULE, seed=0)
    assert out is ds and out.metadata["subsample"] == {"applied": False, "images": 3, "masks": 6}
    assert apply_subsampling(ds, {}, seed=0) is ds


def test_subsampling_is_seeded_deterministic_and_recorded():
    c = counts()
    total = sum(c)
    assert total > RULE["max_masks"]
    ds = CountingDataset(c)
    a = apply_subsampling(ds, RULE, seed=0)
    b = apply_subsampling(CountingDataset(c), RULE, seed=0)
    other = apply_subsampling(CountingDataset(c), RULE, seed=1)
    assert ds.gets == 0  # counted through object_counts(), no sample (mask) was built
    assert a.image_ids() == b.image_ids() and a.image_ids() != other.image_ids()
    kept = [int(i[3:]) for i in a.image_ids()]
    assert kept == sorted(kept)  # the dataset's own order is kept
    masks = sum(c[i] for i in kept)
    # the draw stops at the first image reaching the target: fewer than target before it
    assert RULE["target_masks"] <= masks < RULE["target_masks"] + max(c)
    assert all(c[i] > 0 for i in kept)
    info = a.metadata["subsample"]
    assert info == {"applied": True, "seed": 0, "max_masks": 150, "target_masks": 100,
                    "images_total": 60, "masks_total": total, "images": len(kept), "masks": masks}
    assert a.object_counts() == [c[i] for i in kept]
    assert a.get(0).image_id == a.image_ids()[0] and a.marker == "reader attribute"
    # the exact draw: images taken in the seeded permutation's order until 100 masks
    order = np.random.default_rng(0).permutation(len(c))
    expected, running = [], 0
    for i in order:
        if running >= 100:
            break
        if c[i]:
            expected.append(int(i))
            running += c[i]
    assert kept == sorted(expected) == choose_images(c, 100, 0)


def test_pinned_seed_wins_over_run_seed():
    c = counts()
    pinned = {**RULE, "seed": 7}
    a = apply_subsampling(CountingDataset(c), pinned, seed=0)
    b = apply_subsampling(CountingDataset(c), pinned, seed=5)
    assert a.image_ids() == b.image_ids() and a.metadata["subsample"]["seed"] == 7


def test_bad_rule():
    with pytest.raises(ConfigError, match="max_masks and target_masks"):
        apply_subsampling(CountingDataset([1]), {"max_masks": 10}, seed=0)


def test_subsampling_a_real_reader_counts_match_the_samples(bsds_root):
    """BSDS500 val (100 images, 10698 region masks over 5-6 annotators) with a scaled-down rule."""
    from sam_bench.data.readers.bsds500 import BSDS500Dataset

    ds = BSDS500Dataset(bsds_root, "val")
    ds.name = "bsds500"
    sub = apply_subsampling(ds, {"max_masks": 5000, "target_masks": 1000, "seed": 3}, seed=0)
    info = sub.metadata["subsample"]
    assert info["masks_total"] == 10698 and info["images_total"] == 100
    assert 1000 <= info["masks"] < 1000 + max(ds.object_counts())
    # the cheap counts are the objects the samples really carry
    assert [len(sub.get(i).objects) for i in range(len(sub))] == sub.object_counts()
    assert sum(sub.object_counts()) == info["masks"] and len(sub) == info["images"]
    assert sub.image_ids() == apply_subsampling(BSDS500Dataset(bsds_root, "val"), {
        "max_masks": 5000, "target_masks": 1000, "seed": 3}, seed=9).image_ids()
