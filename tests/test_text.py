"""The text-to-mask pipeline: candidate choice with a ground-truth-aware scorer, refinement, detector
candidates, metrics through the pipeline, and the command line end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from refcoco_builders import write_refcoco
from sam_bench.cli import main
from sam_bench.config import RunConfig
from sam_bench.core.types import Prompts
from sam_bench.data.registry import open_dataset
from sam_bench.data.types import CocoImage, Dataset, ImageSample, ObjectAnnotation
from sam_bench.errors import ConfigError
from sam_bench.metrics.text import intersection_union
from sam_bench.prompts.clicks import center_click
from sam_bench.engine.context import RunContext
from sam_bench.tasks.text.task import TextOptions, TextTask
from sam_bench.data.coco_results import load_detections
from sam_bench.detect.candidates import Candidates
from sam_bench.detect.clip import write_tiny_clip


class OracleScorer:
    """Knows the ground truth: scores each candidate by its IoU with the query's target."""

    def score(self, image, candidates, queries):
        return np.array([[0.0 if q.target is None else intersection_union(m, q.target)[0]
                          / max(1, intersection_union(m, q.target)[1]) for m in candidates.masks]
                         for q in queries]).reshape(len(queries), len(candidates))


class ConstantScorer:
    def score(self, image, candidates, queries):
        return np.zeros((len(queries), len(candidates)))


def boxes_of(masks: np.ndarray) -> np.ndarray:
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, float)


def gt_candidates(order_seed: int = 0, shift: int = 3, with_prompts: bool = False):
    """Candidate source: every object's exact mask, the same masks shifted, their union; shuffled."""
    def source(ctx, sample, image, embed):
        exact = [o.mask for o in sample.objects]
        shifted = [np.roll(m, shift, axis=1) for m in exact]
        masks = np.stack(exact + shifted + [np.logical_or.reduce(exact)])
        order = np.random.default_rng(order_seed).permutation(len(masks))
        masks = masks[order]
        prompts = None
        if with_prompts:
            clicks = [center_click(m) for m in masks]
            prompts = Prompts(points=np.array([[[c.x, c.y]] for c in clicks], float), labels=np.ones((len(masks), 1)))
        return Candidates(masks, boxes_of(masks), np.ones(len(masks)), prompts)
    return source


class InMemory(Dataset):
    """A dataset with no images and no COCO metadata (the Dataset defaults)."""

    def __init__(self, name: str) -> None:
        self.name, self.metadata = name, {}

    def __len__(self) -> int:
        return 0

    def image_ids(self) -> list[str]:
        return []

    def get(self, index: int) -> ImageSample:
        raise IndexError(index)


def context(model, dataset, out: Path, data_root: Path) -> RunContext:
    cfg = RunConfig(task="text", model="tiny", dataset=dataset.name, data_root=str(data_root), out=str(out))
    return RunContext(model=model, dataset=dataset, out_dir=out, device=torch.device("cpu"), config=cfg)


def run_pipeline(task, ctx):
    task.setup(ctx)
    results = [task.evaluate_image(ctx, sample) for sample in ctx.dataset]
    return results, task.compute_metrics(ctx, results)


def test_gt_aware_scorer_picks_the_exact_mask_of_each_category(tiny_model, synthetic_roots, tmp_path):
    root = synthetic_roots["demo"]
    dataset = open_dataset("demo", str(root))
    task = TextTask(TextOptions(), scorer=OracleScorer(), candidate_source=gt_candidates())
    results, metrics = run_pipeline(task, context(tiny_model, dataset, tmp_path, root))
    rows = pd.DataFrame([row for r in results for row in r.rows])
    assert len(rows) == 16 and sorted(set(rows["phrase"])) == ["circle", "ellipse", "rectangle", "triangle"]
    for r, sample in zip(results, dataset):
        order = np.random.default_rng(0).permutation(9)  # 4 exact, 4 shifted, 1 union
        for row in r.rows:
            obj = next(i for i, o in enumerate(sample.objects) if o.category_id == row["category_id"])
            assert row["choice"] == int(np.flatnonzero(order == obj)[0])  # the exact mask, wherever it is
            assert row["iou"] == 1.0 and row["oracle_iou"] == 1.0 and row["score"] == 1.0
    assert metrics["mIoU"] == 1.0 and metrics["cIoU"] == 1.0 and metrics["P@0.9"] == 1.0
    assert metrics["queries"] == 16 and metrics["candidates_per_image"] == 9
    # Every answer is right and ranked above every distractor of its category: mask AP 1.
    assert metrics["mask_AP"] == pytest.approx(1.0) and metrics["mask_AP75"] == pytest.approx(1.0)
    assert all(len(r.payload["detections"]) == 4 * 9 for r in results)  # top-20 of 9 candidates, 4 categories


def test_expressions_gious_and_cious_through_the_pipeline(tiny_model, tmp_path):
    root = write_refcoco(tmp_path / "refcoco_data")
    dataset = open_dataset("refcoco", str(root), split="val")
    shifts = {"11": 2, "12": 4, "22": 10}  # horizontal shift of each referred object's only candidate

    def shifted_objects(ctx, sample, image, embed):
        masks = np.stack([np.roll(o.mask, shifts[o.object_id], axis=1) for o in sample.objects])
        return Candidates(masks, boxes_of(masks), np.ones(len(masks)))

    task = TextTask(TextOptions(), scorer=OracleScorer(), candidate_source=shifted_objects)
    results, metrics = run_pipeline(task, context(tiny_model, dataset, tmp_path / "out", root))
    assert task.kind == "expression"
    rows = pd.DataFrame([row for r in results for row in r.rows])
    assert rows["sent_id"].tolist() == [1000, 1001, 1002, 1004]
    # 20x10 box shifted 2: 180/220; 20x15 shifted 4: 240/360; 20x20 shifted 10: 200/600.
    assert rows["intersection"].tolist() == [180, 180, 240, 200] and rows["union"].tolist() == [220, 220, 360, 600]
    assert metrics["gIoU"] == pytest.approx((9 / 11 + 9 / 11 + 2 / 3 + 1 / 3) / 4, abs=1e-12)
    assert metrics["cIoU"] == pytest.approx(800 / 1400, abs=1e-12)
    assert (metrics["P@0.5"], metrics["P@0.7"], metrics["P@0.9"]) == (0.75, 0.5, 0.0)
    assert "mask_AP" not in metrics and metrics["oracle_gIoU"] == metrics["gIoU"]


def test_refinement_adds_a_centre_point_to_the_candidates_prompt(tiny_model, synthetic_roots, tmp_path):
    root = synthetic_roots["demo"]
    dataset = open_dataset("demo", str(root), limit=1)
    task = TextTask(TextOptions(refine=True), scorer=OracleScorer(),
                    candidate_source=gt_candidates(with_prompts=True))
    results, metrics = run_pipeline(task, context(tiny_model, dataset, tmp_path, root))
    sample = dataset.get(0)
    rows = results[0].rows
    assert [r["iou_unrefined"] for r in rows] == [1.0] * 4 and metrics["mIoU_unrefined"] == 1.0
    # Expected: the candidate's own point plus its centre (the same pixel here), one output mask.
    targets = [next(o.mask for o in sample.objects if o.category_id == r["category_id"]) for r in rows]
    centres = [center_click(t) for t in targets]
    points = np.array([[[c.x, c.y], [c.x, c.y]] for c in centres], float)
    embedding = tiny_model.encode(sample.load_image())
    decoded = tiny_model.decode(embedding, Prompts(points=points, labels=np.ones((4, 2))), multimask=False)
    refined = (tiny_model.upsample(embedding, decoded.low_res_logits)[:, 0] > 0).numpy()
    for row, mask, target in zip(rows, refined, targets):
        inter, union = intersection_union(mask, target)
        assert (row["intersection"], row["union"], row["pred_area"]) == (inter, union, int(mask.sum()))
    assert metrics["mIoU"] == pytest.approx(np.mean([r["iou"] for r in rows]))


def test_detector_boxes_are_class_aware(tiny_model, synthetic_roots, tmp_path):
    root = synthetic_roots["demo"]
    dataset = open_dataset("demo", str(root), limit=1)
    _, cats, scores = load_detections(root / "detections.json", None).for_image(1)
    cats = cats[np.argsort(-scores, kind="stable")]  # candidates come best score first
    for rank_by in ("clip", "detector"):
        options = TextOptions(candidates="detector", detections="detections.json", rank_by=rank_by)
        task = TextTask(options, scorer=ConstantScorer() if rank_by == "clip" else None)
        results, metrics = run_pipeline(task, context(tiny_model, dataset, tmp_path, root))
        rows = results[0].rows
        # A constant score still picks the one box of the phrase's category: the others are not allowed.
        assert [cats[r["choice"]] for r in rows] == [r["category_id"] for r in rows] == [1, 2, 3, 4]
        assert all(r["candidates"] == 4 and r["iou"] == r["oracle_iou"] for r in rows)


def test_crowd_regions_kept_as_objects_are_ignored(tiny_model, tmp_path):
    """COCO with crowd: keep: a crowd region is never a target and its pixels count for nothing."""
    regular, crowd, other = np.zeros((3, 20, 30), bool)
    regular[2:10, 2:10], crowd[2:10, 10:20], other[12:18, 2:28] = True, True, True
    sample = ImageSample("7", lambda: np.zeros((20, 30, 3), np.uint8), 20, 30, objects=[
        ObjectAnnotation("1", regular, "person", 1), ObjectAnnotation("2", crowd, "person", 1, extra={"iscrowd": 1}),
        ObjectAnnotation("3", other, "bench", 15)], coco=CocoImage(7))

    def source(ctx, sample, image, embed):  # the person plus the crowd next to it, and the bench
        masks = np.stack([regular | crowd, other])
        return Candidates(masks, boxes_of(masks), np.ones(2))

    task = TextTask(TextOptions(ap_categories="none"), scorer=OracleScorer(), candidate_source=source)
    ctx = context(tiny_model, InMemory("unit"), tmp_path, tmp_path)
    task.setup(ctx)
    rows = task.evaluate_image(ctx, sample).rows
    assert [(r["phrase"], r["choice"], r["iou"]) for r in rows] == [("person", 0, 1.0), ("bench", 1, 1.0)]
    assert rows[0]["target_area"] == 64 and rows[0]["pred_area"] == 64  # the 80 crowd pixels are left out


def test_option_errors():
    with pytest.raises(ConfigError, match="candidates=detector needs --detections"):
        TextTask(TextOptions(candidates="detector"))
    with pytest.raises(ConfigError, match="crop_background of task 'text': 'blur'"):
        TextTask(TextOptions(crop_background="blur"))
    with pytest.raises(ConfigError, match="must contain exactly one"):
        TextTask(TextOptions(category_templates=["a photo"]))
    with pytest.raises(ConfigError, match="needs --clip-checkpoint"):
        TextTask(TextOptions()).describe()


def test_amg_candidates_with_a_gt_aware_scorer_reach_the_best_candidate(tiny_model, synthetic_roots, tmp_path):
    from sam_bench.amg import AmgSettings, AutomaticMaskGenerator

    root = synthetic_roots["demo"]
    dataset = open_dataset("demo", str(root), limit=1)
    # A random SAM: keep every mask (no filters, no NMS) so there is a choice to make.
    options = TextOptions(amg_points_per_side=2, amg_pred_iou_thresh=0.0, amg_stability_score_thresh=0.0,
                          amg_box_nms_thresh=1.0)
    task = TextTask(options, scorer=OracleScorer())
    results, _ = run_pipeline(task, context(tiny_model, dataset, tmp_path, root))
    sample = dataset.get(0)
    image = sample.load_image()
    records = AutomaticMaskGenerator(tiny_model, AmgSettings(
        points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0,
        output_mode="binary_mask")).generate(
        image, embedding=tiny_model.encode(image)).records
    assert len(records) > 1
    for row in results[0].rows:
        target = next(o.mask for o in sample.objects if o.category_id == row["category_id"])
        ious = [intersection_union(r["segmentation"], target) for r in records]
        best = max(range(len(ious)), key=lambda k: ious[k][0] / ious[k][1])
        assert row["candidates"] == len(records) and row["choice"] == best
        assert (row["intersection"], row["union"]) == ious[best] and row["iou"] == row["oracle_iou"]


def test_command_line_run_writes_metrics_items_and_report(synthetic_roots, tmp_path):
    root = synthetic_roots["demo"]
    clip_dir = str(write_tiny_clip(tmp_path / "tiny_clip"))
    out = tmp_path / "out"
    code = main(["run", "--task", "text", "--model", "tiny", "--dataset", "demo", "--data-root", str(root),
                 "--out", str(out), "--limit", "2", "--device", "cpu", "--clip-checkpoint", clip_dir,
                 "--amg-points-per-side", "2", "--amg-pred-iou-thresh", "0", "--amg-stability-score-thresh", "0",
                 "--refine", "true"])
    assert code == 0
    task_dir = out / "text" / "demo"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    items = pd.read_csv(task_dir / "items.csv")
    assert len(items) == 8 and metrics["queries"] == 8 and metrics["images"] == 2
    assert metrics["mIoU"] == pytest.approx(items["iou"].mean())
    assert metrics["cIoU"] == pytest.approx(items["intersection"].sum() / items["union"].sum())
    assert metrics["oracle_mIoU"] >= metrics["mIoU_unrefined"]
    record = json.loads((out / "run.json").read_text())["tasks"]["text/demo"]["task_options"]
    assert record["clip"]["untrained"] is True and "not the paper's" in record["protocol"]
    report = (out / "report.md").read_text()
    assert "Zero-shot text-to-mask (SAM + CLIP; sam-bench protocol)" in report
    assert "CLIP tiny-clip (untrained); candidates amg" in report
