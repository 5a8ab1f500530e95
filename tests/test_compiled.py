"""--compile: the compiled encoder and fast decoder give the official results (<= 1e-4), compile
once per graph, and do not recompile for new images, prompt counts or click counts.

Compiling costs tens of seconds on a 2-core CPU: one module-scoped compiled model, few graphs
(no mask input + multimask, mask input + single mask: the point task's two kinds of rounds)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from sam_bench.core.types import Prompts
from sam_bench.data.synthetic import make_image
from sam_bench.models.sam import build_tiny_model

TOL = 1e-4


@pytest.fixture(scope="module")
def compiled():
    torch._dynamo.reset()
    model = build_tiny_model(batch_size=2)
    model.enable_compile()
    yield model
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def official():
    return build_tiny_model(decoder="official")


def test_compiled_model_is_recorded(compiled):
    assert compiled.info.details["compiled"] is True and compiled.info.details["decoder"] == "fast"


def test_compiled_paths_equal_official_and_do_not_recompile(compiled, official):
    from torch._dynamo.utils import counters

    rng = np.random.default_rng(0)
    images = [make_image(rng, 200, 260).image, make_image(rng, 240, 180).image]
    frames = None
    for step, image in enumerate(images):
        embedding = compiled.encode(image)
        reference = official.encode(image)
        assert (embedding.features["image_embed"] - reference.features["image_embed"]).abs().max().item() <= TOL
        predictor = SamPredictor(official.model)
        predictor.set_image(image)
        h, w = image.shape[:2]
        n_points = 1 + step  # another click count on the second image: the token count changes
        points = rng.uniform(0, [w, h], size=(3, n_points, 2))  # 3 prompts, batch 2: chunks of 2 and 1 (two graph buckets)
        labels = np.ones((3, n_points), int)
        first = compiled.decode(embedding, Prompts(points, labels), multimask=True)
        boxes = np.sort(rng.uniform(0, [w, h], size=(3, 2, 2)), axis=1).reshape(3, 4)
        with_mask = Prompts(points, labels, boxes=boxes, mask_logits=first.low_res_logits[:, :1])
        second = compiled.decode(embedding, with_mask, multimask=False)
        for i in range(3):
            for prompts, decoded, multimask in ((Prompts(points, labels), first, True), (with_mask, second, False)):
                _, iou, low = predictor.predict(prompts.points[i], prompts.labels[i],
                                                None if prompts.boxes is None else prompts.boxes[i],
                                                None if prompts.mask_logits is None else prompts.mask_logits[i].numpy(),
                                                multimask_output=multimask)
                assert np.abs(decoded.low_res_logits[i].numpy() - low).max() <= TOL
                assert np.abs(decoded.iou_predictions[i].numpy() - iou).max() <= TOL
        if frames is None:
            frames = counters["stats"]["unique_graphs"]
            assert frames >= 3  # encoder, decoder without and with mask input
    assert counters["stats"]["unique_graphs"] == frames  # second image, other click count: no new graph
