"""`hf` equals each transformers family's own processor + model path per prompt (issue 11)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from family_fidelity import (assert_cache_roundtrip, assert_click1_matches, assert_decode_matches,
                             prompt_sets, real_samples)
from family_models import Reference, tiny_hf

pytest.importorskip("transformers", reason="transformers not installed (pip install '.[hf]')")

FAMILY_CLASSES = ["SamModel", "SamHQModel", "Sam2Model", "Sam3TrackerModel"]


@pytest.fixture(scope="module", params=FAMILY_CLASSES)
def hf_setup(request, tmp_path_factory, shared_data):
    from sam_bench.models.hf import build_hf_model

    class_name = request.param
    model, processor = tiny_hf(class_name)
    directory = tmp_path_factory.mktemp(class_name)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    adapter = build_hf_model(str(directory))
    sample = real_samples(shared_data)[0]
    image = sample.load_image()
    return adapter, Reference(model, processor, class_name, image), sample, image, adapter.encode(image)


@pytest.mark.parametrize("multimask", [True, False])
def test_decode_matches_transformers(hf_setup, multimask):
    adapter, reference, _, image, embedding = hf_setup
    # transformers' SamHQModel returns 3 sorted masks under multimask (the original HQ-SAM returns 1).
    assert adapter.masks_per_multimask_output == 3
    assert_decode_matches(adapter, embedding, prompt_sets(image, adapter, embedding), reference, multimask,
                          masks_per_prompt=3 if multimask else 1)


def test_upsample_and_click1_match_transformers(hf_setup):
    from sam_bench.core.types import Prompts

    adapter, reference, sample, _, embedding = hf_setup

    def predictor_masks(click):
        out = reference.run(input_points=[[click.tolist()]], input_labels=[[[1]]], multimask=True)
        return reference.full_masks(out, binarize=True).numpy(), out.iou_scores[0, 0].numpy()

    assert_click1_matches(adapter, sample, embedding, predictor_masks)
    out = reference.run(input_points=[[[[50.0, 60.0]]]], input_labels=[[[1]]], multimask=True)
    low = adapter.decode(embedding, Prompts(np.array([[[50.0, 60.0]]]), np.ones((1, 1), int)), True).low_res_logits
    full = adapter.upsample(embedding, low)[0]
    assert np.abs(full.numpy() - reference.full_masks(out, binarize=False).numpy()).max() <= 1e-4


def test_cache_roundtrip_and_details(hf_setup, tmp_path):
    adapter, reference, _, image, _ = hf_setup
    assert_cache_roundtrip(adapter, image, tmp_path)
    details = adapter.info.details
    assert details["model_class"] == reference.class_name
    assert details["parameters"] == sum(p.numel() for p in reference.model.parameters())
    assert len(details["checkpoint_sha256"]) == 64


def test_bad_directories_give_one_line_errors(tmp_path):
    from sam_bench.errors import CheckpointError
    from sam_bench.models.hf import build_hf_model

    with pytest.raises(CheckpointError, match=f"{tmp_path / 'absent'}: not found"):
        build_hf_model(str(tmp_path / "absent"))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(CheckpointError, match="BertModel.*none of SamModel"):
        build_hf_model(str(tmp_path))
    model, _ = tiny_hf("SamModel")
    model.save_pretrained(tmp_path / "no_processor")
    with pytest.raises(CheckpointError, match="cannot load SamModel and its processor"):
        build_hf_model(str(tmp_path / "no_processor"))


def test_missing_package_names_the_pip_command(monkeypatch, tmp_path):
    import importlib

    from sam_bench.errors import ConfigError
    from sam_bench.models.hf import build_hf_model

    real = importlib.import_module

    def fail(name, *args):
        if name == "transformers":
            raise ModuleNotFoundError("No module named 'transformers'", name="transformers")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fail)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["SamModel"]}))
    with pytest.raises(ConfigError, match=r"pip install 'sam-bench\[hf\]'"):
        build_hf_model(str(tmp_path))
