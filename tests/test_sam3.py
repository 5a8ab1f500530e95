"""`sam3` adapter: a small random SAM 3 made of sam3's own classes, saved in sam3.pt's layout, loaded
from the file, equals Sam3Processor.set_image + Sam3Image.predict_inst per prompt on a real image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_bench.core.types import Prompts
from sam_bench.errors import CheckpointError

pytest.importorskip("sam3", reason="sam3 not installed (pip install 'sam-bench[sam3]')")
from sam3 import model_builder  # noqa: E402
from sam3.model.sam3_image_processor import Sam3Processor  # noqa: E402

from sam_bench.models.sam3_build import Sam3Architecture, build_sam3, infer_architecture, to_official_layout  # noqa: E402
from sam_bench.models.sam3_model import build_sam3_model  # noqa: E402

TOL = 1e-4
# ViT 64 wide, 4 blocks (two windowed, two global), text encoder 64 x 2; the rest as released.
SMALL = Sam3Architecture(vit_dim=64, vit_depth=4, vit_heads=1, vit_mlp_ratio=4.0, vit_global_blocks=(1, 3),
                         text_width=64, text_layers=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(random small SAM 3, the path of its checkpoint in the official layout)."""
    torch.manual_seed(0)
    model = build_sam3(SMALL)
    with torch.no_grad():  # logits of a trained-like range (random ones stay within +-1)
        for mlp in model.inst_interactive_predictor.model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(40.0)
    path = tmp_path_factory.mktemp("sam3") / "sam3_small_random.pt"
    torch.save(to_official_layout(model), path)
    return model, path


@pytest.fixture(scope="module")
def setup(reference, grabcut_root):
    from PIL import Image

    from sam_bench.data.registry import open_dataset

    model, path = reference
    image = open_dataset("grabcut", str(grabcut_root)).get(0).load_image()
    segmenter = build_sam3_model(str(path))
    state = Sam3Processor(model, device="cpu").set_image(Image.fromarray(image))
    return segmenter, segmenter.encode(image), model, state


def test_checkpoint_layout_and_architecture(reference, capsys, tmp_path):
    model, path = reference
    assert infer_architecture(model.state_dict(), "x") == SMALL
    # Without RoPE buffers in the file, heads and global blocks follow the release's rules.
    vit, text = "backbone.vision_backbone.trunk.", "backbone.language_backbone.encoder.transformer."
    release = {f"{vit}patch_embed.proj.weight": torch.empty(1024, 1),
               **{f"{vit}blocks.{i}.mlp.fc1.weight": torch.empty(4736, 1) for i in range(32)},
               **{f"{text}resblocks.{i}.ln_1.weight": torch.empty(1024) for i in range(24)}}
    assert infer_architecture(release, "x") == Sam3Architecture()
    # sam3's own loader reads the file with no missing key (it prints them otherwise).
    model_builder._load_checkpoint(model, str(path))
    assert "missing" not in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="not a SAM 3 checkpoint"):
        torch.save({"image_encoder.x": torch.zeros(1)}, tmp_path / "other.pt")
        build_sam3_model(str(tmp_path / "other.pt"))


def test_encode_equals_set_image(setup):
    segmenter, embedding, model, state = setup
    predictor = model.inst_interactive_predictor
    _, feats, _, _ = predictor.model._prepare_backbone_features(state["backbone_out"]["sam2_backbone_out"])
    expected = (feats[-1] + predictor.model.no_mem_embed).permute(1, 2, 0).reshape(1, -1, 72, 72)
    assert torch.equal(embedding.features["image_embed"], expected)
    assert embedding.features["high_res_feats_0"].shape == (1, 32, 288, 288)


@pytest.mark.parametrize("multimask", [True, False])
def test_batched_decode_equals_predict_inst(setup, multimask):
    segmenter, embedding, model, state = setup
    h, w = embedding.original_size
    rng = np.random.default_rng(1)
    n = 2
    points = rng.uniform(0, [w, h], size=(n, 2, 2))
    labels = rng.integers(0, 2, size=(n, 2))
    boxes = np.sort(rng.uniform(0, [w, h], size=(n, 2, 2)), axis=1).reshape(n, 4)
    first = Prompts(points[:, :1], np.ones((n, 1), int))
    ours = segmenter.decode(embedding, first, False).low_res_logits
    theirs = [model.predict_inst(state, point_coords=first.points[i], point_labels=first.labels[i],
                                 multimask_output=False)[2] for i in range(n)]
    kinds = {"one point": first, "two points": Prompts(points, labels), "box": Prompts(boxes=boxes),
             "box + point": Prompts(points[:, :1], labels[:, :1], boxes=boxes),
             "points + mask": Prompts(points, labels, mask_logits=ours)}
    for kind, prompts in kinds.items():
        decoded = segmenter.decode(embedding, prompts, multimask)
        assert decoded.low_res_logits.shape == (n, 3 if multimask else 1, 288, 288)
        full = segmenter.upsample(embedding, decoded.low_res_logits)
        for i in range(n):
            masks, iou, low = model.predict_inst(
                state, point_coords=None if prompts.points is None else prompts.points[i],
                point_labels=None if prompts.labels is None else prompts.labels[i],
                box=None if prompts.boxes is None else prompts.boxes[i],
                mask_input=theirs[i] if prompts.mask_logits is not None else None,
                multimask_output=multimask, return_logits=True)
            assert np.abs(decoded.low_res_logits[i].clamp(-32, 32).numpy() - low).max() <= TOL, kind
            assert np.abs(decoded.iou_predictions[i].numpy() - iou).max() <= TOL, kind
            assert np.abs(full[i].numpy() - masks).max() <= TOL, kind  # holes filled as predict_inst does


def test_video_is_refused_in_one_line(setup, tmp_path):
    """sam3's tracker is CUDA-only: `sam3` is a VideoSegmenter (no silent per-frame baseline) whose
    open_video names what is missing and the alternative."""
    from sam_bench.data.video import VideoFrames
    from sam_bench.errors import ConfigError
    from sam_bench.models.video import VideoSegmenter
    from sam_bench.models.video_baseline import as_video_segmenter

    segmenter = setup[0]
    assert isinstance(segmenter, VideoSegmenter) and as_video_segmenter(segmenter) is segmenter
    frames = VideoFrames(["0"], [tmp_path / "0.jpg"], 8, 8, lambda i: np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"needs CUDA .* this run's device is cpu; for SAM 3 tracking use --model hf"):
        segmenter.open_video(frames)
