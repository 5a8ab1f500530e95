"""The fast decoder path equals the official MaskDecoder.forward (<= 1e-4 on the logits), with few
prompt tokens (attention through the projection weights) and many (through projected image tokens)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.modeling import MaskDecoder

from sam_bench.core.types import Prompts
from sam_bench.models.sam import SamSegmenter, build_tiny_model, make_tiny_sam
from sam_bench.models.sam_fast_decoder import FastMaskDecoder, supports

TOL = 1e-4
N = 3


def prompt_kinds(rng: np.random.Generator, h: int = 300, w: int = 400) -> dict[str, Prompts]:
    points = rng.uniform(0, [w, h], size=(N, 3, 2))
    labels = rng.integers(0, 2, size=(N, 3))
    boxes = np.sort(rng.uniform(0, [w, h], size=(N, 2, 2)), axis=1).reshape(N, 4)
    masks = torch.from_numpy(rng.normal(0, 4, size=(N, 1, 256, 256))).float()
    many = rng.uniform(0, [w, h], size=(N, 12, 2))  # 18 tokens: attention through projected image tokens
    return {
        "twelve points": Prompts(many, rng.integers(0, 2, size=(N, 12))),
        "twelve points + mask": Prompts(many, rng.integers(0, 2, size=(N, 12)), mask_logits=masks),
        "one point": Prompts(points[:, :1], np.ones((N, 1), int)),
        "three points": Prompts(points, labels),
        "box": Prompts(boxes=boxes),
        "box + point": Prompts(points[:, :1], labels[:, :1], boxes=boxes),
        "points + mask": Prompts(points[:, :2], labels[:, :2], mask_logits=masks),
        "box + mask": Prompts(boxes=boxes, mask_logits=masks),
        "mask only": Prompts(mask_logits=masks),
    }


@pytest.fixture(scope="module")
def official():
    return build_tiny_model(decoder="official")


@pytest.fixture(scope="module")
def embedding(official):
    from sam_bench.data.synthetic import make_image

    return official.encode(make_image(np.random.default_rng(3), 300, 400).image)


def assert_same(ref, out, kind: str) -> None:
    assert out.low_res_logits.shape == ref.low_res_logits.shape, kind
    assert (out.low_res_logits - ref.low_res_logits).abs().max().item() <= TOL, kind
    assert (out.iou_predictions - ref.iou_predictions).abs().max().item() <= TOL, kind


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("batch_size", [2, 8])
def test_fast_decoder_equals_official_forward(official, embedding, multimask, batch_size):
    fast = build_tiny_model(batch_size=batch_size)
    assert fast.fast is not None and fast.info.details["decoder"] == "fast"
    for kind, prompts in prompt_kinds(np.random.default_rng(batch_size)).items():
        assert_same(official.decode(embedding, prompts, multimask), fast.decode(embedding, prompts, multimask), kind)


def test_fast_decoder_module_on_decoder_inputs():
    """FastMaskDecoder called directly with the prompt encoder's outputs, as MaskDecoder.forward."""
    sam = make_tiny_sam(seed=2).eval()
    image_pe = sam.prompt_encoder.get_dense_pe()
    fast = FastMaskDecoder(sam.mask_decoder, image_pe)
    torch.manual_seed(0)
    image = torch.randn(1, 256, 64, 64)
    points = (torch.rand(3, 2, 2) * 1024, torch.tensor([[1, 0], [1, 1], [0, 1]]))
    with torch.no_grad():
        for masks in (None, torch.randn(3, 1, 256, 256)):
            sparse, dense = sam.prompt_encoder(points=points, boxes=None, masks=masks)
            ref_masks, ref_iou = sam.mask_decoder(image, image_pe, sparse, dense, True)
            side = fast.image_side(image, dense[:1] if masks is None else dense, shared=masks is None)
            assert (side.projected is None) == (masks is not None)  # shared only without mask input
            out_masks, out_iou = fast(side, sparse, True)
            assert (out_masks - ref_masks).abs().max().item() <= TOL
            assert (out_iou - ref_iou).abs().max().item() <= TOL


def test_fast_path_only_for_the_official_decoder_class():
    class OtherDecoder(MaskDecoder):  # e.g. HQ-SAM's decoder subclasses MaskDecoder with its own forward
        pass

    sam = make_tiny_sam()
    assert supports(sam.mask_decoder)
    sam.mask_decoder.__class__ = OtherDecoder
    assert not supports(sam.mask_decoder)
    segmenter = SamSegmenter(sam, build_tiny_model().info, "x", torch.device("cpu"))
    assert segmenter.fast is None and segmenter.info.details["decoder"] == "official"
    with pytest.raises(TypeError):
        FastMaskDecoder(sam.mask_decoder, sam.prompt_encoder.get_dense_pe())


def test_bf16_fast_decoder_close_to_bf16_official(embedding):
    """Under autocast the fast path stays as close to fp32 as the official bf16 path does."""
    ref = build_tiny_model(decoder="official")
    prompts = prompt_kinds(np.random.default_rng(0))["one point"]
    fp32 = ref.decode(embedding, prompts, True)
    official_bf16 = build_tiny_model(decoder="official", precision="bf16").decode(embedding, prompts, True)
    fast_bf16 = build_tiny_model(precision="bf16").decode(embedding, prompts, True)
    err_official = (official_bf16.low_res_logits - fp32.low_res_logits).abs().max().item()
    err_fast = (fast_bf16.low_res_logits - fp32.low_res_logits).abs().max().item()
    assert err_fast <= 2 * err_official + 1e-3
