"""vos_interactive with SAM 2: every round's masks, the frames chosen and the clicks equal
SAM2VideoPredictor driven step by step by a plain loop here (the same rule picks the frame and the
clicks from the predictor's own masks; add the clicks one at a time on that frame; propagate).
The model is sam-bench's `sam2` as the task sets it up (`keep_corrections`: a corrected frame is a
conditioning frame, the predictor's `add_all_frames_to_correct_as_cond`), the reference the
official predictor built with that flag.

A random SAM 2.1 hiera_t from sam2's own builder, saved like sam2.1_hiera_tiny.pt, on the first
frames of the real DAVIS sample. Its heads are scaled as in tests/test_sam2_video.py so masks are
neither empty nor full. The predictor runs at a 256 px input (a hydra override of the packaged
config, the same on both sides) to keep the test cheap on a CPU: it tests the session and the
protocol's calls, which do not depend on the input size.
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from sam_bench.data.video import VideoSample
from sam_bench.metrics.vos import region_similarity
from sam_bench.prompts.clicks import next_click
from sam_bench.tasks.vos_interactive.protocol import ObjectTruth, offline, online, unpack
from sam_bench.tasks.vos_interactive.task import VosInteractiveOptions as Settings
from video_fixtures import random_sam2_checkpoint, clip, label_map

sam2_build = pytest.importorskip("sam2.build_sam", reason="sam2 not installed (pip install 'sam-bench[sam2]')")

from sam_bench.models.sam2_model import build_sam2_model  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
FRAMES = ["00000", "00001", "00002", "00003"]
OBJECT = 1


def _small(builder):
    """sam2's video-predictor builder at a 256 px input (see the module docstring)."""
    def build(*args, hydra_overrides_extra=(), **kwargs):
        return builder(*args, hydra_overrides_extra=[*hydra_overrides_extra, "++model.image_size=256"], **kwargs)
    return build


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_sam2_checkpoint(tmp_path_factory.mktemp("sam2vi") / "sam2.1_hiera_tiny.pt", CONFIG)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    """The official predictor as SAM 2 is trained and its demo runs: a corrected frame becomes a
    conditioning frame (sam2's default would drop the correction at the next propagation)."""
    with mock.patch("sam2.build_sam.build_sam2_video_predictor", _small(sam2_build.build_sam2_video_predictor)):
        return sam2_build.build_sam2_video_predictor(
            CONFIG, ckpt_path=str(checkpoint), device="cpu", apply_postprocessing=False,
            hydra_overrides_extra=["++model.non_overlap_masks=false", "++model.add_all_frames_to_correct_as_cond=true"])


@pytest.fixture(scope="module")
def model(checkpoint):
    """sam-bench's `sam2` model as the task sets it up (keep_corrections), its predictor built at 256 px."""
    model = build_sam2_model(str(checkpoint))
    model.keep_corrections()
    return model


@pytest.fixture(scope="module")
def video(shared_data, tmp_path_factory) -> VideoSample:
    root = shared_data / "davis2017_sample"
    frames = clip(root / "JPEGImages/480p/judo", FRAMES, tmp_path_factory.mktemp("judo"))
    labels = [label_map(root / f"Annotations/480p/judo/{name}.png") for name in FRAMES]
    return VideoSample("judo", frames, {OBJECT: 0}, list(range(len(FRAMES))), lambda t: labels[t].astype(np.int32))


def _mask(logits: torch.Tensor, object_ids: list[int]) -> np.ndarray:
    return (logits[object_ids.index(OBJECT), 0] > 0).numpy()


def _clicks(predictor, state, gt: np.ndarray, frame: int, mask, n: int) -> list:
    clicks = []
    for _ in range(n):
        click = next_click(gt, mask, clicked=[(c.x, c.y) for c in clicks])
        if click is None:
            break
        clicks.append(click)
        _, ids, logits = predictor.add_new_points_or_box(state, frame, OBJECT, points=[[click.x, click.y]],
                                                         labels=[int(click.positive)], clear_old_points=False)
        mask = _mask(logits, list(ids))
    return clicks


def plain_offline(predictor, folder, gts: list[np.ndarray], frames: int, per_frame: int):
    state = predictor.init_state(str(folder))
    done = [(0, _clicks(predictor, state, gts[0], 0, None, per_frame))]
    rounds = []
    while True:
        rounds.append({t: _mask(m, list(ids)) for t, ids, m in predictor.propagate_in_video(state, start_frame_idx=0)})
        if len(done) == frames:
            return done, rounds
        j = {t: region_similarity(gts[t], rounds[-1][t]) for t in range(len(gts)) if t not in dict(done)}
        frame = min(sorted(j), key=j.get)
        done.append((frame, _clicks(predictor, state, gts[frame], frame, rounds[-1][frame], per_frame)))


def plain_online(predictor, folder, gts: list[np.ndarray], frames: int, per_frame: int, threshold: float):
    state = predictor.init_state(str(folder))
    done = [(0, _clicks(predictor, state, gts[0], 0, None, per_frame))]
    rounds, masks, start = [], {}, 0
    while True:
        pause = None
        for t, ids, logits in predictor.propagate_in_video(state, start_frame_idx=start):
            masks[t] = _mask(logits, list(ids))
            if pause is None and t != start and len(done) < frames and region_similarity(gts[t], masks[t]) < threshold:
                pause = t
        rounds.append(dict(masks))
        if pause is None:
            return done, rounds
        done.append((pause, _clicks(predictor, state, gts[pause], pause, masks[pause], per_frame)))
        masks = {t: m for t, m in masks.items() if t < pause}
        start = pause


@pytest.mark.parametrize("setting", ["offline", "online"])
def test_rounds_equal_the_predictor_step_by_step(model, predictor, video, setting):
    truth = ObjectTruth.of(video, OBJECT)
    gts = [truth.mask(t) for t in range(len(FRAMES))]
    settings = Settings(setting=setting, frames=3)
    loop = offline if setting == "offline" else online
    with mock.patch("sam2.build_sam.build_sam2_video_predictor", _small(sam2_build.build_sam2_video_predictor)):
        session = model.open_video(video.frames)  # builds its predictor on first use
    with session:
        ours = loop(session, truth, settings, truth.frames)
    if setting == "offline":
        done, rounds = plain_offline(predictor, video.frames.folder, gts, 3, 3)
    else:
        done, rounds = plain_online(predictor, video.frames.folder, gts, 3, 3, 0.75)
    assert [(i.frame, i.clicks) for i in ours.interactions] == done
    assert len(done) == 3 and all(len(c) == 3 for _, c in done)  # every round interacts for real
    assert len(ours.rounds) == len(rounds)
    for k, reference in enumerate(rounds):
        for t in range(len(FRAMES)):
            mine = unpack(ours.rounds[k][t], truth.shape)
            assert np.array_equal(mine, reference[t]), f"round {k + 1} frame {t}"
            assert 0 < mine.mean() < 1, f"round {k + 1} frame {t}: a trivial mask proves nothing"
    # the clicks change the masks: later rounds differ from the first
    assert any(not np.array_equal(rounds[0][t], rounds[-1][t]) for t in range(1, len(FRAMES)))
