"""The `point` task: exact answers with ground-truth models, hand-computed IoUs with void pixels,
metrics on known IoU tables, and IoUs identical to the naive SamPredictor loop."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam_bench.config import RunConfig
from sam_bench.core.types import Decoded, ImageEmbedding, ModelInfo
from sam_bench.data.types import ImageSample, ObjectAnnotation
from sam_bench.errors import ConfigError, DataError
from sam_bench.metrics.point import iou_matrix, point_metrics
from sam_bench.models.base import PromptableSegmenter
from sam_bench.engine.context import RunContext
from sam_bench.tasks.point.task import PointOptions, PointTask, interactive_session

ROOT = Path(__file__).resolve().parents[1]


class GroundTruthSegmenter(PromptableSegmenter):
    """Returns the ground-truth object under the first positive click; with multimask, the
    candidates are (object, empty, full image) with the given predicted IoUs."""

    def __init__(self, gts: list[np.ndarray], scores=(0.9, 0.5, 0.1), fixed: np.ndarray | None = None) -> None:
        self.gts, self.scores, self.fixed = gts, scores, fixed
        self.calls: list[tuple] = []
        self.info = ModelInfo("ground-truth", untrained=False)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        return ImageEmbedding(None, image.shape[:2], image.shape[:2])

    def decode(self, embedding, prompts, multimask):
        self.calls.append((len(prompts), multimask, prompts.points.shape[1],
                           None if prompts.mask_logits is None else prompts.mask_logits.clone()))
        masks = []
        for b in range(len(prompts)):
            x, y = prompts.points[b][prompts.labels[b] == 1][0]
            obj = self.fixed if self.fixed is not None else next(g for g in self.gts if g[int(y), int(x)])
            masks.append([obj, np.zeros_like(obj), np.ones_like(obj)] if multimask else [obj])
        logits = torch.where(torch.from_numpy(np.array(masks)), 10.0, -10.0)
        scores = torch.tensor([self.scores if multimask else (1.0,)] * len(prompts), dtype=torch.float32)
        return Decoded(logits, scores)

    def upsample(self, embedding, low_res_logits):
        return low_res_logits


def square(shape, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def make_sample(masks, ignore=None) -> ImageSample:
    h, w = masks[0].shape
    return ImageSample("img", lambda: np.zeros((h, w, 3), np.uint8), h, w,
                       [ObjectAnnotation(f"o{i}", m) for i, m in enumerate(masks)], ignore=ignore)


def make_ctx(model, tmp_path) -> RunContext:
    return RunContext(model=model, dataset=SimpleNamespace(name="test"), out_dir=tmp_path, device=torch.device("cpu"),
                      config=RunConfig(task="point", model="m", dataset="d"))


TWO = [square((40, 60), 5, 16, 5, 16), square((40, 60), 20, 35, 35, 50)]  # centres (10, 10), (42, 27)


def test_ground_truth_model_gives_iou_1_and_noc_1_in_one_batched_call(tmp_path):
    model = GroundTruthSegmenter(TWO)
    task = PointTask(PointOptions())
    result = task.evaluate_image(make_ctx(model, tmp_path), make_sample(TWO))
    metrics = task.compute_metrics(make_ctx(model, tmp_path), [result])
    for name in ("mIoU@1", "mIoU@2", "mIoU@3", "mIoU@5", "mIoU@9", "oracle_mIoU@1"):
        assert metrics[name] == 1.0
    assert metrics["NoC@85"] == metrics["NoC@90"] == 1.0 and metrics["NoF@90"] == 0
    assert metrics["objects"] == 2 and metrics["skipped_objects"] == 0
    # Both objects in one multimask call; then no error pixel is left, so no more clicks.
    assert [c[:3] for c in model.calls] == [(2, True, 1)]
    assert [(r["object_id"], r["click"], r["x"], r["y"], r["positive"], r["iou"], r["iou_oracle"])
            for r in result.rows] == [("o0", 1, 10, 10, 1, 1.0, 1.0), ("o1", 1, 42, 27, 1, 1.0, 1.0)]


@pytest.mark.parametrize("feedback", [True, False])
def test_most_confident_vs_oracle_choice_and_logit_feedback(tmp_path, feedback):
    # The most confident candidate is the empty mask: IoU 0 at click 1, oracle 1; click 2 goes to
    # the deepest false-negative pixel not yet clicked and the single output is the object.
    model = GroundTruthSegmenter(TWO, scores=(0.1, 0.9, 0.5))
    task = PointTask(PointOptions(feedback=feedback, max_clicks=4))
    result = task.evaluate_image(make_ctx(model, tmp_path), make_sample(TWO))
    metrics = task.compute_metrics(make_ctx(model, tmp_path), [result])
    assert metrics["mIoU@1"] == 0.0 and metrics["oracle_mIoU@1"] == 1.0
    assert metrics["mIoU@2"] == metrics["mIoU@3"] == 1.0 and "mIoU@5" not in metrics
    assert metrics["NoC@85"] == metrics["NoC@90"] == 2.0 and metrics["NoF@90"] == 0
    assert [c[:3] for c in model.calls] == [(2, True, 1), (2, False, 2)]
    fed = model.calls[1][3]
    if feedback:  # the chosen (empty) candidate's logits
        assert fed.shape == (2, 1, 40, 60) and bool((fed == -10.0).all())
    else:
        assert fed is None
    second = [(r["x"], r["y"], r["positive"], r["iou"]) for r in result.rows if r["click"] == 2]
    assert second == [(9, 9, 1, 1.0), (41, 26, 1, 1.0)]
    assert [r["iou_oracle"] for r in result.rows] == [1.0, None, 1.0, None]
    # boundary IoU: the empty mask at click 1, the object itself at click 2
    assert [r["biou"] for r in result.rows] == [0.0, 1.0, 0.0, 1.0]
    assert metrics["mBIoU@1"] == 0.0 and metrics["mBIoU@2"] == metrics["mBIoU@3"] == 1.0


def test_boundary_iou_after_each_click_equals_the_reference():
    from test_boundary import reference_boundary_iou

    fixed = square((40, 60), 6, 18, 4, 15)  # every answer is this square, off both objects
    model = GroundTruthSegmenter(TWO, fixed=fixed)
    traces = interactive_session(model, model.encode(np.zeros((40, 60, 3), np.uint8)), TWO, None, max_clicks=3)
    for gt, trace in zip(TWO, traces):
        assert len(trace.bious) == len(trace.ious) == 3
        assert trace.bious == pytest.approx([reference_boundary_iou(gt, fixed)] * 3, abs=1e-12)
    assert 0.0 < traces[0].bious[0] < 1.0 and traces[1].bious[0] == 0.0


def test_void_pixels_are_excluded_from_iou_and_never_clicked(tmp_path):
    gt = square((20, 20), 0, 10, 0, 10)  # 100 px
    pred = square((20, 20), 0, 10, 5, 15)  # 50 px on the object, 50 beside it
    ignore = square((20, 20), 0, 10, 12, 20) | square((20, 20), 0, 2, 0, 5)  # 30 of pred's, 10 of gt's
    model = GroundTruthSegmenter([gt], fixed=pred)
    task = PointTask(PointOptions(max_clicks=3))
    result = task.evaluate_image(make_ctx(model, tmp_path), make_sample([gt], ignore))
    # valid gt 90, valid prediction 70, intersection 50: IoU 50 / (90 + 70 - 50).
    assert [r["iou"] for r in result.rows] == [50 / 110] * 3
    assert all(not ignore[r["y"], r["x"]] for r in result.rows)
    # Click 2: FN (rows 2-9, cols 0-4, depth 3) is deeper than FP (cols 10-11, depth 1).
    assert (result.rows[1]["x"], result.rows[1]["y"], result.rows[1]["positive"]) == (2, 4, 1)


def test_fully_void_objects_are_skipped_and_bad_shapes_rejected(tmp_path):
    ignore = square((40, 60), 0, 18, 0, 18)  # covers the first object entirely
    model = GroundTruthSegmenter(TWO)
    task = PointTask(PointOptions(max_clicks=2))
    ctx = make_ctx(model, tmp_path)
    result = task.evaluate_image(ctx, make_sample(TWO, ignore))
    metrics = task.compute_metrics(ctx, [result])
    assert metrics["objects"] == 1 and metrics["skipped_objects"] == 1 and result.payload["skipped"] == ["o0"]
    bad = make_sample([TWO[0], square((30, 60), 0, 5, 0, 5)])
    with pytest.raises(DataError, match="mask of object o1 is \\(30, 60\\)"):
        task.evaluate_image(ctx, bad)
    with pytest.raises(ConfigError, match="first_click"):
        PointOptions(first_click="middle")


def test_metrics_on_a_known_iou_table():
    ious = iou_matrix([[0.5, 0.86, 0.95], [0.9, 0.9, 0.9], [0.1, 0.2]], max_clicks=3)
    assert ious[2].tolist() == [0.1, 0.2, 0.2]  # stopped early: the last IoU carries on
    m = point_metrics(ious, np.array([0.6, 1.0, 0.5]))
    assert m["mIoU@1"] == pytest.approx(0.5) and m["mIoU@2"] == pytest.approx((0.86 + 0.9 + 0.2) / 3)
    assert m["mIoU@3"] == pytest.approx((0.95 + 0.9 + 0.2) / 3) and "mIoU@5" not in m
    assert m["oracle_mIoU@1"] == pytest.approx(0.7)
    assert m["NoC@85"] == pytest.approx((2 + 1 + 3) / 3)
    assert m["NoC@90"] == pytest.approx((3 + 1 + 3) / 3)
    assert m["NoF@90"] == 1  # the first object reaches 90% at the last click: not a failure


def test_random_first_click_is_seeded_per_image(tmp_path):
    model = GroundTruthSegmenter(TWO)
    task = PointTask(PointOptions(first_click="random", max_clicks=1))
    runs = [task.evaluate_image(make_ctx(model, tmp_path), make_sample(TWO)).rows for _ in range(2)]
    assert [(r["x"], r["y"]) for r in runs[0]] == [(r["x"], r["y"]) for r in runs[1]]
    assert all(TWO[i][r["y"], r["x"]] for i, r in enumerate(runs[0]))


def _naive():
    spec = importlib.util.spec_from_file_location("bench_point", ROOT / "benchmarks" / "point.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compare_with_naive(model, sample, max_clicks):
    from segment_anything import SamPredictor

    image = sample.load_image()
    traces = interactive_session(model, model.encode(image), [o.mask for o in sample.objects], sample.ignore,
                                 max_clicks=max_clicks)
    predictor = SamPredictor(model.model)
    predictor.set_image(image)
    naive = _naive().naive_session(predictor, sample, max_clicks)
    return [t.ious + [t.iou_oracle] for t in traces], naive


def test_iou_identical_to_sampredictor_loop_on_real_image(tiny_model, grabcut_root):
    from sam_bench.data.registry import open_dataset

    sample = open_dataset("grabcut", str(grabcut_root), limit=1).get(0)
    ours, naive = _compare_with_naive(tiny_model, sample, max_clicks=3)
    assert ours == naive  # one object per image: same decoder batch, bit-identical masks


def test_batched_objects_match_the_per_object_loop(tiny_model):
    from sam_bench.data.synthetic import make_image

    synth = make_image(np.random.default_rng(3), 96, 128)
    objects = [ObjectAnnotation(str(k), synth.masks[k]) for k in (0, 3)]
    sample = ImageSample("s", lambda: synth.image, 96, 128, objects)
    ours, naive = _compare_with_naive(tiny_model, sample, max_clicks=3)
    assert [len(o) for o in ours] == [len(n) for n in naive] == [4, 4]
    np.testing.assert_allclose(np.array(ours), np.array(naive), atol=1e-4, rtol=0)
