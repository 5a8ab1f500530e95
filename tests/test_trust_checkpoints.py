"""Issue 10: bad checkpoint files say what the file is, never suggest weights_only=False; NaN
weights fail naming the checkpoint; weight-free models reject --checkpoint."""
from __future__ import annotations

import os
import zipfile

import pytest
import torch

from sam_bench.core.checkpoint import load_sam_checkpoint
from sam_bench.errors import CheckpointError, ConfigError


@pytest.mark.parametrize("content, said", [
    (b"hello\n", r"a text file \(6 bytes"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
    (bytes(range(7, 250)) * 4, r"not a PyTorch checkpoint \(972 bytes of unrecognised binary data"),
    (b"", "empty file"),
])
def test_non_checkpoint_files_are_described(tmp_path, content, said):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"weights.pth: {said}") as err:
        load_sam_checkpoint(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not weights")
    with pytest.raises(CheckpointError, match=r"archive.pth: a zip archive without data.pkl \(1 entries, e.g. readme.txt\)"):
        load_sam_checkpoint(path)


def test_pickled_objects_are_refused_without_unsafe_advice(tmp_path):
    path = tmp_path / "full_model.pth"
    torch.save({"model": os.stat_result((0,) * 10)}, path)  # a non-tensor Python object
    with pytest.raises(CheckpointError, match="full_model.pth: holds Python objects other than tensors") as err:
        load_sam_checkpoint(path)
    assert "weights_only" not in str(err.value)


def test_nan_weights_fail_naming_the_checkpoint(tmp_path, small_checkpoint):
    state = torch.load(small_checkpoint, weights_only=True)
    state["mask_decoder.iou_token.weight"].fill_(float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"nan.pth: 1 of \d+ tensors hold NaN or infinite values, "
                                              r"e.g. mask_decoder.iou_token.weight"):
        load_sam_checkpoint(path)


@pytest.mark.parametrize("model", ["box", "sobel", "canny", "felzenszwalb", "tiny"])
def test_checkpoint_with_a_model_that_takes_none_is_rejected(model, small_checkpoint):
    from sam_bench.plugins import load_plugins
    from sam_bench.registry import MODELS

    load_plugins()
    with pytest.raises(ConfigError, match=f"model '{model}' .*takes no --checkpoint"):
        MODELS.get(model)(checkpoint=str(small_checkpoint))
