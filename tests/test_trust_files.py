"""Issue 17, cases 3-5: damaged JPEGs, COCO annotations that disagree with their images or hold bad
boxes, and masks in another encoding than the dataset declares are named, in `run` and in
`data check`, instead of being scored. Real files from ../shared/data, copied and damaged."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sam_bench.cli import main
from sam_bench.data.check import check_dataset
from sam_bench.data.images import read_rgb
from sam_bench.data.registry import open_dataset
from sam_bench.errors import DataError

from conftest import GRABCUT_THREE as GRABCUT




def one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines()
             if not line.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1, lines
    return lines[0]


def _zero_block(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))


def _cut_with_end_marker(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")


def point(data: Path, out: Path, dataset: str = "grabcut") -> list[str]:
    return ["run", "--task", "point", "--model", "felzenszwalb", "--dataset", dataset, "--data-root", str(data),
            "--out", str(out), "--max-clicks", "1", "--workers", "0"]


# 3. strict JPEG decoding --------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [_zero_block, _cut_with_end_marker], ids=["zeroed_block", "cut_plus_end_marker"])
def test_jpeg_damaged_in_the_middle_is_an_error_in_run_and_data_check(grabcut_copy, tmp_path, capsys, damage):
    image = grabcut_copy / "data_GT" / f"{GRABCUT[1]}.jpg"
    damage(image)
    message = f"{image}: damaged JPEG image (the decoder says: Corrupt JPEG data"
    with pytest.raises(DataError) as caught:
        read_rgb(image)
    assert str(caught.value).startswith(message)
    lines: list[str] = []
    assert check_dataset("grabcut", str(grabcut_copy), out=lines.append) == 1
    assert any(line.startswith("PROBLEM") and message in line for line in lines), lines
    assert main(point(grabcut_copy, tmp_path / "out")) == 2
    assert one_error(capsys).startswith(f"sam-bench: error: {message}")


def test_intact_shared_jpegs_decode_without_complaint(shared_data):
    """No false alarm: every real JPEG of the samples decodes strictly."""
    jpegs = sorted(shared_data.glob("*/**/*.jpg"))[:60]
    assert len(jpegs) >= 50
    for path in jpegs:
        assert read_rgb(path).ndim == 3


# 4. COCO annotations that disagree with the files --------------------------------------------------

@pytest.fixture
def coco_copy(shared_data, tmp_path) -> Path:
    root = tmp_path / "coco"
    shutil.copytree(shared_data / "coco_mini", root)
    return root


def _edit_annotations(root: Path, edit) -> Path:
    path = root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_coco_size_that_disagrees_with_the_image_stops_run_with_the_data_check_line(coco_copy, tmp_path, capsys):
    def swap_first(data):
        first = data["images"][0]
        first["height"], first["width"] = first["width"], first["height"]

    _edit_annotations(coco_copy, swap_first)
    expected = f"{coco_copy / 'val2017' / '000000011813.jpg'}: image is 333x500, annotations are 500x333"
    lines: list[str] = []
    assert check_dataset("coco", str(coco_copy), out=lines.append) == 1
    assert any(line.startswith("PROBLEM") and line.endswith(expected) for line in lines), lines
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "coco", "--data-root", str(coco_copy),
                 "--out", str(tmp_path / "out"), "--limit", "1", "--workers", "0"]) == 2
    assert one_error(capsys) == f"sam-bench: error: {expected}"


@pytest.mark.parametrize("bbox,shown", [([10.0, 10.0, -5.0, 20.0], "[10.0, 10.0, -5.0, 20.0]"),
                                        ([10.0, float("nan"), 5.0, 20.0], "[10.0, nan, 5.0, 20.0]")])
def test_ground_truth_boxes_are_checked_like_detection_boxes(coco_copy, tmp_path, capsys, bbox, shown):
    def damage(data):
        data["annotations"][0]["bbox"] = bbox

    path = _edit_annotations(coco_copy, damage)
    ann = json.loads(path.read_text())["annotations"][0]
    index = [im["id"] for im in json.loads(path.read_text())["images"]].index(ann["image_id"])
    expected = (f"{path} (image {ann['image_id']}), annotation {ann['id']}: bbox must be [x, y, w, h] with finite "
                f"numbers and w, h >= 0; got {shown}")
    with pytest.raises(DataError) as caught:
        open_dataset("coco", str(coco_copy)).get(index)
    assert str(caught.value) == expected
    assert main(["run", "--task", "miou", "--model", "box", "--dataset", "coco", "--data-root", str(coco_copy),
                 "--out", str(tmp_path / "out"), "--limit", str(index + 1), "--workers", "0"]) == 2
    assert one_error(capsys) == f"sam-bench: error: {expected}"


def test_annotations_of_unknown_images_and_repeated_ids_are_counted(coco_copy, caplog):
    def damage(data):
        extra = dict(data["annotations"][0], image_id=999999999, id=77777777)
        data["annotations"] += [extra, dict(extra, id=88888888)]
        data["annotations"][2]["id"] = data["annotations"][1]["id"]

    path = _edit_annotations(coco_copy, damage)
    with caplog.at_level(logging.WARNING):
        open_dataset("coco", str(coco_copy))
    assert f"{path}: 2 annotations name 1 image ids that are not in 'images' (e.g. 999999999); they are ignored" \
        in caplog.text
    assert f"{path}: 1 annotation ids are used more than once (2 annotations, e.g." in caplog.text


# 5. masks in another encoding than declared --------------------------------------------------------

def _as_zero_one(path: Path) -> None:
    trimap = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(path), (trimap == 255).astype(np.uint8))


def _as_palette(path: Path) -> None:
    trimap = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    index = np.select([trimap == 255, trimap == 128], [1, 2], 0).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette([0, 0, 0, 255, 255, 255, 128, 128, 128] + [0] * (253 * 3))
    image.save(path)


@pytest.mark.parametrize("encode,found", [(_as_zero_one, "{0, 1}"), (_as_palette, "{0, 1, 2}")],
                         ids=["zero_one", "palette_index"])
def test_mask_in_another_encoding_is_reported(grabcut_copy, tmp_path, caplog, encode, found):
    mask = grabcut_copy / "boundary_GT" / f"{GRABCUT[1]}.bmp"  # a trimap with the 128 band
    encode(mask)
    said = (f"{mask}: mask values {found} do not match the declared encoding (foreground > 128, void 128); "
            "read as declared it is empty (a 0/1 or palette-index mask?)")
    lines: list[str] = []
    assert check_dataset("grabcut", str(grabcut_copy), out=lines.append) == 1
    assert f"PROBLEM    1 mask files do not match the declared encoding: {said}" in lines
    with caplog.at_level(logging.WARNING):
        assert main(point(grabcut_copy, tmp_path / "out")) == 0
    assert (f"grabcut image {GRABCUT[1]}: skipping 1 object(s) with no clickable pixel (empty or void-only mask): "
            f"{GRABCUT[1]}; {said}") in caplog.messages


# data check on a dataset with splits ---------------------------------------------------------------

def test_data_check_lists_the_splits_it_found(bsds_root):
    lines: list[str] = []
    assert check_dataset("bsds500", str(bsds_root), out=lines.append) == 1  # default split: test, not there
    assert f"PROBLEM    split 'test' not readable under {bsds_root}; splits found there: train, val" in lines
