"""Automatic mask generation: equal to segment_anything's SamAutomaticMaskGenerator, and the
additions (single output, top-k ranking, low-res logits, non-SAM segmenters) on exact expectations.

Two official-layout models run through both generators:
- the seeded random `tiny` SAM on real images (the full model path: encoder, prompt encoder,
  decoder, postprocessing). Its masks are image-wide blobs whose boxes all cover the image, so box
  NMS keeps one of them; its comparisons disable NMS to compare every candidate's stability, box,
  area and RLE;
- a `Sam` whose decoder draws image-dependent discs around each point (cheap, point-local masks),
  which exercises NMS, crop-edge filtering, crops, small-region removal and the default thresholds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam

from sam_bench.amg import AmgSettings, AutomaticMaskGenerator
from sam_bench.core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from sam_bench.data.images import read_rgb
from sam_bench.errors import ConfigError
from sam_bench.models.base import PromptableSegmenter
from sam_bench.models.sam import SamSegmenter

# Tiny random weights give logits within about +-0.4 and predicted IoUs within about +-0.06:
# a small stability offset and IoU threshold keep a good number of masks and still filter some.
TINY = dict(points_per_side=3, stability_score_offset=0.02, stability_score_thresh=0.5, box_nms_thresh=1.0)


# -- models -------------------------------------------------------------------------------------
class _PoolEncoder(torch.nn.Module):
    """Image encoder stand-in: 16x16 average pooling of the normalised image, channel 0 = luminance."""

    img_size = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lum = F.avg_pool2d(x.mean(1, keepdim=True), 16)
        return torch.cat([lum, torch.zeros(1, 255, 64, 64)], 1)


class _RawPoints(torch.nn.Module):
    """Prompt encoder stand-in: hands the (1024-frame) point coordinates to the decoder."""

    def forward(self, points, boxes, masks):
        coords = points[0].float()
        sparse = torch.zeros(coords.shape[0], coords.shape[1], 256)
        sparse[..., :2] = coords
        return sparse, torch.zeros(coords.shape[0], 1, 1, 1)

    def get_dense_pe(self) -> torch.Tensor:
        return torch.zeros(1, 1, 1, 1)


class _Discs(torch.nn.Module):
    """Decoder stand-in: discs of 3 radii (1 when single output) around the point, with logits that
    also follow the image's luminance, so boundaries, holes and islands depend on the image."""

    def __init__(self, slope: float, texture: float) -> None:
        super().__init__()
        self.slope, self.texture = slope, texture

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                multimask_output):
        xy = sparse_prompt_embeddings[:, 0, :2]
        centers = (torch.arange(256) + 0.5) * 4 - 0.5  # low-res cell centres in the 1024 frame
        dist = ((centers[None, None, :] - xy[:, 0, None, None]) ** 2
                + (centers[None, :, None] - xy[:, 1, None, None]) ** 2).sqrt()
        lum = F.interpolate(image_embeddings[:, :1], size=(256, 256), mode="bilinear", align_corners=False)[0, 0]
        radii = torch.tensor([60.0, 120.0, 200.0] if multimask_output else [150.0])
        logits = (radii[None, :, None, None] - dist[:, None]) * self.slope + self.texture * lum
        at_point = lum[xy[:, 1].long().clamp(0, 1023) // 4, xy[:, 0].long().clamp(0, 1023) // 4]
        iou = 0.80 + radii[None] / 2000 + 0.05 * torch.tanh(at_point)[:, None]
        return logits, iou


def disc_sam(slope: float = 1.0, texture: float = 2.0) -> SamSegmenter:
    sam = Sam(_PoolEncoder(), _RawPoints(), _Discs(slope, texture), [123.675, 116.28, 103.53],
              [58.395, 57.12, 57.375]).eval()
    return SamSegmenter(sam, ModelInfo("discs", untrained=True), "discs", torch.device("cpu"))


class FullResDiscs(PromptableSegmenter):
    """A weight-free segmenter whose low-res logits are already full resolution: discs of radius
    r around each point, logits r - distance, in the pixels of the image it was given."""

    info = ModelInfo("fullres-discs", untrained=True)
    radii = (6.0, 15.0, 40.0)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        return ImageEmbedding(None, image.shape[:2], image.shape[:2])

    def decode(self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool) -> Decoded:
        h, w = embedding.original_size
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
        pts = torch.as_tensor(prompts.points[:, 0])
        dist = ((xx[None] - pts[:, 0, None, None]) ** 2 + (yy[None] - pts[:, 1, None, None]) ** 2).sqrt()
        radii = torch.tensor(self.radii if multimask else self.radii[1:2], dtype=torch.float64)
        logits = (radii[None, :, None, None] - dist[:, None]).float()
        return Decoded(logits, (radii / 100).float().expand(len(pts), -1).clone())

    def upsample(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        return low_res_logits


def disc_mask(size: tuple[int, int], point: list[float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size[0], :size[1]]
    return radius - np.hypot(xx - point[0], yy - point[1]) > 0


# -- helpers ------------------------------------------------------------------------------------
def as_mask(segmentation) -> np.ndarray:
    if isinstance(segmentation, np.ndarray):
        return segmentation.astype(bool)
    if isinstance(segmentation["counts"], list):
        segmentation = mask_utils.frPyObjects(segmentation, *segmentation["size"])
    return mask_utils.decode(segmentation).astype(bool)


def assert_same_masks(official: list[dict], ours: list[dict]) -> None:
    """Same count; each official mask matched (one to one) with IoU >= 0.99, scores within 1e-4,
    and the same prompt point and crop."""
    assert len(ours) == len(official)
    theirs = [as_mask(r["segmentation"]) for r in official]
    mine = [as_mask(r["segmentation"]) for r in ours]
    free = set(range(len(mine)))
    for ref, ref_mask in zip(official, theirs):
        ious = {j: (ref_mask & mine[j]).sum() / max((ref_mask | mine[j]).sum(), 1) for j in free}
        j = max(ious, key=ious.get)
        assert ious[j] >= 0.99, f"no match for the official mask at {ref['point_coords']}: best IoU {ious[j]}"
        free.remove(j)
        got = ours[j]
        assert abs(got["predicted_iou"] - ref["predicted_iou"]) <= 1e-4
        assert abs(got["stability_score"] - ref["stability_score"]) <= 1e-4
        assert got["point_coords"] == ref["point_coords"] and got["crop_box"] == ref["crop_box"]
        assert np.abs(np.subtract(got["bbox"], ref["bbox"])).max() <= 1
        assert abs(got["area"] - ref["area"]) <= 0.01 * max(ref["area"], 1)


def compare(segmenter: SamSegmenter, image: np.ndarray, **settings) -> tuple[list[dict], list[dict]]:
    official = SamAutomaticMaskGenerator(segmenter.model, **settings).generate(image)
    ours = AutomaticMaskGenerator(segmenter, AmgSettings(**settings)).generate(image).records
    assert_same_masks(official, ours)
    return official, ours


@pytest.fixture(scope="module")
def bsds_image(bsds_root) -> np.ndarray:
    return read_rgb(sorted((bsds_root / "images" / "val").glob("*.jpg"))[0])


@pytest.fixture(scope="module")
def grabcut_image(grabcut_root) -> np.ndarray:
    return read_rgb(grabcut_root / "data_GT" / "book.bmp")  # 640x480: another size and aspect


# -- equal to the official generator: tiny model, real images -----------------------------------
def test_tiny_bsds_matches_official(tiny_model, bsds_image):
    official, ours = compare(tiny_model, bsds_image, **TINY, pred_iou_thresh=0.005, output_mode="coco_rle")
    assert len(official) >= 4
    assert [r["segmentation"] for r in ours] == [r["segmentation"] for r in official]  # same RLE strings
    assert [r["bbox"] for r in ours] == [r["bbox"] for r in official]


def test_tiny_grabcut_matches_official(tiny_model, grabcut_image):
    official, ours = compare(tiny_model, grabcut_image, **{**TINY, "pred_iou_thresh": 0.0},
                             output_mode="uncompressed_rle")
    assert len(official) >= 8
    assert [r["segmentation"] for r in ours] == [r["segmentation"] for r in official]
    assert [r["bbox"] for r in ours] == [r["bbox"] for r in official]


def test_tiny_crops_and_small_regions_match_official(tiny_model, shared_data):
    image = read_rgb(next((shared_data / "cityscapes_sample").rglob("*_leftImg8bit.png")))  # 256x128
    official, _ = compare(tiny_model, image, **{**TINY, "points_per_side": 2}, pred_iou_thresh=0.0,
                          crop_n_layers=1, crop_n_points_downscale_factor=2, crop_nms_thresh=1.0,
                          min_mask_region_area=40)
    assert len(official) >= 4  # (its image-wide blobs touch every inner crop edge: crops add none)


# -- equal to the official generator: point-local discs -----------------------------------------
def test_defaults_match_official(bsds_image):
    official, ours = compare(disc_sam(), bsds_image, points_per_side=8)  # the official thresholds
    # The default thresholds (IoU > 0.88, stability >= 0.95) and NMS keep a minority of the 192.
    assert 5 <= len(official) < 8 * 8 * 3 / 2
    assert {r["predicted_iou"] > 0.88 and r["stability_score"] >= 0.95 for r in ours} == {True}


def test_nms_matches_official(grabcut_image):
    official, _ = compare(disc_sam(), grabcut_image, points_per_side=8, pred_iou_thresh=0.0,
                          stability_score_thresh=0.0, box_nms_thresh=0.5)
    assert 60 <= len(official) <= 8 * 8 * 3 - 20  # NMS removed a good share, not everything


def test_crops_and_small_regions_match_official(bsds_image):
    # Soft, texture-driven boundaries: about half the masks have holes or islands under 200 px.
    official, _ = compare(disc_sam(slope=0.2, texture=8.0), bsds_image, points_per_side=4,
                          pred_iou_thresh=0.0, stability_score_thresh=0.3, crop_n_layers=1,
                          min_mask_region_area=200)
    crops = {tuple(r["crop_box"]) for r in official}
    assert len(official) >= 50 and len(crops) == 5  # masks from the full image and from every crop


# -- additions: exact expectations --------------------------------------------------------------
@pytest.fixture(scope="module")
def disc_run(bsds_image):
    segmenter = disc_sam()
    settings = dict(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.8)
    embedding = segmenter.encode(bsds_image)
    result = AutomaticMaskGenerator(segmenter, AmgSettings(**settings, return_low_res_logits=True)).generate(
        bsds_image, embedding=embedding)
    return segmenter, settings, embedding, result


def test_low_res_logits_and_embedding_align_with_records(disc_run, bsds_image):
    segmenter, _, embedding, result = disc_run
    assert result.embedding is embedding
    assert result.low_res_logits.shape == (len(result.records), 1, 256, 256) and len(result.records) > 10
    upsampled = segmenter.upsample(embedding, result.low_res_logits)[:, 0] > 0
    for record, mask in zip(result.records, upsampled.numpy()):
        assert np.array_equal(as_mask(record["segmentation"]), mask)
    # The precomputed embedding gives exactly what encoding inside the generator gives.
    _, settings, _, _ = disc_run
    fresh = AutomaticMaskGenerator(segmenter, AmgSettings(**settings)).generate(bsds_image).records
    assert [r["point_coords"] for r in fresh] == [r["point_coords"] for r in result.records]


@pytest.mark.parametrize("rank_by", ["predicted_iou", "stability_score", "mean_iou_stability", "random"])
def test_max_masks_keeps_top_k_by_rank(disc_run, bsds_image, rank_by):
    segmenter, settings, embedding, result = disc_run
    everything = result.records
    k = 7
    top = AutomaticMaskGenerator(segmenter, AmgSettings(**settings, max_masks=k, rank_by=rank_by)).generate(
        bsds_image, embedding=embedding, rng=np.random.default_rng(3)).records
    if rank_by == "random":
        expected = [everything[i] for i in np.random.default_rng(3).permutation(len(everything))[:k]]
    else:
        score = {"predicted_iou": lambda r: r["predicted_iou"], "stability_score": lambda r: r["stability_score"],
                 "mean_iou_stability": lambda r: (r["predicted_iou"] + r["stability_score"]) / 2}[rank_by]
        expected = sorted(everything, key=lambda r: -score(r))[:k]  # sorted() is stable, like the generator
    key = lambda r: (r["point_coords"], r["predicted_iou"], r["bbox"])  # noqa: E731
    assert [key(r) for r in top] == [key(r) for r in expected]


def test_single_output_uses_the_single_mask_token(disc_run, bsds_image):
    segmenter, _, embedding, _ = disc_run
    settings = AmgSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                           box_nms_thresh=1.0, multimask=False)
    records = AutomaticMaskGenerator(segmenter, settings).generate(bsds_image, embedding=embedding).records
    assert len(records) == 16  # one mask per point, nothing filtered
    points = np.array([r["point_coords"][0] for r in records])
    decoded = segmenter.decode(embedding, Prompts(points[:, None], np.ones((16, 1))), multimask=False)
    masks = (segmenter.upsample(embedding, decoded.low_res_logits)[:, 0] > 0).numpy()
    for record, mask, iou in zip(records, masks, decoded.iou_predictions[:, 0].tolist()):
        assert np.array_equal(as_mask(record["segmentation"]), mask)
        assert record["predicted_iou"] == pytest.approx(iou, abs=1e-7)


def test_full_resolution_segmenter_and_crops_give_exact_discs():
    """A non-SAM segmenter (no 256x256 logits, upsample = identity) and crops: every record is the
    disc around its point in image coordinates, with the official bbox/area conventions."""
    size = (90, 130)
    image = np.zeros((*size, 3), np.uint8)
    settings = AmgSettings(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0,
                           crop_n_layers=1, crop_nms_thresh=1.0, crop_overlap_ratio=0.2,
                           output_mode="uncompressed_rle")
    records = AutomaticMaskGenerator(FullResDiscs(), settings).generate(image).records
    radius_of = {r / 100: r for r in FullResDiscs.radii}
    from_crops = 0
    for record in records:
        mask = disc_mask(size, record["point_coords"][0], radius_of[round(record["predicted_iou"], 6)])
        x0, y0, w, h = record["crop_box"]
        crop_only = np.zeros(size, bool)
        crop_only[y0:y0 + h, x0:x0 + w] = mask[y0:y0 + h, x0:x0 + w]
        assert np.array_equal(as_mask(record["segmentation"]), crop_only)
        ys, xs = np.nonzero(crop_only)
        assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        assert record["area"] == crop_only.sum()
        from_crops += (w, h) != (size[1], size[0])
    assert len(records) > 27 and from_crops > 0


def test_invalid_settings_are_rejected(tiny_model):
    for bad in (dict(output_mode="png"), dict(rank_by="area"), dict(points_per_side=None),
                dict(return_low_res_logits=True, crop_n_layers=1), dict(max_masks=0)):
        with pytest.raises(ConfigError):
            AutomaticMaskGenerator(tiny_model, AmgSettings(**bad))
