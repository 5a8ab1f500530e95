"""The per-frame baseline for image families: its masks equal a plain SamPredictor loop that applies
the baseline's rule by hand (box of the given mask on the prompt frame, one click with three masks
and the highest predicted IoU, then each frame prompted with the previous mask's box and low-res
logits), on real DAVIS frames; it is labelled a baseline; trackers pass through unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from sam_bench.core.types import ModelInfo
from sam_bench.errors import DataError
from sam_bench.models.base import SegmenterWrapper
from sam_bench.models.sam import SamSegmenter, make_tiny_sam
from sam_bench.models.video_baseline import NO_MASK, as_video_segmenter
from video_fixtures import box_of, clip, inside_point, label_map


@pytest.fixture(scope="module")
def segmenter():
    """The tiny random SAM with its mask heads scaled to a trained logit range (random logits sit
    near 0, where equal masks would say little), official decoder call as SamPredictor makes it."""
    sam = make_tiny_sam(0)
    with torch.no_grad():
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(50.0)
    return SamSegmenter(sam, ModelInfo("tiny", untrained=True), "scaled", torch.device("cpu"), decoder="official")


@pytest.fixture(scope="module")
def video(shared_data, tmp_path_factory):
    root = shared_data / "davis2017_sample"
    frames = clip(root / "JPEGImages/480p/judo", ["00000", "00001", "00002"], tmp_path_factory.mktemp("judo"))
    return frames, label_map(root / "Annotations/480p/judo/00000.png")


def _reference(segmenter, frames, person, click) -> list[dict[int, np.ndarray]]:
    """Full-size logits per frame for object 1 (mask prompt) and object 2 (one click)."""
    predictor = SamPredictor(segmenter.model)
    predictor.set_image(frames.frame(0))
    logits, _, low = predictor.predict(box=box_of(person), multimask_output=False, return_logits=True)
    state = {1: (logits[0], low[0])}
    logits, scores, low = predictor.predict(point_coords=click, point_labels=np.array([1]), multimask_output=True,
                                            return_logits=True)
    state[2] = (logits[scores.argmax()], low[scores.argmax()])
    out = [{obj: full for obj, (full, _) in state.items()}]
    for t in range(1, len(frames)):
        predictor.set_image(frames.frame(t))
        for obj, (full, low) in state.items():
            logits, _, low = predictor.predict(box=box_of(full > 0), mask_input=low[None], multimask_output=False,
                                               return_logits=True)
            state[obj] = (logits[0], low[0])
        out.append({obj: full for obj, (full, _) in state.items()})
    return out


def test_baseline_equals_the_rule_applied_with_sam_predictor(segmenter, video):
    frames, labels = video
    person = labels == 1
    click = inside_point(labels == 2)
    baseline = as_video_segmenter(segmenter)
    assert baseline.is_baseline and baseline.info.label == "tiny (untrained, per-frame baseline)"
    session = baseline.open_video(frames)
    session.add_mask(0, 1, person)
    session.add_points(0, 2, click, np.array([1]))
    ours = list(session.propagate_logits())
    theirs = _reference(segmenter, frames, person, click)
    assert [f for f, _ in ours] == [0, 1, 2]
    for (frame, logits), expected in zip(ours, theirs):
        for obj in (1, 2):
            np.testing.assert_allclose(logits[obj], expected[obj], atol=1e-4, err_msg=f"frame {frame} object {obj}")
            assert 0.001 < (logits[obj] > 0).mean() < 0.999, f"frame {frame} object {obj}: trivial mask"
    # Propagating backwards from frame 2 over one frame re-prompts frame 1 from frame 2's masks.
    assert [f for f, _ in session.propagate(start_frame=2, reverse=True, max_frames=1)] == [2, 1]


def test_later_objects_and_lost_objects_have_no_mask(segmenter, video):
    frames, labels = video
    session = as_video_segmenter(segmenter).open_video(frames)
    session.add_box(1, 7, box_of(labels == 1))
    tracked = dict(session.propagate_logits(start_frame=0))
    assert (tracked[0][7] == NO_MASK).all()  # before its prompt frame, going forward: nothing to prompt with
    assert (tracked[1][7] > 0).any() and (tracked[2][7] > 0).any()
    with pytest.raises(DataError, match="the mask prompt of object 3 is empty"):
        session.add_mask(0, 3, np.zeros((frames.height, frames.width), bool))


def test_trackers_pass_through_wrappers(segmenter):
    from sam_bench.models.video import VideoSegmenter

    class Tracker(SegmenterWrapper, VideoSegmenter):  # an image model that also tracks
        def open_video(self, frames):
            raise AssertionError("not called")

    tracker = Tracker(segmenter)
    assert as_video_segmenter(SegmenterWrapper(tracker)) is tracker
    wrapped = as_video_segmenter(SegmenterWrapper(segmenter))
    assert wrapped.is_baseline and wrapped.info.details["video"] == "per-frame baseline"
