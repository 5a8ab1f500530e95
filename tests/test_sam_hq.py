"""`sam_hq` equals segment_anything_hq's own SamPredictor for every prompt kind (issue 11)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from family_fidelity import (assert_cache_roundtrip, assert_click1_matches, assert_decode_matches,
                             prompt_sets, real_samples)
from family_models import tiny_hq_sam

hq = pytest.importorskip("segment_anything_hq", reason="segment-anything-hq not installed (pip install '.[hq]')")


@pytest.fixture(scope="module")
def hq_setup(tmp_path_factory, shared_data):
    from sam_bench.models.sam_hq import build_sam_hq_model

    sam = tiny_hq_sam()
    path = tmp_path_factory.mktemp("hq") / "sam_hq_vit_tiny_random.pth"
    torch.save(sam.state_dict(), path)  # the official layout: a plain state dict
    model = build_sam_hq_model(str(path))
    sample = real_samples(shared_data)[0]
    image = sample.load_image()
    predictor = hq.SamPredictor(sam)
    predictor.set_image(image)
    return model, predictor, sample, image, model.encode(image)


def _reference(predictor, hq_token_only: bool, prompts, i: int, multimask: bool):
    _, iou, low = predictor.predict(
        point_coords=None if prompts.points is None else prompts.points[i],
        point_labels=None if prompts.labels is None else prompts.labels[i],
        box=None if prompts.boxes is None else prompts.boxes[i],
        mask_input=None if prompts.mask_logits is None else prompts.mask_logits[i].numpy(),
        multimask_output=multimask, hq_token_only=hq_token_only)
    return low, iou


@pytest.mark.parametrize("multimask", [True, False])
def test_decode_matches_hq_predictor(hq_setup, multimask):
    model, predictor, _, image, embedding = hq_setup
    assert torch.equal(embedding.features["image_embed"], predictor.features)
    assert torch.equal(embedding.features["interm"], predictor.interm_features[0])
    # HQ-SAM's predictor returns ONE mask under multimask: the adapter says so instead of faking 3.
    assert model.masks_per_multimask_output == 1
    assert_decode_matches(model, embedding, prompt_sets(image, model, embedding),
                          partial(_reference, predictor, False), multimask, masks_per_prompt=1)


def test_hq_token_only_matches_predictor(hq_setup):
    model, predictor, _, image, embedding = hq_setup
    model.hq_token_only = True
    try:
        sets = prompt_sets(image, model, embedding)
        assert_decode_matches(model, embedding, {k: sets[k] for k in ("one point", "box + mask")},
                              partial(_reference, predictor, True), True, masks_per_prompt=1)
    finally:
        model.hq_token_only = False


def test_upsample_and_click1_match_predictor(hq_setup):
    model, predictor, sample, image, embedding = hq_setup

    def predictor_masks(click):
        masks, scores, _ = predictor.predict(click, np.array([1]), multimask_output=True)
        return masks, scores

    assert_click1_matches(model, sample, embedding, predictor_masks)
    logits, _, _ = predictor.predict(np.array([[50.0, 60.0]]), np.array([1]), return_logits=True)
    from sam_bench.core.types import Prompts

    low = model.decode(embedding, Prompts(np.array([[[50.0, 60.0]]]), np.ones((1, 1), int)), True).low_res_logits
    assert np.abs(model.upsample(embedding, low)[0].numpy() - logits).max() <= 1e-4


def test_point_task_reports_no_oracle(hq_setup):
    from sam_bench.metrics.point import point_metrics
    from sam_bench.tasks.point.task import interactive_session

    model, _, sample, _, embedding = hq_setup
    traces = interactive_session(model, embedding, [o.mask for o in sample.objects], sample.ignore, max_clicks=2)
    assert all(t.iou_oracle is None for t in traces)  # one mask under multimask: nothing to pick from
    metrics = point_metrics(np.array([t.ious for t in traces]), None)
    assert "oracle_mIoU@1" not in metrics and "mIoU@1" in metrics


def test_cache_roundtrip(hq_setup, tmp_path):
    model, _, _, image, _ = hq_setup
    assert_cache_roundtrip(model, image, tmp_path)


def test_size_inferred_and_details(hq_setup, tmp_path):
    from sam_bench.models.sam_hq import build_sam_hq_model

    model = hq_setup[0]
    details = model.info.details
    assert details["family"] == "HQ-SAM" and details["size"] == "vit_d64x2"
    assert details["parameters"] == sum(p.numel() for p in tiny_hq_sam().parameters())
    assert len(details["checkpoint_sha256"]) == 64
    # Light HQ-SAM (TinyViT): recognised from its keys, built with the package's vit_tiny builder.
    light = hq.sam_model_registry["vit_tiny"]()
    torch.save(light.state_dict(), tmp_path / "sam_hq_vit_tiny.pth")
    assert build_sam_hq_model(str(tmp_path / "sam_hq_vit_tiny.pth")).info.details["size"] == "vit_tiny"


def test_plain_sam_checkpoint_is_rejected_with_the_missing_hq_keys(small_checkpoint):
    from sam_bench.errors import CheckpointError
    from sam_bench.models.sam_hq import build_sam_hq_model

    with pytest.raises(CheckpointError, match="missing keys .*mask_decoder.compress_vit_feat"):
        build_sam_hq_model(str(small_checkpoint))
