"""`hf` equals each transformers family's own processor + model path per prompt (issue 11)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from family_fidelity import (assert_cache_roundtrip, assert_click1_matches, assert_decode_matches,
                             prompt_sets, real_samples)

T = pytest.importorskip("transformers", reason="transformers not installed (pip install '.[hf]')")

FAMILY_CLASSES = ["SamModel", "SamHQModel", "Sam2Model", "Sam3TrackerModel"]


def tiny_hf(class_name: str):
    """A small random model of `class_name` from transformers' own configs, with its processor."""
    torch.manual_seed(5)
    if class_name == "SamModel":
        vision = T.SamVisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                   global_attn_indexes=[1], mlp_dim=256)
        return T.SamModel(T.SamConfig(vision_config=vision)), T.SamProcessor(T.SamImageProcessor())
    if class_name == "SamHQModel":
        vision = T.SamHQVisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     global_attn_indexes=[1], mlp_dim=256)
        config = T.SamHQConfig(vision_config=vision, mask_decoder_config=T.SamHQMaskDecoderConfig(vit_dim=64))
        return T.SamHQModel(config), T.SamHQProcessor(T.SamImageProcessor())
    if class_name == "Sam2Model":
        hiera = T.Sam2HieraDetConfig(hidden_size=32, blocks_per_stage=[1, 1, 2, 1],
                                     embed_dim_per_stage=[32, 64, 128, 256],
                                     num_attention_heads_per_stage=[1, 1, 2, 4], global_attention_blocks=[3])
        vision = T.Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[256, 128, 64, 32])
        return T.Sam2Model(T.Sam2Config(vision_config=vision)), T.Sam2Processor(T.Sam2ImageProcessor())
    vit = T.Sam3ViTConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                          global_attn_indexes=[1])
    config = T.Sam3TrackerConfig(vision_config=T.Sam3VisionConfig(backbone_config=vit))
    return T.Sam3TrackerModel(config), T.Sam3TrackerProcessor(T.Sam3ImageProcessor())


class Reference:
    """The documented transformers path for one prompt: processor -> model(image_embeddings=...)."""

    def __init__(self, model, processor, class_name: str, image: np.ndarray) -> None:
        self.model, self.processor, self.class_name, self.image = model.eval(), processor, class_name, image
        self.inputs = processor(images=image, return_tensors="pt")
        with torch.no_grad():
            embeddings = model.get_image_embeddings(self.inputs["pixel_values"])
        self.image_kwargs = ({"image_embeddings": embeddings[0], "intermediate_embeddings": embeddings[1]}
                             if class_name == "SamHQModel" else {"image_embeddings": embeddings})

    def __call__(self, prompts, i: int, multimask: bool):
        out = self.run(
            input_points=None if prompts.points is None else [[prompts.points[i].tolist()]],
            input_labels=None if prompts.labels is None else [[prompts.labels[i].tolist()]],
            input_boxes=None if prompts.boxes is None else [[prompts.boxes[i].tolist()]],
            input_masks=None if prompts.mask_logits is None else prompts.mask_logits[i][None],
            multimask=multimask)
        return out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()

    def run(self, input_masks=None, multimask=True, **prompt_lists):
        encoded = self.processor(images=self.image, return_tensors="pt", **prompt_lists)
        prompt_inputs = {k: encoded[k] for k in ("input_points", "input_labels", "input_boxes") if k in encoded}
        with torch.no_grad():
            return self.model(**self.image_kwargs, **prompt_inputs, input_masks=input_masks,
                              multimask_output=multimask)

    def full_masks(self, out, binarize: bool):
        sizes = [self.inputs["original_sizes"]]
        if "reshaped_input_sizes" in self.inputs:
            sizes.append(self.inputs["reshaped_input_sizes"])
        return self.processor.post_process_masks(out.pred_masks, *sizes, binarize=binarize)[0][0]


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
