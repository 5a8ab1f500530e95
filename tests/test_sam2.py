"""`sam2` adapter: a random SAM 2.1 hiera_t saved in the official layout, loaded from the file, equals
SAM2ImagePredictor called once per prompt on a real GrabCut image (logits and IoUs within 1e-4)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sam_bench.core.types import ImageEmbedding, Prompts
from sam_bench.errors import CheckpointError, ConfigError

sam2_build = pytest.importorskip("sam2.build_sam", reason="sam2 not installed (pip install 'sam-bench[sam2]')")
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

from sam_bench.models.sam2_model import build_sam2_model, infer_config  # noqa: E402

TOL = 1e-4
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random hiera_t from the package's own builder, saved like sam2.1_hiera_tiny.pt."""
    torch.manual_seed(0)
    model = sam2_build.build_sam2(CONFIG, ckpt_path=None, device="cpu")
    # Trained SAM 2 logits pass the predictor's +-32 clamp; random ones stay within +-1. Scaling the
    # mask hypernetworks' output layers (logits are linear in them) brings them to a trained range.
    with torch.no_grad():
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(120.0)
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def sample(grabcut_root):
    from sam_bench.data.registry import open_dataset

    return open_dataset("grabcut", str(grabcut_root)).get(0)


@pytest.fixture(scope="module")
def setup(checkpoint, sample):
    """(segmenter loaded from the file, its embedding, the official predictor set on the image)."""
    segmenter = build_sam2_model(str(checkpoint))
    image = sample.load_image()
    predictor = SAM2ImagePredictor(segmenter.model)
    predictor.set_image(image)
    return segmenter, segmenter.encode(image), predictor


def test_config_is_read_from_the_weights(checkpoint):
    state = torch.load(checkpoint, weights_only=True)["model"]
    assert infer_config(state, "x") == CONFIG
    sam20 = {k: v for k, v in state.items() if k not in ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")}
    assert infer_config(sam20, "x") == "configs/sam2/sam2_hiera_t.yaml"
    # Other sizes: Hiera width and block count (shapes only matter here).
    for width, blocks, size in ((96, 16, "s"), (112, 24, "b+"), (144, 48, "l")):
        fake = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(width, 3, 7, 7),
                "sam_mask_decoder.iou_token.weight": torch.zeros(1), "no_obj_embed_spatial": torch.zeros(1),
                "obj_ptr_tpos_proj.weight": torch.zeros(1),
                **{f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(blocks)}}
        assert infer_config(fake, "x") == f"configs/sam2.1/sam2.1_hiera_{size}.yaml"


def test_clear_errors(tmp_path, small_checkpoint, checkpoint):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=str(missing)):
        build_sam2_model(str(missing))
    with pytest.raises(CheckpointError, match="not a SAM 2 state dict"):
        build_sam2_model(str(small_checkpoint))  # a SAM 1 checkpoint
    with pytest.raises(ConfigError, match="has no argument\(s\) colour"):
        build_sam2_model(str(checkpoint), colour="red")
    with pytest.raises(CheckpointError, match="does not match sam2 config configs/sam2.1/sam2.1_hiera_s.yaml"):
        build_sam2_model(str(checkpoint), config="configs/sam2.1/sam2.1_hiera_s.yaml")
    with pytest.raises(ConfigError, match="not one of the sam2 package's configs"):
        build_sam2_model(str(checkpoint), config="hiera_xl.yaml")


def test_encode_equals_set_image(setup):
    segmenter, embedding, predictor = setup
    assert torch.equal(embedding.features["image_embed"], predictor._features["image_embed"])
    for i, feat in enumerate(predictor._features["high_res_feats"]):
        assert torch.equal(embedding.features[f"high_res_feats_{i}"], feat)
    assert embedding.input_size == (1024, 1024)


def _predict(predictor: SAM2ImagePredictor, prompts: Prompts, i: int, multimask: bool, mask_input=None):
    return predictor.predict(
        point_coords=None if prompts.points is None else prompts.points[i],
        point_labels=None if prompts.labels is None else prompts.labels[i],
        box=None if prompts.boxes is None else prompts.boxes[i],
        mask_input=mask_input, multimask_output=multimask, return_logits=True)


@pytest.mark.parametrize("multimask", [True, False])
def test_batched_decode_equals_predictor(setup, multimask):
    segmenter, embedding, predictor = setup
    h, w = embedding.original_size
    rng = np.random.default_rng(0)
    n = 3
    points = rng.uniform(0, [w, h], size=(n, 3, 2))
    labels = rng.integers(0, 2, size=(n, 3))
    boxes = np.sort(rng.uniform(0, [w, h], size=(n, 2, 2)), axis=1).reshape(n, 4)
    kinds = {
        "one point": Prompts(points[:, :1], np.ones((n, 1), int)),
        "three points": Prompts(points, labels),
        "box": Prompts(boxes=boxes),
        "box + point": Prompts(points[:, :1], labels[:, :1], boxes=boxes),
    }
    # Mask inputs: each side feeds back its own low-res logits of a first click (the predictor's
    # copy is clamped to +-32, sam-bench's is not: decode clamps its inputs).
    first = kinds["one point"]
    ours = segmenter.decode(embedding, first, False).low_res_logits
    assert ours.abs().max() > 32  # the clamp matters for this model
    theirs = [_predict(predictor, first, i, False)[2] for i in range(n)]
    kinds["points + mask"] = Prompts(points[:, :2], labels[:, :2], mask_logits=ours)
    kinds["box + mask"] = Prompts(boxes=boxes, mask_logits=ours)
    segmenter.batch_size = 2  # chunks of 2 and 1
    for kind, prompts in kinds.items():
        decoded = segmenter.decode(embedding, prompts, multimask)
        assert decoded.low_res_logits.shape == (n, 3 if multimask else 1, 256, 256)
        full = segmenter.upsample(embedding, decoded.low_res_logits)
        for i in range(n):
            mask_input = theirs[i] if prompts.mask_logits is not None else None
            masks, iou, low = _predict(predictor, prompts, i, multimask, mask_input)
            assert np.abs(decoded.low_res_logits[i].clamp(-32, 32).numpy() - low).max() <= TOL, kind
            assert np.abs(decoded.iou_predictions[i].numpy() - iou).max() <= TOL, kind
            assert np.abs(full[i].numpy() - masks).max() <= TOL, kind
            assert np.array_equal(full[i].numpy() > 0, masks > 0), kind


def test_point_task_click1_equals_predictor(setup, checkpoint, grabcut_root, sample, tmp_path):
    from sam_bench import api

    segmenter, _, predictor = setup
    api.run("point", "sam2", "grabcut", out=tmp_path / "run", checkpoint=str(checkpoint),
            data_root=str(grabcut_root), limit=1, options={"max_clicks": 2})
    items = pd.read_csv(tmp_path / "run" / "point" / "grabcut" / "items.csv")
    valid = ~sample.ignore if sample.ignore is not None else np.ones((sample.height, sample.width), bool)
    for obj in sample.objects:
        row = items[(items.object_id.astype(str) == str(obj.object_id)) & (items.click == 1)].iloc[0]
        masks, iou, _ = predictor.predict(np.array([[row.x, row.y]]), np.array([1]), multimask_output=True)
        ious = []
        for mask in masks.astype(bool):
            pred, gt = mask & valid, obj.mask & valid
            ious.append((pred & gt).sum() / (pred | gt).sum())
        assert row.iou == pytest.approx(ious[int(np.argmax(iou))], abs=1e-9)
        assert row.iou_oracle == pytest.approx(max(ious), abs=1e-9)


def test_embedding_cache_hit_equals_miss(setup, sample, tmp_path):
    from sam_bench.core.cache import EmbeddingCache
    from sam_bench.models.cached import CachedSegmenter

    segmenter, embedding, _ = setup
    image = sample.load_image()
    cached = CachedSegmenter(segmenter, EmbeddingCache(tmp_path / "cache"))
    encode = segmenter.encode
    segmenter.encode = lambda _: embedding  # the encoder is tested above; this is about the cache
    try:
        miss = cached.encode(image)
        hit = cached.encode(image)
    finally:
        segmenter.encode = encode
    assert (cached.cache.misses, cached.cache.hits) == (1, 1)
    assert isinstance(hit, ImageEmbedding) and set(hit.features) == set(embedding.features)
    for name, tensor in miss.features.items():
        assert torch.equal(tensor, hit.features[name])
        assert torch.equal(tensor, embedding.features[name].half().float())
    prompts = Prompts(np.array([[[100.0, 120.0]]]), np.array([[1]]))
    assert torch.equal(cached.decode(miss, prompts, True).low_res_logits,
                       cached.decode(hit, prompts, True).low_res_logits)


@pytest.mark.parametrize("use_m2m", [False, True])
def test_amg_equals_sam2_generator(setup, sample, use_m2m):
    from pycocotools import mask as mask_utils
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    from sam_bench.amg import AmgSettings, AutomaticMaskGenerator

    segmenter, embedding, _ = setup
    image = sample.load_image()
    # This model's masks are image-wide blobs: NMS off compares every candidate; the thresholds
    # sit inside its predicted-IoU (0.46-0.55) and stability (0.69-0.93) ranges, so both filter.
    settings = dict(points_per_side=4, points_per_batch=16, pred_iou_thresh=0.5, stability_score_thresh=0.85,
                    box_nms_thresh=1.0, output_mode="coco_rle", use_m2m=use_m2m)
    official = SAM2AutomaticMaskGenerator(segmenter.model, **settings).generate(image)
    segmenter.batch_size = 16  # the official batches: same float rounding, so no pixel at logit ~0 flips
    ours = AutomaticMaskGenerator(segmenter, AmgSettings(**settings)).generate(image, embedding).records
    assert 0 < len(ours) == len(official) < 48
    for a, b in zip(ours, official):
        assert np.allclose(a["point_coords"], b["point_coords"])
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=TOL)
        assert a["stability_score"] == pytest.approx(b["stability_score"], abs=TOL)
        assert a["bbox"] == b["bbox"] and a["area"] == b["area"] and a["crop_box"] == b["crop_box"]
        assert np.array_equal(mask_utils.decode(a["segmentation"]), mask_utils.decode(b["segmentation"]))


def test_amg_refuses_sam2_small_region_removal(setup):
    from sam_bench.amg import AmgSettings, AutomaticMaskGenerator

    with pytest.raises(ConfigError, match="min_mask_region_area > 0 is not supported for SAM 2"):
        AutomaticMaskGenerator(setup[0], AmgSettings(min_mask_region_area=100))
