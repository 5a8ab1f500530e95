"""Issue 10, bad inputs: truncated images, wrong-size and 16-bit masks, duplicate ids, missing
images, --split without splits; each named in one line by the reader, the runner and `data check`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam_bench.data.check import check_dataset
from sam_bench.data.images import read_rgb
from sam_bench.data.readers.binary_masks import BinaryMaskDataset
from sam_bench.data.registry import open_dataset
from sam_bench.errors import ConfigError, DataError


def _grabcut(root: Path, n: int = 3, size: tuple[int, int] = (40, 48)) -> Path:
    """GrabCut layout: data_GT/<name>.jpg, boundary_GT/<name>.bmp trimaps (0 / 128 band / 255)."""
    rng = np.random.default_rng(0)
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "data_GT" / f"im{i}.jpg"), rng.integers(0, 255, (*size, 3), np.uint8))
        trimap = np.zeros(size, np.uint8)
        trimap[10:30, 10:30] = 128
        trimap[12:28, 12:28] = 255
        cv2.imwrite(str(root / "boundary_GT" / f"im{i}.bmp"), trimap)
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_jpeg_and_png_are_named_when_read(tmp_path):
    root = _grabcut(tmp_path / "g")
    jpg = root / "data_GT" / "im1.jpg"
    _truncate(jpg)
    with pytest.raises(DataError, match=f"{jpg}: truncated or damaged JPEG"):
        read_rgb(jpg)
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.full((30, 30, 3), 200, np.uint8))
    _truncate(png)
    with pytest.raises(DataError, match=f"{png}: truncated or damaged PNG"):
        read_rgb(png)
    assert read_rgb(root / "data_GT" / "im0.jpg").shape == (40, 48, 3)  # intact files still read


def test_data_check_names_truncated_image_and_wrong_size_mask(tmp_path):
    root = _grabcut(tmp_path / "g", n=4)
    _truncate(root / "data_GT" / "im1.jpg")
    cv2.imwrite(str(root / "boundary_GT" / "im2.bmp"), np.zeros((20, 20), np.uint8))
    lines: list[str] = []
    assert check_dataset("grabcut", str(root), out=lines.append) == 1
    text = "\n".join(lines)
    assert f"{root / 'data_GT' / 'im1.jpg'}: truncated or damaged JPEG" in text
    assert f"{root / 'boundary_GT' / 'im2.bmp'}: mask is 20x20 but its image {root / 'data_GT' / 'im2.jpg'} is 48x40" in text
    assert "OK" not in lines


def test_data_check_names_duplicate_ids_and_missing_images(tmp_path, synthetic_roots):
    root = tmp_path / "demo"
    shutil.copytree(synthetic_roots["demo"], root)
    ann = json.loads((root / "annotations.json").read_text())
    gone = root / "images" / ann["images"][0]["file_name"]
    gone.unlink()
    lines: list[str] = []
    assert check_dataset("demo", str(root), out=lines.append) == 1
    assert any("image files missing" in line and str(gone) in line for line in lines), lines
    ann["images"].append(dict(ann["images"][1]))
    (root / "annotations.json").write_text(json.dumps(ann))
    lines = []
    assert check_dataset("demo", str(root), out=lines.append) == 1
    assert any(f"image ids are not unique: {ann['images'][1]['id']}" in line for line in lines), lines


def test_sixteen_bit_mask_uses_the_declared_void_band(tmp_path):
    root = _grabcut(tmp_path / "g", n=1)
    trimap = cv2.imread(str(root / "boundary_GT" / "im0.bmp"), cv2.IMREAD_UNCHANGED)
    (root / "boundary_GT" / "im0.bmp").unlink()
    cv2.imwrite(str(root / "boundary_GT" / "im0.png"), trimap.astype(np.uint16) * 257)  # 16-bit: 0/32896/65535
    sample = BinaryMaskDataset(root, "data_GT", "boundary_GT", void_value=128, threshold=128).get(0)
    assert sample.objects[0].mask.sum() == 16 * 16  # the band is not object
    assert sample.ignore is not None and sample.ignore.sum() == 20 * 20 - 16 * 16


def test_split_on_a_dataset_without_splits_is_an_error(tmp_path):
    root = _grabcut(tmp_path / "g", n=1)
    with pytest.raises(ConfigError, match="dataset 'grabcut' has no splits .*drop --split val"):
        open_dataset("grabcut", str(root), split="val")
    assert open_dataset("grabcut", str(root)).metadata["split"] is None


def test_skipped_objects_are_logged_counted_and_reported(tmp_path, caplog):
    import logging

    from sam_bench.cli import main

    root = _grabcut(tmp_path / "g", n=2)
    cv2.imwrite(str(root / "boundary_GT" / "im1.bmp"), np.full((40, 48), 128, np.uint8))  # void only
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert main(["run", "--task", "point", "--model", "tiny", "--dataset", "grabcut", "--data-root", str(root),
                     "--out", str(out), "--max-clicks", "1"]) == 0
    assert "grabcut image im1: skipping 1 object(s) with no clickable pixel (empty or void-only mask): im1" in caplog.text
    assert json.loads((out / "point/grabcut/metrics.json").read_text())["skipped_objects"] == 1
    assert "Objects skipped (empty, or only void pixels" in (out / "report.md").read_text()
