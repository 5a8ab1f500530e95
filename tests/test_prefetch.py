"""Pipelined loading and batched encoding change nothing: same samples, same order, same results."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from sam_bench.api import run
from sam_bench.engine.prefetch import Loaded, prefetch
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError
from sam_bench.models.sam import build_tiny_model


def test_prefetch_yields_the_dataset_in_order_with_images_and_encodes_in_batches(grabcut_root):
    dataset = open_dataset("grabcut", str(grabcut_root), limit=3)
    model = build_tiny_model()
    samples = list(prefetch(dataset, [2, 0, 1], model, workers=1))
    assert [s.image_id for s in samples] == [dataset.get(i).image_id for i in (2, 0, 1)]
    for sample, index in zip(samples, (2, 0, 1)):
        assert isinstance(sample.load_image, Loaded)
        assert (sample.load_image() == dataset.get(index).load_image()).all()
        assert all((a.mask == b.mask).all() for a, b in zip(sample.objects, dataset.get(index).objects))
    # encode_batch 2 on 3 images: one 2-image encoder call, then a 1-image call; each sample's
    # embedding is handed over for exactly its image and equals encoding it alone.
    for sample in prefetch(dataset, [0, 1, 2], model, workers=0, encode_batch=2):
        image = sample.load_image()
        assert id(image) in model._preloaded
        embedding = model.encode(image)
        alone = build_tiny_model().encode(image)
        assert torch.equal(embedding.features["image_embed"], alone.features["image_embed"])
        assert (embedding.input_size, embedding.original_size) == (alone.input_size, alone.original_size)
    assert not model._preloaded


def test_point_task_identical_with_workers_and_encode_batch(grabcut_root, tmp_path):
    common = dict(task="point", model="tiny", dataset="grabcut", data_root=str(grabcut_root), limit=3,
                  options={"max_clicks": 2})
    plain = run(**common, out=str(tmp_path / "plain"), workers=0)
    piped = run(**common, out=str(tmp_path / "piped"), workers=1, encode_batch=2)
    assert plain == piped
    items = [pd.read_csv(tmp_path / d / "point" / "grabcut" / "items.csv") for d in ("plain", "piped")]
    pd.testing.assert_frame_equal(*items)


def test_bad_loader_settings_are_rejected(grabcut_root):
    dataset = open_dataset("grabcut", str(grabcut_root), limit=1)
    with pytest.raises(ConfigError):
        list(prefetch(dataset, [0], build_tiny_model(), workers=0, encode_batch=0))
