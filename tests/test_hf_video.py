"""`hf` video trackers (transformers' Sam2VideoModel, Sam3TrackerVideoModel) loaded from a local
save_pretrained directory equal their own inference session driven as documented
(init_video_session on the whole video, add_inputs_to_inference_session + model(frame_idx=...),
propagate_in_video_iterator, post_process_masks) on real DAVIS frames: mask, box and click prompts,
a corrective click after a propagation, propagation from a later frame and backwards. Logits are
compared exactly; every compared mask is neither empty nor full."""
from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install 'sam-bench[hf]')")

from family_models import tiny_hf_video  # noqa: E402
from sam_bench.models.hf import build_hf_model  # noqa: E402
from sam_bench.models.video import VideoSegmenter  # noqa: E402
from video_fixtures import box_of, clip, inside_point, label_map  # noqa: E402


@pytest.fixture(scope="module")
def video(shared_data, tmp_path_factory):
    root = shared_data / "davis2017_sample"
    frames = clip(root / "JPEGImages/480p/judo", ["00000", "00001", "00002"], tmp_path_factory.mktemp("judo"))
    return frames, label_map(root / "Annotations/480p/judo/00000.png")


class Reference:
    """transformers' documented video loop."""

    def __init__(self, directory, class_name: str, frames) -> None:
        self.model = getattr(transformers, class_name).from_pretrained(directory).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(directory)
        self.session = self.processor.init_video_session(
            video=[frames.frame(i) for i in range(len(frames))], inference_device="cpu")

    def logits(self, output) -> dict[int, np.ndarray]:
        full = self.processor.post_process_masks([output.pred_masks], original_sizes=[
            [self.session.video_height, self.session.video_width]], binarize=False)[0]
        return {obj: full[i, 0].numpy() for i, obj in enumerate(output.object_ids)}

    def add(self, frame: int, obj: int, **inputs) -> dict[int, np.ndarray]:
        self.processor.add_inputs_to_inference_session(self.session, frame_idx=frame, obj_ids=obj, **inputs)
        with torch.inference_mode():
            return {k: v > 0 for k, v in self.logits(self.model(inference_session=self.session, frame_idx=frame)).items()}

    def propagate(self, **kwargs) -> list[tuple[int, dict]]:
        return [(out.frame_idx, self.logits(out))
                for out in self.model.propagate_in_video_iterator(self.session, **kwargs)]


def _same(ours: dict, theirs: dict, where: str) -> None:
    assert list(ours) == list(theirs), where
    for obj in ours:
        assert np.array_equal(ours[obj], theirs[obj]), f"{where} object {obj}"
        assert 0 < (ours[obj] > 0).mean() < 1, f"{where} object {obj}: a trivial mask proves nothing"


@pytest.mark.parametrize("class_name", ["Sam2VideoModel", "Sam3TrackerVideoModel"])
def test_session_equals_transformers_session(class_name, video, tmp_path):
    model, processor = tiny_hf_video(class_name)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    frames, labels = video
    person, other = labels == 1, labels == 2
    ours = build_hf_model(str(tmp_path))
    assert isinstance(ours, VideoSegmenter) and ours.info.details["model_class"] == class_name
    session = ours.open_video(frames)
    ref = Reference(tmp_path, class_name, frames)

    clicks = np.concatenate([inside_point(person), [[20.0, 20.0]]])
    _same(session.add_mask(0, 1, person), ref.add(0, 1, input_masks=person), "mask")
    _same(session.add_box(0, 2, box_of(other)), ref.add(0, 2, input_boxes=[[box_of(other).tolist()]]), "box")
    _same(session.add_points(0, 3, clicks, np.array([1, 0])),
          ref.add(0, 3, input_points=[[clicks.tolist()]], input_labels=[[[1, 0]]], clear_old_inputs=False), "clicks")
    extra = inside_point(other)
    _same(session.add_points(0, 3, extra, np.array([0])),
          ref.add(0, 3, input_points=[[extra.tolist()]], input_labels=[[[0]]], clear_old_inputs=False), "more clicks")
    _check_tracks(session, ref, {})
    fix = inside_point(person) + 5
    _same(session.add_points(1, 3, fix, np.array([1])),
          ref.add(1, 3, input_points=[[fix.tolist()]], input_labels=[[[1]]], clear_old_inputs=False), "correction")
    _check_tracks(session, ref, {"start_frame_idx": 1})
    _check_tracks(session, ref, {"start_frame_idx": 2, "reverse": True, "max_frame_num_to_track": 1})


def _check_tracks(session, ref: Reference, kwargs: dict) -> None:
    ours = list(session.propagate_logits(start_frame=kwargs.get("start_frame_idx"), reverse=kwargs.get("reverse", False),
                                         max_frames=kwargs.get("max_frame_num_to_track")))
    theirs = ref.propagate(**kwargs)
    assert [f for f, _ in ours] == [f for f, _ in theirs]
    for (frame, logits), (_, expected) in zip(ours, theirs):
        _same(logits, expected, f"frame {frame}")
