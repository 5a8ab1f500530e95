"""Checkpoint loading: official layout in, architecture inferred, clear errors for bad files."""
from __future__ import annotations

import pytest
import torch

from sam_bench.core.checkpoint import (
    OFFICIAL_ARCHITECTURES,
    SamArchitecture,
    build_sam,
    infer_architecture,
    load_sam_checkpoint,
)
from sam_bench.errors import CheckpointError


def test_infers_every_official_architecture_from_shapes():
    # Shapes only: meta tensors avoid allocating ViT-H's 2.4 GB of weights.
    for name, arch in OFFICIAL_ARCHITECTURES.items():
        with torch.device("meta"):
            state = build_sam(arch).state_dict()
        inferred = infer_architecture(state)
        assert inferred == arch, name
        assert inferred.name == name


def test_round_trip_small_random_checkpoint(small_checkpoint):
    loaded = load_sam_checkpoint(small_checkpoint)
    assert loaded.architecture == SamArchitecture(48, 3, 3, (2,), 4.0, 14, 1024, 2, 2048)
    saved = torch.load(small_checkpoint, weights_only=True)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert len(loaded.sha256) == 64


def test_wrapped_state_dict_is_unwrapped(tmp_path, small_checkpoint):
    path = tmp_path / "finetuned.pth"
    torch.save({"model": torch.load(small_checkpoint, weights_only=True)}, path)
    assert load_sam_checkpoint(path).architecture.encoder_depth == 3


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match=r"nope\.pth: checkpoint file not found"):
        load_sam_checkpoint(path)


def test_truncated_file_is_reported(tmp_path, small_checkpoint):
    path = tmp_path / "truncated.pth"
    data = small_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth: truncated or damaged zip archive"):
        load_sam_checkpoint(path)


def test_wrong_layout_lists_missing_and_unexpected_keys(tmp_path, small_checkpoint):
    state = torch.load(small_checkpoint, weights_only=True)
    state.pop("mask_decoder.iou_token.weight")
    state["mask_decoder.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_sam_checkpoint(path)
    message = str(err.value)
    assert "odd.pth" in message
    assert "missing keys (1): mask_decoder.iou_token.weight" in message
    assert "unexpected keys (1): mask_decoder.extra_head.weight" in message


def test_not_a_sam_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"resnet\.pth: not an official SAM state dict; missing keys"):
        load_sam_checkpoint(path)


def test_sam_model_records_checkpoint_hash(small_checkpoint):
    import hashlib

    from sam_bench.models.sam import build_sam_model

    model = build_sam_model(checkpoint=str(small_checkpoint))
    assert model.info.details["checkpoint_sha256"] == hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()
    assert model.info.details["architecture"]["encoder_embed_dim"] == 48
