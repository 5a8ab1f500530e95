"""The batched decoder path equals SamPredictor.predict called once per prompt (<= 1e-4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from sam_bench.core.types import Prompts
from sam_bench.data.images import read_rgb

TOL = 1e-4


@pytest.fixture(scope="module")
def real_images(shared_data):
    grabcut = sorted((shared_data / "grabcut" / "data_GT").iterdir())[0]
    bsds = sorted((shared_data / "bsds500" / "images" / "val").glob("*.jpg"))[0]
    return [read_rgb(grabcut), read_rgb(bsds)]


def _prompt_sets(image: np.ndarray, rng: np.random.Generator, tiny_model, predictor: SamPredictor):
    h, w = image.shape[:2]
    n = 5
    points = rng.uniform(0, [w, h], size=(n, 3, 2))
    labels = rng.integers(0, 2, size=(n, 3))
    corners = np.sort(rng.uniform(0, [w, h], size=(n, 2, 2)), axis=1)
    boxes = corners.reshape(n, 4)
    # Realistic mask inputs: low-res logits the model itself produced for other prompts.
    masks = tiny_model.decode(tiny_model.encode(image), Prompts(points[:, :1], labels[:, :1]), False).low_res_logits
    return {
        "one point": Prompts(points[:, :1], np.ones((n, 1), int)),
        "three points": Prompts(points, labels),
        "box": Prompts(boxes=boxes),
        "box + point": Prompts(points[:, :1], labels[:, :1], boxes=boxes),
        "points + mask": Prompts(points[:, :2], labels[:, :2], mask_logits=masks),
        "box + mask": Prompts(boxes=boxes, mask_logits=masks),
    }


@pytest.mark.parametrize("multimask", [True, False])
def test_batched_decode_matches_predictor(tiny_model, real_images, multimask):
    predictor = SamPredictor(tiny_model.model)
    rng = np.random.default_rng(0)
    default_batch = tiny_model.batch_size
    tiny_model.batch_size = 2  # exercise chunking: 5 prompts -> chunks of 2, 2, 1
    try:
        for image in real_images:
            embedding = tiny_model.encode(image)
            predictor.set_image(image)
            assert torch.equal(predictor.features, embedding.features["image_embed"])
            for kind, prompts in _prompt_sets(image, rng, tiny_model, predictor).items():
                decoded = tiny_model.decode(embedding, prompts, multimask)
                assert decoded.low_res_logits.shape[:2] == (len(prompts), 3 if multimask else 1)
                for i in range(len(prompts)):
                    _, iou, low = predictor.predict(
                        point_coords=None if prompts.points is None else prompts.points[i],
                        point_labels=None if prompts.labels is None else prompts.labels[i],
                        box=None if prompts.boxes is None else prompts.boxes[i],
                        mask_input=None if prompts.mask_logits is None else prompts.mask_logits[i].numpy(),
                        multimask_output=multimask,
                    )
                    assert np.abs(decoded.low_res_logits[i].numpy() - low).max() <= TOL, kind
                    assert np.abs(decoded.iou_predictions[i].numpy() - iou).max() <= TOL, kind
            # Upsampling helper = SamPredictor's full-resolution logits.
            prompts = Prompts(rng.uniform(0, 100, size=(2, 1, 2)), np.ones((2, 1), int))
            full = tiny_model.upsample(embedding, tiny_model.decode(embedding, prompts, multimask).low_res_logits)
            ref, _, _ = predictor.predict(prompts.points[1], prompts.labels[1], multimask_output=multimask,
                                          return_logits=True)
            assert full.shape[-2:] == image.shape[:2]
            assert np.abs(full[1].numpy() - ref).max() <= TOL
    finally:
        tiny_model.batch_size = default_batch


def test_tiny_model_is_seeded_and_labelled_untrained():
    from sam_bench.models.sam import build_tiny_model

    a, b = build_tiny_model(), build_tiny_model()
    assert a.info.untrained and a.info.label == "tiny (untrained)"
    assert a.info.details["weights_sha256"] == b.info.details["weights_sha256"]
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_autocast_stays_close_to_fp32(tiny_model, precision):
    from sam_bench.data.synthetic import make_image
    from sam_bench.models.sam import build_tiny_model

    image = make_image(np.random.default_rng(0)).image
    prompts = Prompts(np.array([[[100.0, 90.0]], [[200.0, 60.0]]]), np.ones((2, 1), int))
    ref = tiny_model.decode(tiny_model.encode(image), prompts, True)
    low = build_tiny_model(precision=precision)
    out = low.decode(low.encode(image), prompts, True)
    assert out.low_res_logits.dtype == torch.float32  # results are returned in fp32 whatever the compute type
    agreement = ((ref.low_res_logits > 0) == (out.low_res_logits > 0)).float().mean().item()
    assert agreement > 0.98
    assert (ref.iou_predictions - out.iou_predictions).abs().max().item() < 0.01
