"""Concept sources (image + noun phrases -> scored instance masks; issue 20), each equal to its own
library's path on a small random model saved in the official layout: transformers' Sam3Model with
its processor, SAM 3's own Sam3Processor text prompt, an OWLv2 / Grounding DINO detector with its
processor's post-processing whose boxes a SAM predictor turns into masks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from family_models import clip_tokenizer, tiny_sam3_concepts
from sam_bench.detect.concept_sources import build_concept_source
from sam_bench.errors import ConfigError

pytest.importorskip("transformers", reason="transformers not installed (pip install '.[hf]')")
PHRASES = ["a cat", "person"]


@pytest.fixture(scope="module")
def coco_image(shared_data) -> np.ndarray:
    from sam_bench.data.registry import open_dataset

    image = open_dataset("coco", str(shared_data / "coco_mini")).get(0).load_image()
    return np.ascontiguousarray(image[::2, ::2])  # half size keeps the tests cheap


def assert_same(found, masks, scores, boxes) -> None:
    assert np.array_equal(found.masks, np.asarray(masks, bool))
    assert np.array_equal(found.scores, np.asarray(scores, np.float64))
    assert np.array_equal(found.boxes, np.asarray(boxes, np.float64).reshape(-1, 4))


# ---------------------------------------------------------------------------------------- hf Sam3Model
@pytest.fixture(scope="module")
def hf_sam3(tmp_path_factory):
    model, processor = tiny_sam3_concepts()
    directory = tmp_path_factory.mktemp("sam3_hf")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return model, processor, directory


def test_hf_sam3model_equals_processor_and_model(hf_sam3, coco_image):
    from sam_bench.models.hf import build_hf_model

    model, processor, directory = hf_sam3
    adapter = build_hf_model(str(directory))
    assert build_concept_source(adapter, None, None, torch.device("cpu")) is adapter
    adapter.min_score = 0.0  # every query, so all 20 instances are compared
    found = adapter.segment_concepts(coco_image, PHRASES)
    reference_scores = []
    for phrase, got in zip(PHRASES, found):
        # transformers' documented path, written plainly: one call with image and text.
        inputs = processor(images=coco_image, text=phrase, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        result = processor.post_process_instance_segmentation(outputs, threshold=0.0, mask_threshold=0.5,
                                                              target_sizes=[coco_image.shape[:2]])[0]
        assert len(result["scores"]) == 20 and result["masks"].shape[1:] == coco_image.shape[:2]
        assert_same(got, result["masks"], result["scores"], result["boxes"])
        reference_scores.append(result["scores"])
    # The threshold is the processor's: strictly above min_score.
    adapter.min_score = float(reference_scores[0].median())
    kept = adapter.segment_concepts(coco_image, PHRASES[:1])[0]
    assert np.array_equal(kept.scores, found[0].scores[found[0].scores > adapter.min_score])
    assert 0 < len(kept.scores) < 20


# ---------------------------------------------------------------------------------------- sam3 package
def test_sam3_text_prompt_equals_sam3_processor(tmp_path, coco_image):
    pytest.importorskip("sam3", reason="sam3 not installed (pip install 'sam-bench[sam3]')")
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam_bench.models.sam3_build import build_sam3, pinning_skipped_on, to_official_layout
    from sam_bench.models.sam3_model import build_sam3_model
    from test_sam3 import SMALL

    torch.manual_seed(0)
    model = build_sam3(SMALL)
    path = tmp_path / "sam3_small_random.pt"
    torch.save(to_official_layout(model), path)
    adapter = build_sam3_model(str(path))
    assert build_concept_source(adapter, None, None, torch.device("cpu")) is adapter
    adapter.min_score = 0.0
    found = adapter.segment_concepts(coco_image, PHRASES[:1])  # one phrase: SAM 3's full-size DETR is slow on a CPU
    # sam3's own usage: set_image once, set_text_prompt per phrase (pinning skipped: no CUDA here).
    processor = Sam3Processor(model, device="cpu", confidence_threshold=0.0)
    with pinning_skipped_on(torch.device("cpu")):
        state = processor.set_image(Image.fromarray(coco_image))
        for phrase, got in zip(PHRASES, found):
            state = processor.set_text_prompt(phrase, state)
            assert len(state["scores"]) == 200
            assert_same(got, state["masks"][:, 0], state["scores"], state["boxes"])


# ---------------------------------------------------------------------------------------- errors
def test_a_model_without_text_says_what_to_pass(tiny_model):
    with pytest.raises(ConfigError, match="cannot segment noun phrases .* --detector transformers:DIR"):
        build_concept_source(tiny_model, None, None, torch.device("cpu"))
    with pytest.raises(ConfigError, match="not both"):
        build_concept_source(tiny_model, "transformers:x", "clip", torch.device("cpu"))
