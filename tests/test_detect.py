"""`sam-bench detect`: a random-weight torchvision detector (saved state dict, no download) writes a
COCO results file that `instances --detections` consumes; the box source travels to run.json and
the report; bad weights and a missing detectron2 are one-line errors."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

from sam_bench.cli import main
from sam_bench.data.coco_results import load_detections
from sam_bench.detect import source_note_path
from test_miou import hand_built_objects, write_coco

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"  # small and 320 px: fast on CPU


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random weights for the dataset's 2 categories + background (random scores ~1/3 > 0.05)."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path_factory.mktemp("det") / "random_detector.pth"
    torch.save(model.state_dict(), path)
    return path


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("sam-bench: error: ")
    return err


def test_detect_writes_results_that_instances_consumes(weights, tmp_path, capsys):
    data = write_coco(tmp_path / "coco", hand_built_objects())
    dets = tmp_path / "dets.json"
    assert main(["detect", f"torchvision:{MODEL}", "--weights", str(weights), "--dataset", "coco",
                 "--data-root", str(tmp_path / "coco"), "--out", str(dets), "--device", "cpu"]) == 0
    records = json.loads(dets.read_text())
    assert records and all(set(r) == {"image_id", "category_id", "bbox", "score"} for r in records)
    assert {r["image_id"] for r in records} == {1} and {r["category_id"] for r in records} <= {1, 2}
    assert all(r["score"] >= 0.05 and r["bbox"][2] >= 0 and r["bbox"][3] >= 0 for r in records)
    assert len(load_detections(dets, {1, 2})) == len(records)  # the reader instances uses accepts it
    note = json.loads(source_note_path(dets).read_text())
    assert note["box_source"] == f"torchvision:{MODEL}" and note["detections"] == len(records)
    assert len(note["weights_sha256"]) == 64 and note["dataset"] == "coco"

    out = tmp_path / "run"
    assert main(["run", "--task", "instances", "--model", "box", "--dataset", "coco", "--data-root",
                 str(tmp_path / "coco"), "--detections", str(dets), "--out", str(out)]) == 0
    metrics = json.loads((out / "instances" / "coco" / "metrics.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0
    record = json.loads((out / "run.json").read_text())["tasks"]["instances/coco"]
    assert record["task_options"]["box_source"] == f"torchvision:{MODEL}"
    assert record["task_options"]["box_source_note"]["weights_sha256"] == note["weights_sha256"]
    report = (out / "report.md").read_text()
    assert f"| box, torchvision:{MODEL} |" in report and "(paper)" not in report and "(published)" not in report
    assert f"no run here has their protocol (ViTDet-H boxes;" in report and f"boxes: run 'torchvision:{MODEL}'" in report
    assert len(data["annotations"]) == 7


def test_bad_weights_and_detectors_are_one_line_errors(weights, tmp_path, capsys):
    write_coco(tmp_path / "coco", hand_built_objects()[:2], empty=0)
    base = ["--dataset", "coco", "--data-root", str(tmp_path / "coco"), "--out", str(tmp_path / "d.json")]
    missing = tmp_path / "missing.pth"
    assert f"{missing}: detector weights file not found" in _one_line_error(
        capsys, ["detect", f"torchvision:{MODEL}", "--weights", str(missing)] + base)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert f"{garbage}: cannot read detector weights" in _one_line_error(
        capsys, ["detect", f"torchvision:{MODEL}", "--weights", str(garbage)] + base)
    assert f"{weights}: not torchvision fcos_resnet50_fpn weights" in _one_line_error(
        capsys, ["detect", "torchvision:fcos_resnet50_fpn", "--weights", str(weights)] + base)
    try:
        import detectron2  # noqa: F401
    except ImportError:
        err = _one_line_error(capsys, ["detect", "detectron2:cfg.yaml", "--weights", str(weights)] + base)
        assert "detectron2 is not installed" in err and "pip install" in err
    assert not (tmp_path / "d.json").exists()


def _save_tiny_detr(directory, names: list[str], favour: int) -> None:
    """A random DETR small enough for CPU, saved locally with its processor (nothing downloaded)."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    cfg = DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                     backbone_config=ResNetConfig(embedding_size=8, hidden_sizes=[8] * 4, depths=[1] * 4,
                                                  out_features=["stage4"]),
                     d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=5,
                     id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    model = DetrForObjectDetection(cfg)
    with torch.no_grad():
        model.class_labels_classifier.bias[favour] = 5.0  # every query predicts this class
    model.save_pretrained(directory)
    DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(directory)


def test_transformers_detector_maps_class_names_to_categories(tmp_path, capsys):
    pytest.importorskip("transformers")
    write_coco(tmp_path / "coco", hand_built_objects()[:2], empty=0)
    base = ["--dataset", "coco", "--data-root", str(tmp_path / "coco"), "--device", "cpu"]
    _save_tiny_detr(tmp_path / "detr", ["zebra", "B", "a"], favour=1)  # "B" is the dataset's "b" (id 2)
    out = tmp_path / "dets.json"
    assert main(["detect", f"transformers:{tmp_path / 'detr'}", "--out", str(out), "--label", "tiny DETR"] + base) == 0
    records = json.loads(out.read_text())
    assert records and {r["category_id"] for r in records} == {2}
    assert json.loads(source_note_path(out).read_text())["box_source"] == "tiny DETR"
    _save_tiny_detr(tmp_path / "foreign", ["zebra", "giraffe"], favour=0)
    assert main(["detect", f"transformers:{tmp_path / 'foreign'}", "--out", str(out)] + base) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # above it: transformers' loading bars
    assert err.startswith("sam-bench: error: ") and "none of the detector's class names matches a category" in err
