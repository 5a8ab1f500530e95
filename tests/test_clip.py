"""CLIP helpers: local-only loading, crop geometry, template averaging, batched crop scoring."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from sam_bench.detect.clip import (CONFIG_NAME, TINY_CLIP_CONFIG, ClipScorer, crop_window, load_clip, mask_crops,
                            square_boxes, write_tiny_clip)
from sam_bench.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny_clip")


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_clip("ViT-L-14-336", tiny_clip_dir)


def test_square_windows_and_zero_padding():
    boxes = np.array([[2, 2, 6, 4], [0, 0, 3, 9]])
    # Box 1: 4x2, centre (4, 3): side 4 -> (2, 1, 6, 5); x2 -> side 8 -> (0, -1, 8, 7).
    assert square_boxes(boxes, 1.0).tolist() == [[2, 1, 6, 5], [-3, 0, 6, 9]]
    assert square_boxes(boxes, 2.0).tolist() == [[0, -1, 8, 7], [-7, -4, 11, 14]]  # halves round up
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = crop_window(image, (-1, 8, 2, 11))  # one column left of and one row below the image
    assert crop.tolist() == [[0, 80, 81], [0, 90, 91], [0, 0, 0]]


def test_mask_crops_zero_the_background_and_pad_outside():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (12, 16, 3), dtype=np.uint8)
    mask = np.zeros((12, 16), bool)
    mask[2:8, 3:7] = True  # box (3, 2, 7, 8): 4 x 6 -> square side 6, window (2, 2, 8, 8)
    box = np.array([[3, 2, 7, 8]])
    kept = mask_crops(image, mask[None], box, size=6, expand=1.0)  # same size: resize is the identity
    assert torch.equal(kept[0], torch.from_numpy(image[2:8, 2:8] / 255.0).float().permute(2, 0, 1))
    zeroed = mask_crops(image, mask[None], box, size=6, expand=1.0, zero_background=True)[0]
    inside = torch.from_numpy(mask[2:8, 2:8])
    assert torch.equal(zeroed[:, inside], kept[0][:, inside]) and zeroed[:, ~inside].abs().sum() == 0
    # Expanded x2 the window (-1, -1, 11, 11) leaves the image: the first row and column are zero.
    wide = mask_crops(image, mask[None], box, size=12, expand=2.0)[0]
    assert wide[:, 0].abs().sum() == 0 and wide[:, :, 0].abs().sum() == 0
    assert torch.equal(wide[:, 1:, 1:], torch.from_numpy(image[:11, :11] / 255.0).float().permute(2, 0, 1))


def test_tiny_clip_is_loaded_from_local_files_and_marked_untrained(clip, tiny_clip_dir):
    assert clip.image_size == TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    assert clip.info["untrained"] is True and clip.info["architecture"] == "tiny-clip"
    assert clip.info["weights_file"].endswith("open_clip_pytorch_model.bin")
    reference = open_clip.model.CLIP(**TINY_CLIP_CONFIG)
    reference.load_state_dict(torch.load(clip.info["weights_file"], weights_only=True))
    tokens = open_clip.tokenize(["a dog"])
    assert torch.allclose(clip.model.encode_text(tokens), reference.encode_text(tokens), atol=1e-6)
    # Same seed, same bytes: a rewritten tiny CLIP has the same identity.
    again = write_tiny_clip(tiny_clip_dir.parent / "again")
    assert load_clip("ViT-L-14-336", again).info["weights_sha256"] == clip.info["weights_sha256"]


def manual_scores(clip, image, masks, boxes, phrases, templates, expand, zero):
    model = clip.model
    with torch.no_grad():
        text = []
        for p in phrases:
            e = F.normalize(model.encode_text(clip.tokenizer([t.format(p) for t in templates])), dim=-1)
            text.append(F.normalize(e.mean(0), dim=-1))
        crops = mask_crops(image, masks, boxes, clip.image_size, expand, zero)
        x = (crops - torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
            open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        img = F.normalize(model.encode_image(x), dim=-1)
    return (torch.stack(text) @ img.T).numpy()


def test_scores_are_template_averaged_cosines_and_batch_invariant(clip, monkeypatch):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    masks = np.zeros((5, 48, 64), bool)
    boxes = []
    for k in range(5):
        x0, y0 = 4 + 9 * k, 3 + 6 * k
        masks[k, y0:y0 + 10 + k, x0:x0 + 8] = True
        boxes.append([x0, y0, x0 + 8, y0 + 10 + k])
    cands = SimpleNamespace(masks=masks, boxes=np.array(boxes, float))
    templates = ("a photo of a {}.", "a drawing of the {}.")
    queries = [SimpleNamespace(phrase=p, templates=templates) for p in ("red dog", "traffic light", "cup")]
    one_batch = ClipScorer(clip, crop_expand=1.5, zero_background=True, batch_size=64).score(image, cands, queries)
    scorer = ClipScorer(clip, crop_expand=1.5, zero_background=True, batch_size=2)
    calls = []
    encode = clip.encode_texts
    monkeypatch.setattr(clip, "encode_texts", lambda texts, **kw: calls.append(list(texts)) or encode(texts, **kw))
    scores = scorer.score(image, cands, queries)
    expected = manual_scores(clip, image, masks, cands.boxes, [q.phrase for q in queries], templates, 1.5, True)
    assert scores.shape == (3, 5)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    np.testing.assert_allclose(one_batch, scores, atol=1e-5)
    # Each phrase is encoded once per run, whatever the number of images it is asked on.
    scorer.score(image, cands, queries[:2])
    assert calls == [[t.format(p) for p in ("red dog", "traffic light", "cup") for t in templates]]


def test_loading_errors_name_the_file(tiny_clip_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs --clip-checkpoint"):
        load_clip("ViT-L-14-336", None)
    with pytest.raises(CheckpointError, match=r"nowhere\.pt: CLIP checkpoint not found"):
        load_clip("ViT-L-14-336", tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointError, match=rf"empty: CLIP checkpoint directory has no {CONFIG_NAME}"):
        (tmp_path / "empty").mkdir()
        load_clip("ViT-L-14-336", tmp_path / "empty")
    weights = tiny_clip_dir / "open_clip_pytorch_model.bin"
    with pytest.raises(ConfigError, match="--clip-model ViT-Q-99: not an open_clip architecture"):
        load_clip("ViT-Q-99", weights)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_NAME).write_text((tiny_clip_dir / CONFIG_NAME).read_text())
    (broken / "open_clip_pytorch_model.bin").write_bytes(weights.read_bytes()[:1000])  # truncated download
    with pytest.raises(CheckpointError, match=r"broken/open_clip_pytorch_model\.bin: not loadable as open_clip"):
        load_clip("ViT-L-14-336", broken)
    state = torch.load(weights, weights_only=True)
    del state["text_projection"]
    torch.save(state, broken / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"broken/open_clip_pytorch_model\.bin: .*text_projection"):
        load_clip("ViT-L-14-336", broken)


def test_weights_file_with_a_registered_architecture(tiny_clip_dir, tmp_path):
    # Any architecture open_clip knows works with a plain weights file; here one registered from a json.
    config = tmp_path / "sam-bench-test-clip.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config)
    loaded = load_clip("sam-bench-test-clip", tiny_clip_dir / "open_clip_pytorch_model.bin")
    assert loaded.info["architecture"] == "sam-bench-test-clip" and loaded.info["untrained"] is False
    assert loaded.image_size == 32
