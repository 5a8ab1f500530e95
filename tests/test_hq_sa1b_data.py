"""SA-1B reader and HQ-SAM's four sets on files written in their native layouts, `data check` for
each, the real DIS5K sample, and the HQ table of the `miou` report."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from coco_builders import rle_json
from sam_bench.cli import main
from sam_bench.data.check import check_dataset
from sam_bench.data.readers.sa1b import SA1BDataset
from sam_bench.data.registry import open_dataset
from sam_bench.errors import DataError

HQ_LAYOUTS = {  # dataset -> (image folder, mask folder) under --data-root, default split
    "dis5k": ("DIS-VD/im", "DIS-VD/gt"),
    "coift": ("images", "masks"),
    "hrsod": ("images", "masks_max255"),
    "thinobject5k": ("images_test", "masks_test"),
}


def write_sa1b(root: Path, n: int = 3) -> dict[str, list[np.ndarray]]:
    """n images sa_<id>.jpg + sa_<id>.json with RLE masks (two per image, one thin)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    masks_by_id = {}
    for i in range(1, n + 1):
        h, w = 24 + i, 32
        cv2.imwrite(str(root / f"sa_{i}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        blob = np.zeros((h, w), bool)
        blob[2:10 + i, 3:20] = True
        thin = np.zeros((h, w), bool)
        thin[h - 3, :] = True  # one pixel high, touching both side borders
        anns = []
        for k, m in enumerate((blob, thin)):
            ys, xs = np.nonzero(m)
            anns.append({"id": 100 * i + k, "segmentation": rle_json(m), "area": int(m.sum()),
                         "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)],
                         "predicted_iou": 0.9, "point_coords": [[5.0, 5.0]], "crop_box": [0, 0, w, h],
                         "stability_score": 0.95})
        (root / f"sa_{i}.json").write_text(json.dumps(
            {"image": {"image_id": i, "width": w, "height": h, "file_name": f"sa_{i}.jpg"}, "annotations": anns}))
        masks_by_id[f"sa_{i}"] = [blob, thin]
    return masks_by_id


def test_sa1b_reader_and_data_check(tmp_path, capsys):
    truth = write_sa1b(tmp_path / "sa1b")
    dataset = open_dataset("sa1b", str(tmp_path / "sa1b"))
    assert dataset.image_ids() == ["sa_1", "sa_2", "sa_3"]
    for i in range(len(dataset)):
        sample = dataset.get(i)
        assert sample.load_image().shape[:2] == (sample.height, sample.width)
        got = [o.mask for o in sample.objects]
        assert all(np.array_equal(a, b) for a, b in zip(got, truth[sample.image_id]))
        blob = sample.objects[0]
        assert blob.area == truth[sample.image_id][0].sum() and blob.box == (3.0, 2.0, 20.0, 10.0 + i + 1)
        assert blob.category is None and blob.extra["predicted_iou"] == 0.9
    assert check_dataset("sa1b", str(tmp_path / "sa1b")) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert check_dataset("sa1b", str(tmp_path / "sa1b"), split="1k") == 1  # 1000 > 3 images
    assert "subset 1000 is not in 1..3" in capsys.readouterr().out


def test_sa1b_seeded_subset(tmp_path):
    write_sa1b(tmp_path / "sa1b", n=6)
    first = SA1BDataset(tmp_path / "sa1b", subset=3, subset_seed=0)
    again = SA1BDataset(tmp_path / "sa1b", subset=3, subset_seed=0)
    assert first.image_ids() == again.image_ids() and len(first) == 3
    assert first.image_ids() == sorted(first.image_ids())  # file order kept
    expected = np.sort(np.random.default_rng(0).choice(6, 3, replace=False))
    assert first.image_ids() == [sorted(f"sa_{i}" for i in range(1, 7))[k] for k in expected]
    assert first.metadata == {"images_total": 6, "subset": 3, "subset_seed": 0}
    (tmp_path / "sa1b" / "sa_4.json").unlink()
    with pytest.raises(DataError, match="sa_4.json"):
        SA1BDataset(tmp_path / "sa1b")


def write_hq(root: Path, images: str, masks: str, n: int = 2) -> list[np.ndarray]:
    """n jpg images with 0/255 png masks; values 1..128 around the object are background (HQ-SAM: > 128)."""
    rng = np.random.default_rng(1)
    (root / images).mkdir(parents=True)
    (root / masks).mkdir(parents=True)
    truth = []
    for i in range(n):
        name = f"1#Thing#{i}#obj"  # DIS5K-style names
        cv2.imwrite(str(root / images / f"{name}.jpg"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        values = np.zeros((30, 40), np.uint8)
        values[5:25, 8 + i:30] = 255
        values[5:25, 6 + i] = 128  # anti-aliased edge: not object
        cv2.imwrite(str(root / masks / f"{name}.png"), values)
        truth.append(values > 128)
    return truth


@pytest.mark.parametrize("name", sorted(HQ_LAYOUTS))
def test_hq_sets_in_native_layout(name, tmp_path, capsys):
    images, masks = HQ_LAYOUTS[name]
    truth = write_hq(tmp_path / name, images, masks)
    dataset = open_dataset(name, str(tmp_path / name))
    assert len(dataset) == 2
    for i, gt in enumerate(truth):
        sample = dataset.get(i)
        assert len(sample.objects) == 1 and np.array_equal(sample.objects[0].mask, gt) and sample.ignore is None
    assert check_dataset(name, str(tmp_path / name)) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_real_dis5k_sample(shared_data, tmp_path, capsys):
    """The real DIS5K files (full resolution, '#' names) read as the DIS-VD split."""
    sample_dir = shared_data / "dis5k_sample" / "DIS5K-test"
    (tmp_path / "DIS-VD").mkdir()
    for sub in ("im", "gt"):
        (tmp_path / "DIS-VD" / sub).symlink_to(sample_dir / sub)
    dataset = open_dataset("dis5k", str(tmp_path))
    assert len(dataset) == len(list((sample_dir / "im").iterdir()))
    sample = dataset.get(0)
    assert "#" in sample.image_id and sample.objects[0].mask.any()
    assert sample.load_image().shape[:2] == sample.objects[0].mask.shape
    assert check_dataset("dis5k", str(tmp_path)) == 0


def test_miou_report_hq_table(tmp_path):
    write_hq(tmp_path / "coift", "images", "masks")
    out = tmp_path / "out"
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "coift", "--data-root",
                 str(tmp_path / "coift"), "--out", str(out), "--mask-choice", "single"]) == 0
    metrics = json.loads((out / "miou" / "coift" / "metrics.json").read_text())
    assert metrics["mIoU"] == 1.0 and metrics["mBIoU"] == 1.0  # the masks are filled boxes
    report = (out / "report.md").read_text()
    assert "### High-quality sets: mIoU / mBIoU (%) (HQ-SAM's layout)" in report
    assert "| box | 100.0 | 100.0 | - | - |" in report
    assert "| HQ-SAM ViT-L (checkpoint not stated) (published) | - | - | 89.1 | 81.8 |" in report


def test_miou_on_sa1b_subset(tmp_path):
    """Class-agnostic SA-1B masks through the task: filled boxes of rectangles and one-pixel lines."""
    write_sa1b(tmp_path / "sa1b")
    out = tmp_path / "out"
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "sa1b", "--data-root",
                 str(tmp_path / "sa1b"), "--out", str(out), "--limit", "2"]) == 0
    metrics = json.loads((out / "miou" / "sa1b" / "metrics.json").read_text())
    assert metrics["instances"] == 4 and metrics["mIoU"] == 1.0 and metrics["mBIoU"] == 1.0
    assert not (out / "miou" / "sa1b" / "categories.csv").exists()  # SA-1B has no categories
