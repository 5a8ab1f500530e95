"""`mobile_sam` equals mobile_sam's own SamPredictor for every prompt kind (issue 11)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from family_fidelity import (assert_cache_roundtrip, assert_click1_matches, assert_decode_matches,
                             prompt_sets, real_samples)

pytest.importorskip("timm", reason="timm not installed (pip install '.[mobile]')")
mobile = pytest.importorskip("mobile_sam", reason="mobilesam-mirror not installed (pip install '.[mobile]')")


@pytest.fixture(scope="module")
def mobile_setup(tmp_path_factory, shared_data):
    from sam_bench.models.mobile_sam import build_mobile_sam_model

    torch.manual_seed(4)
    sam = mobile.sam_model_registry["vit_t"]().eval()  # the package's own vit_t builder, random weights
    path = tmp_path_factory.mktemp("mobile") / "mobile_sam.pt"
    torch.save(sam.state_dict(), path)
    model = build_mobile_sam_model(str(path))
    sample = real_samples(shared_data)[0]
    image = sample.load_image()
    predictor = mobile.SamPredictor(sam)
    predictor.set_image(image)
    return model, predictor, sample, image, model.encode(image)


def _reference(predictor, prompts, i: int, multimask: bool):
    _, iou, low = predictor.predict(
        point_coords=None if prompts.points is None else prompts.points[i],
        point_labels=None if prompts.labels is None else prompts.labels[i],
        box=None if prompts.boxes is None else prompts.boxes[i],
        mask_input=None if prompts.mask_logits is None else prompts.mask_logits[i].numpy(),
        multimask_output=multimask)
    return low, iou


@pytest.mark.parametrize("multimask", [True, False])
def test_decode_matches_mobile_predictor(mobile_setup, multimask):
    model, predictor, _, image, embedding = mobile_setup
    assert torch.equal(embedding.features["image_embed"], predictor.features)
    assert_decode_matches(model, embedding, prompt_sets(image, model, embedding), partial(_reference, predictor),
                          multimask, masks_per_prompt=3 if multimask else 1)


def test_click1_and_upsample_match_predictor(mobile_setup):
    from sam_bench.core.types import Prompts

    model, predictor, sample, _, embedding = mobile_setup

    def predictor_masks(click):
        masks, scores, _ = predictor.predict(click, np.array([1]), multimask_output=True)
        return masks, scores

    assert_click1_matches(model, sample, embedding, predictor_masks)
    logits, _, _ = predictor.predict(np.array([[50.0, 60.0]]), np.array([1]), return_logits=True)
    low = model.decode(embedding, Prompts(np.array([[[50.0, 60.0]]]), np.ones((1, 1), int)), True).low_res_logits
    assert np.abs(model.upsample(embedding, low)[0].numpy() - logits).max() <= 1e-4


def test_cache_roundtrip_and_details(mobile_setup, tmp_path):
    model, _, _, image, _ = mobile_setup
    assert_cache_roundtrip(model, image, tmp_path)
    details = model.info.details
    assert (details["family"], details["size"]) == ("MobileSAM", "vit_t")
    assert details["parameters"] == sum(p.numel() for p in model.model.parameters())
    assert model.cache_fingerprint.startswith("mobile_sam|")


def test_sam_checkpoint_is_rejected_naming_the_keys(small_checkpoint):
    from sam_bench.errors import CheckpointError
    from sam_bench.models.mobile_sam import build_mobile_sam_model

    with pytest.raises(CheckpointError, match="not in the official MobileSAM .*unexpected keys .*image_encoder.blocks"):
        build_mobile_sam_model(str(small_checkpoint))
