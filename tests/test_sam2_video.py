"""`sam2` video sessions equal SAM2VideoPredictor driven by a plain loop as sam2's
tools/vos_inference.py drives it (init_state on the JPEG folder, add_new_mask /
add_new_points_or_box per object, propagate_in_video, logits > 0), on real DAVIS frames: mask,
box and click prompts, a corrective click after a propagation (SAM 2's interactive use), and an
object first given on a later frame, tracked forward and backward from there.

The model is a random SAM 2.1 hiera_t from sam2's own builder, saved like sam2.1_hiera_tiny.pt.
Random heads say "no object" on every tracked frame (all logits -1024) and give logits near 0, so
the test model's object-score head is biased to "present" and its mask heads scaled to a trained
range: otherwise equal outputs would prove nothing. Logits are compared exactly (the session adds
no arithmetic), and every compared mask is checked to be neither empty nor full.

Speed: both sides hold the same weights, so each frame's image-encoder output is computed once and
handed to both (`one_encoder_pass`): the encoder at 1024x1024 is most of the CPU time, and a frame
that the session fed differently would have a different input and be encoded anew.
"""
from __future__ import annotations

import hashlib
from unittest import mock

import numpy as np
import pytest
import torch

from sam_bench.errors import ConfigError
from video_fixtures import random_sam2_checkpoint, box_of, clip, inside_point, label_map

sam2_build = pytest.importorskip("sam2.build_sam", reason="sam2 not installed (pip install 'sam-bench[sam2]')")

from sam_bench.models.sam2_model import build_sam2_model  # noqa: E402
from sam_bench.models.video import VideoSegmenter  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_sam2_checkpoint(tmp_path_factory.mktemp("sam2v") / "sam2.1_hiera_tiny.pt", CONFIG)


@pytest.fixture(scope="module")
def model(checkpoint):
    return build_sam2_model(str(checkpoint))


@pytest.fixture(scope="module")
def reference(checkpoint):
    """The official video predictor, built from the file as vos_inference.py builds it (post-processing
    off; per-object outputs, i.e. its per-object-PNG mode)."""
    return sam2_build.build_sam2_video_predictor(CONFIG, ckpt_path=str(checkpoint), device="cpu",
                                                 apply_postprocessing=False,
                                                 hydra_overrides_extra=["++model.non_overlap_masks=false"])


@pytest.fixture(autouse=True)
def one_encoder_pass():
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    original, outputs = SAM2VideoPredictor.forward_image, {}

    def forward_image(self, image: torch.Tensor) -> dict:
        key = hashlib.sha256(image.detach().cpu().numpy().tobytes()).hexdigest()
        if key not in outputs:
            outputs[key] = original(self, image)
        # Fresh lists, as each call of the original returns (callers replace list items).
        return {k: list(v) if isinstance(v, list) else v for k, v in outputs[key].items()}

    with mock.patch.object(SAM2VideoPredictor, "forward_image", forward_image):
        yield


def _official(result) -> dict[int, np.ndarray]:
    _, object_ids, logits = result
    return {obj: (logits[i] > 0).cpu().numpy()[0] for i, obj in enumerate(object_ids)}


def _same_masks(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for obj in ours:
        assert np.array_equal(ours[obj], theirs[obj]), f"object {obj}"
        assert 0 < ours[obj].mean() < 1, f"object {obj}: a trivial mask proves nothing"


def _same_tracks(session, predictor, state, **kwargs) -> int:
    """Propagate both sides with the same arguments; every frame's logits equal. Returns frames seen."""
    ours = list(session.propagate_logits(**{k: v for k, v in kwargs.items()}))
    theirs = list(predictor.propagate_in_video(state, start_frame_idx=kwargs.get("start_frame"),
                                               max_frame_num_to_track=kwargs.get("max_frames"),
                                               reverse=kwargs.get("reverse", False)))
    assert [f for f, _ in ours] == [f for f, _, _ in theirs]
    for (frame, logits), (_, object_ids, official) in zip(ours, theirs):
        assert list(logits) == list(object_ids)
        for i, obj in enumerate(object_ids):
            assert np.array_equal(logits[obj], official[i, 0].numpy()), f"frame {frame} object {obj}"
            assert 0 < (logits[obj] > 0).mean() < 1, f"frame {frame} object {obj}: trivial mask"
    return len(ours)


def test_sam2_is_a_video_segmenter(model):
    assert isinstance(model, VideoSegmenter) and not model.is_baseline


def test_prompts_then_correction_equal_predictor(model, reference, shared_data, tmp_path):
    root = shared_data / "davis2017_sample"
    frames = clip(root / "JPEGImages/480p/judo", ["00000", "00001"], tmp_path / "judo")
    labels = label_map(root / "Annotations/480p/judo/00000.png")
    person, other = labels == 1, labels == 2
    clicks = np.concatenate([inside_point(person), [[20.0, 20.0]]])
    session = model.open_video(frames)
    state = reference.init_state(video_path=str(frames.folder), async_loading_frames=False)

    # Object 1: mask; object 2: box; object 3: a click and a background click, then a corrective one.
    _same_masks(session.add_mask(0, 1, person), _official(reference.add_new_mask(state, 0, 1, person)))
    _same_masks(session.add_box(0, 2, box_of(other)),
                _official(reference.add_new_points_or_box(state, 0, 2, box=box_of(other))))
    _same_masks(session.add_points(0, 3, clicks, np.array([1, 0])),
                _official(reference.add_new_points_or_box(state, 0, 3, points=clicks, labels=np.array([1, 0]))))
    extra = inside_point(other)
    _same_masks(session.add_points(0, 3, extra, np.array([0]), clear_old=False),
                _official(reference.add_new_points_or_box(state, 0, 3, points=extra, labels=np.array([0]),
                                                          clear_old_points=False)))
    assert _same_tracks(session, reference, state) == 2

    # SAM 2's interactive use: a click on a tracked frame corrects the track, then propagate again.
    fix = inside_point(person) + 5
    _same_masks(session.add_points(1, 3, fix, np.array([1])),
                _official(reference.add_new_points_or_box(state, 1, 3, points=fix, labels=np.array([1]),
                                                          clear_old_points=False)))
    assert _same_tracks(session, reference, state, start_frame=1, max_frames=0) == 1
    session.close()


def test_object_first_given_later_equals_predictor(model, reference, shared_data, tmp_path):
    """As vos_inference.py's per-object mode for LVOS / YouTube-VOS: the object's own state, its
    mask on the frame where it first appears (id 3 on frame 00008), tracked from there."""
    root = shared_data / "later_objects_sample"
    frames = clip(root / "JPEGImages/judo", ["00007", "00008", "00009"], tmp_path / "judo")
    mask = label_map(root / "Annotations/judo/00008.png") == 3
    session = model.open_video(frames)
    state = reference.init_state(video_path=str(frames.folder), async_loading_frames=False)
    _same_masks(session.add_mask(1, 3, mask), _official(reference.add_new_mask(state, 1, 3, mask)))
    assert _same_tracks(session, reference, state, start_frame=1) == 2
    assert _same_tracks(session, reference, state, start_frame=1, reverse=True) == 2


def test_video_options_and_errors(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="argument frames: expected one of lazy, folder, async"):
        build_sam2_model(str(checkpoint), frames="all")
    model = build_sam2_model(str(checkpoint), frames="folder", offload_state_to_cpu="true")
    from sam_bench.data.video import VideoFrames

    loose = VideoFrames(["a"], [tmp_path / "a.png"], 8, 8, lambda i: np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="frames=folder reads a folder of exactly the video's JPEG frames"):
        model.open_video(loose)
    # The video predictor shares the image model's weights (no second copy).
    predictor = model._video_predictor
    assert predictor.sam_mask_decoder.iou_token.weight.data_ptr() == model.model.sam_mask_decoder.iou_token.weight.data_ptr()
