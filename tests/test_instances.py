"""Task `instances` and the `box` model on COCO- and LVIS-format datasets built from real masks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from coco_builders import OracleSegmenter, build_real_dataset, global_cocoeval, global_lvis_eval
from sam_bench.cli import main as cli_main
from sam_bench.config import RunConfig
from sam_bench.core.types import Decoded, ImageEmbedding, ModelInfo, Prompts
from sam_bench.data.readers.coco import CocoDataset
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError, DataError
from sam_bench.models.base import PromptableSegmenter
from sam_bench.models.box import BoxSegmenter
from sam_bench.reporting.entry import ReportEntry
from sam_bench.runner import run
from sam_bench.engine.context import RunContext
from sam_bench.tasks.instances import InstancesOptions, InstancesTask

COCO_LAYOUT = {"annotations": "annotations/instances_val2017.json", "images": "val2017"}
LVIS_LAYOUT = {"annotations": "annotations/lvis_v1_val.json", "images": "."}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory, grabcut_root, bsds_root):
    root = tmp_path_factory.mktemp("coco")
    return root, build_real_dataset(root, grabcut_root, bsds_root, lvis=False, **COCO_LAYOUT)


@pytest.fixture(scope="module")
def lvis_root(tmp_path_factory, grabcut_root, bsds_root):
    root = tmp_path_factory.mktemp("lvis")
    return root, build_real_dataset(root, grabcut_root, bsds_root, lvis=True, **LVIS_LAYOUT)


def write_detections(path: Path, data: dict, seed: int, jitter: float = 1.0, false_positives: int = 2) -> list:
    """Ground-truth boxes (crowds excluded) jittered, random scores, plus false positives."""
    rng = np.random.default_rng(seed)
    dets = []
    for ann in data["annotations"]:
        if ann.get("iscrowd"):
            continue
        x, y, w, h = ann["bbox"]
        j = rng.uniform(-jitter, jitter, 4)
        dets.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                     "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                     "score": float(np.round(rng.uniform(0.2, 1), 2))})
    for im in data["images"]:
        for _ in range(false_positives):
            dets.append({"image_id": im["id"], "category_id": int(rng.integers(1, 4)), "score": 0.3,
                         "bbox": [float(rng.uniform(0, im["width"] - 60)), float(rng.uniform(0, im["height"] - 60)),
                                  30.0, 40.0]})
    path.write_text(json.dumps(dets))
    return dets


def run_task(dataset: str, root: Path, out: Path, model: str, monkeypatch=None, oracle=None, **options):
    if oracle is not None:
        monkeypatch.setattr("sam_bench.runner.build_model", lambda cfg, device, cache=None: oracle)
    cfg = RunConfig(task="instances", model=model, dataset=dataset, data_root=str(root), out=str(out),
                    device="cpu", ci=0, options=options)  # intervals: tests/test_bootstrap.py
    metrics = run(cfg)
    task_dir = out / "instances" / dataset
    assert json.loads((task_dir / "metrics.json").read_text()) == metrics
    return metrics, json.loads((task_dir / "predictions.json").read_text())


def test_oracle_gives_ap_1_with_detector_and_gt_boxes(coco_root, lvis_root, tmp_path, monkeypatch):
    root, built = coco_root
    write_detections(tmp_path / "dets.json", built["data"], seed=0, false_positives=0)
    oracle = OracleSegmenter.for_dataset(open_dataset("coco", str(root)))
    metrics, preds = run_task("coco", root, tmp_path / "o1", "oracle", monkeypatch, oracle,
                              detections=str(tmp_path / "dets.json"))
    assert metrics == {k: 1.0 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    assert len(preds) == sum(not a["iscrowd"] for a in built["data"]["annotations"])

    root, built = lvis_root
    oracle = OracleSegmenter.for_dataset(open_dataset("lvis_v1", str(root)))
    metrics, preds = run_task("lvis_v1", root, tmp_path / "o2", "oracle", monkeypatch, oracle, boxes="gt")
    assert metrics == {k: 1.0 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")}
    assert all(p["score"] == 1.0 for p in preds) and len(preds) == len(built["data"]["annotations"])


@pytest.mark.parametrize("lvis", [False, True], ids=["coco", "lvis"])
def test_box_baseline_ap_equals_reference_library_on_its_masks(lvis, coco_root, lvis_root, tmp_path, monkeypatch):
    (root, built), dataset = (lvis_root, "lvis_v1") if lvis else (coco_root, "coco")
    dets = write_detections(tmp_path / "dets.json", built["data"], seed=3, jitter=6.0)
    metrics, preds = run_task(dataset, root, tmp_path / "out", "box", detections=str(tmp_path / "dets.json"))
    # predictions come image by image in the file's order; each mask is the filled box, as
    # pycocotools rasterises a box polygon, independently of the model's code
    size = {im["id"]: (im["height"], im["width"]) for im in built["data"]["images"]}
    assert len(preds) == len(dets)
    for p, d in zip(preds, sorted(dets, key=lambda r: r["image_id"])):
        assert (p["image_id"], p["category_id"], p["score"]) == (d["image_id"], d["category_id"], d["score"])
        x, y, w, h = d["bbox"]
        box = mask_utils.frPyObjects([[x, y, x, y + h, x + w, y + h, x + w, y]], *size[d["image_id"]])[0]
        np.testing.assert_array_equal(mask_utils.decode(p["segmentation"]), mask_utils.decode(box))
    # and the reference library, run once on the saved predictions, gives the same AP
    if lvis:
        ref = global_lvis_eval(built["data"], preds, max_dets=300, monkeypatch=monkeypatch)
        expected_metrics = {k: float(ref[k]) for k in metrics}
    else:
        stats = global_cocoeval(built["data"], preds).stats
        expected_metrics = dict(zip(["AP", "AP50", "AP75", "APs", "APm", "APl"], map(float, stats[:6])))
    assert 0.0 < metrics["AP"] < 0.6
    assert metrics == expected_metrics


class SpySegmenter(PromptableSegmenter):
    """3 masks per prompt with distinct logits and IoU predictions; records every decode call."""

    mask_threshold = 0.0
    cache_fingerprint = None

    def __init__(self) -> None:
        self.info = ModelInfo("spy", untrained=True)
        self.calls: list[tuple[Prompts, bool]] = []

    def encode(self, image):
        return ImageEmbedding(None, tuple(image.shape[:2]), tuple(image.shape[:2]))

    def decode(self, embedding, prompts, multimask):
        self.calls.append((prompts, multimask))
        b, m = len(prompts), 3 if multimask else 1
        gen = torch.Generator().manual_seed(len(self.calls))
        logits = torch.randn(b, m, *embedding.original_size, generator=gen)
        return Decoded(logits, torch.rand(b, m, generator=gen))

    def upsample(self, embedding, low_res_logits):
        return low_res_logits


@pytest.mark.parametrize("refine", [True, False])
def test_most_confident_mask_then_one_refinement_pass(refine, tmp_path):
    model = SpySegmenter()
    ctx = RunContext(model=model, dataset=None, out_dir=tmp_path, device=torch.device("cpu"), config=RunConfig())
    task = InstancesTask(InstancesOptions(boxes="gt", refine=refine))
    boxes = np.array([[1, 2, 5, 6], [0, 0, 10, 8], [3, 3, 2, 2]], float)
    rles, ious = task.segment(ctx, model, np.zeros((12, 16, 3), np.uint8), boxes)
    first_prompts, first_multi = model.calls[0]
    assert first_multi and first_prompts.mask_logits is None  # all boxes in one call
    np.testing.assert_array_equal(first_prompts.boxes, [[1, 2, 6, 8], [0, 0, 10, 8], [3, 3, 5, 5]])
    first = SpySegmenter().decode(ImageEmbedding(None, (12, 16), (12, 16)), first_prompts, True)  # replay call 1
    best = first.iou_predictions.argmax(1)
    chosen = first.low_res_logits[torch.arange(3), best]
    if refine:
        assert len(model.calls) == 2
        second_prompts, second_multi = model.calls[1]
        assert not second_multi
        np.testing.assert_array_equal(second_prompts.boxes, first_prompts.boxes)
        torch.testing.assert_close(second_prompts.mask_logits[:, 0], chosen, rtol=0, atol=0)
        model2 = SpySegmenter()
        model2.calls = [None]  # replay call 2's generator seed
        final = model2.decode(ImageEmbedding(None, (12, 16), (12, 16)), second_prompts, False)
        final_masks, final_iou = final.low_res_logits[:, 0] > 0, final.iou_predictions[:, 0]
    else:
        assert len(model.calls) == 1
        final_masks, final_iou = chosen > 0, first.iou_predictions[torch.arange(3), best]
    decoded = np.stack([mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}) for r in rles])
    np.testing.assert_array_equal(decoded.astype(bool), final_masks.numpy())
    np.testing.assert_allclose(ious, final_iou.numpy().astype(np.float64))


def test_interrupted_run_resumes_and_merges_predictions(coco_root, tmp_path, monkeypatch):
    root, built = coco_root
    write_detections(tmp_path / "dets.json", built["data"], seed=5)
    opts = {"detections": str(tmp_path / "dets.json")}
    fresh_metrics, fresh_preds = run_task("coco", root, tmp_path / "fresh", "box", **opts)

    original, calls = InstancesTask.evaluate_image, []

    def flaky(self, ctx, sample):
        calls.append(sample.image_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, ctx, sample)

    monkeypatch.setattr(InstancesTask, "evaluate_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_task("coco", root, tmp_path / "resumed", "box", **opts)
    assert sorted(p.name for p in (tmp_path / "resumed/instances/.coco.staging/predictions").glob("*.json")) == ["1.json", "2.json"]
    monkeypatch.setattr(InstancesTask, "evaluate_image", original)
    metrics, preds = run_task("coco", root, tmp_path / "resumed", "box", **opts)
    record = json.loads((tmp_path / "resumed/run.json").read_text())["tasks"]["instances/coco"]
    assert record["action"] == "resume" and record["images_resumed"] == 2
    assert metrics == fresh_metrics and preds == fresh_preds


def test_cli_instances_tiny_on_coco_layout(coco_root, tmp_path, capsys):
    root, built = coco_root
    write_detections(tmp_path / "dets.json", built["data"], seed=7, false_positives=1)
    out = tmp_path / "O"
    rc = cli_main(["run", "--task", "instances", "--model", "tiny", "--dataset", "coco", "--data-root", str(root),
                   "--detections", str(tmp_path / "dets.json"), "--out", str(out), "--limit", "1", "--device", "cpu",
                   "--box-source", "ViTDet-H (jittered gt)", "--ci", "off"])
    assert rc == 0, capsys.readouterr().err
    task_dir = out / "instances" / "coco"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    preds = json.loads((task_dir / "predictions.json").read_text())
    assert len(preds) == 2 and {p["image_id"] for p in preds} == {1}  # the GrabCut object + 1 false positive
    assert all(set(p) == {"image_id", "category_id", "segmentation", "score"} for p in preds)
    ref = global_cocoeval(built["data"], preds, imgIds=[1])
    assert metrics == {k: float(v) for k, v in zip(["AP", "AP50", "AP75", "APs", "APm", "APl"], ref.stats[:6])
                       if v > -1}
    report = (out / "report.md").read_text()
    assert "Table 5" in report and f"| {VITDET_ROW} | 51.0 | 32.0 | 54.3 | 68.9 | 46.6 | 35.0 | 58.0 | 66.3 |" in report
    assert "| tiny (untrained), ViTDet-H (jittered gt) |" in report  # labelled ViTDet: paper rows beside
    # EfficientViT-SAM / EdgeSAM skip the refinement pass this run makes: their rows are not beside it
    assert "EfficientViT-SAM-XL1 (efficientvit_sam_xl1.pt) (published)" not in report
    assert "refine: run True, source False" in report


VITDET_ROW = "ViTDet-H (detectron2 cascade_mask_rcnn_vitdet_h_75ep (COCO) / _100ep (LVIS)) (paper)"
SAM_ROW = "SAM (ViT-H, sam_vit_h_4b8939.pth) (paper)"


def box_entry(tmp_path, run: str, box_source: str, refine: bool = True, boxes: str = "detections",
              note: dict | None = None, dataset: str = "coco") -> ReportEntry:
    """A finished instances result as the report reads it: AP values and the recorded options."""
    options = {"boxes": boxes, "refine": refine, "score": "detector", "box_source": box_source}
    if note is not None:
        options["box_source_note"] = note
    metrics = {"AP": 0.4, "APs": 0.2, "APm": 0.45, "APl": 0.6}
    return ReportEntry(run, tmp_path / run, dataset, metrics, {"task_options": options},
                       tmp_path / run / "instances" / dataset)


def report_tables(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block.startswith("|")]


def test_published_rows_name_their_checkpoint_and_sit_beside_runs_of_their_protocol(tmp_path):
    text = InstancesTask.report_section([box_entry(tmp_path, "refined", "ViTDet-H"),
                                         box_entry(tmp_path, "plain", "ViTDet-H", refine=False)])
    refined, plain, _ = report_tables(text)
    # SAM paper Table 5: one refinement pass, as the "refined" run
    assert f"| {SAM_ROW} | 46.5 | 30.8 | 51.0 | 61.7 | 44.7 | 32.5 | 57.6 | 65.5 |" in refined
    assert f"| {VITDET_ROW} | 51.0 |" in refined and "| refined, ViTDet-H | 40.0 |" in refined
    assert "(published)" not in refined and "| plain," not in refined
    # EfficientViT-SAM / EdgeSAM READMEs: no refinement pass, as the "plain" run
    assert "| EfficientViT-SAM-XL1 (efficientvit_sam_xl1.pt) (published) | 47.8 | - | - | - | 44.4 |" in plain
    assert "| EdgeSAM-3x (edge_sam_3x.pth) (published) | 42.7 |" in plain
    assert "| EdgeSAM (checkpoint not stated) (published) | 42.2 |" in plain  # edge_sam.pth: 42.1
    assert "| MobileSAM (EdgeSAM README) (checkpoint not stated) (published) | 39.4 |" in plain
    assert "| EdgeSAM-10x (not released) (published) | 43.0 |" in plain
    assert "(paper)" not in plain and "| plain, ViTDet-H | 40.0 |" in plain
    assert "Boxes: ViTDet-H; one refinement pass; score: detector." in text
    assert "Boxes: ViTDet-H; no refinement pass; score: detector." in text


@pytest.mark.parametrize("run", [
    dict(box_source="ViTDet-H", boxes="gt"),  # ground-truth boxes, whatever their label
    dict(box_source="ViTDet-H", note={"box_source": "ViTDet-H", "detector": "torchvision:maskrcnn_resnet50_fpn_v2"}),
    dict(box_source="unlabelled detections (coco_vitdet.json)"),  # nobody said what the boxes are
    dict(box_source="ViTDet-L"),
])
def test_no_published_row_beside_boxes_not_recorded_as_vitdet_h(run, tmp_path):
    text = InstancesTask.report_section([box_entry(tmp_path, "R", **run), box_entry(tmp_path, "S", **run, refine=False)])
    assert "(paper)" not in text and "(published)" not in text and "| R, " in text
    assert "The SAM paper's Table 5 rows are left out: no run here has their protocol (ViTDet-H boxes;" in text
    assert "README rows of EfficientViT-SAM, EdgeSAM and MobileSAM are left out" in text
    assert "boxes: run " in text and "source 'ViTDet-H'" in text


def test_a_detectron2_vitdet_h_detector_counts_as_vitdet_h_boxes(tmp_path):
    note = {"box_source": "detectron2:cascade_mask_rcnn_vitdet_h_75ep",
            "detector": "detectron2:configs/COCO/cascade_mask_rcnn_vitdet_h_75ep.py"}
    text = InstancesTask.report_section([box_entry(tmp_path, "R", note["box_source"], note=note)])
    assert f"| {SAM_ROW} | 46.5 |" in text and "(published)" not in text


def test_box_model_rejects_points_and_fills_boxes():
    model = BoxSegmenter()
    emb = model.encode(np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(ConfigError, match="box prompts only"):
        model.decode(emb, Prompts(points=np.array([[[3.0, 4.0]]]), labels=np.array([[1]])), multimask=True)
    out = model.decode(emb, Prompts(boxes=np.array([[1, 2, 5, 6], [0, 0, 12, 10]])), multimask=True)
    masks = model.upsample(emb, out.low_res_logits)[:, 0] > model.mask_threshold
    expected = np.zeros((2, 10, 12), bool)
    expected[0, 2:6, 1:5] = True
    expected[1] = True
    np.testing.assert_array_equal(masks.numpy(), expected)


@pytest.mark.parametrize("options, message", [
    ({}, "needs exactly one box source"),
    ({"boxes": "gt", "detections": "x.json"}, "drop --detections"),
    ({"boxes": "mine"}, "boxes must be one of"),
    ({"detections": "missing.json"}, "detections file not found"),
    ({"detector": "yolo:cfg:w"}, "unknown detector"),
    ({"boxes": "gt", "score": "area"}, "score must be one of"),
])
def test_bad_options_are_clear_errors(options, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ConfigError, DataError), match=message):
        InstancesTask(InstancesOptions(**options))


def test_detectron2_detector_is_optional(coco_root, tmp_path):
    try:
        import detectron2  # noqa: F401
        pytest.skip("detectron2 is installed: the not-installed error cannot be shown")
    except ImportError:
        pass
    root, _ = coco_root
    cfg = RunConfig(task="instances", model="box", dataset="coco", data_root=str(root), out=str(tmp_path),
                    device="cpu", options={"detector": "detectron2:cfg.py:model.pkl"})
    with pytest.raises(ConfigError, match="detectron2 is not installed"):
        run(cfg)


def test_crowd_regions_merged_into_ignore_are_refused(coco_root, tmp_path):
    root, _ = coco_root
    dataset = CocoDataset(root, COCO_LAYOUT["annotations"], COCO_LAYOUT["images"], crowd="ignore")
    dataset.name = "coco_ignore"
    ctx = RunContext(model=BoxSegmenter(), dataset=dataset, out_dir=tmp_path, device=torch.device("cpu"),
                     config=RunConfig())
    task = InstancesTask(InstancesOptions(boxes="gt"))
    task.setup(ctx)
    task.evaluate_image(ctx, dataset.get(0))  # GrabCut image: no crowd
    with pytest.raises(ConfigError, match="crowd: keep"):
        task.evaluate_image(ctx, dataset.get(2))  # BSDS image with a crowd region
