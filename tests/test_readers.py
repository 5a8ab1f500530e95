"""Each reader on real samples (../shared/data) or on files written here in the native format."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam_bench.data.registry import open_dataset
from sam_bench.data.readers.binary_masks import BinaryMaskDataset
from sam_bench.data.readers.bsds500 import BSDS500Dataset
from sam_bench.data.readers.coco import CocoDataset
from sam_bench.data.synthetic import make_image
from sam_bench.errors import ConfigError, DataError


def write_rgb(path: Path, h: int, w: int, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


# --------------------------------------------------------------------------------------- coco
def test_coco_reader_on_demo_config_matches_synthetic_masks(synthetic_roots):
    ds = open_dataset("demo", str(synthetic_roots["demo"]))
    assert len(ds) == 4 and ds.image_ids() == ["1", "2", "3", "4"]
    assert ds.annotation_file == synthetic_roots["demo"] / "annotations.json"
    assert [c["name"] for c in ds.categories] == ["ellipse", "rectangle", "circle", "triangle"]
    assert ds.object_counts() == [4, 4, 4, 4]
    # generate() draws the images from one rng in order: replaying it gives image 0's exact masks
    truth = make_image(np.random.default_rng(0))
    sample = ds.get(0)
    assert sample.coco.id == 1 and (sample.height, sample.width) == (192, 256)
    assert [o.category for o in sample.objects] == ["ellipse", "rectangle", "circle", "triangle"]
    assert [o.category_id for o in sample.objects] == [1, 2, 3, 4]
    assert [o.extra["annotation_id"] for o in sample.objects] == [1, 2, 3, 4]
    assert [o.extra["frequency"] for o in sample.objects] == ["f", "c", "r", "f"]
    for obj, mask in zip(sample.objects, truth.masks):
        assert obj.extra["iscrowd"] == 0
        np.testing.assert_array_equal(obj.mask, mask)
    np.testing.assert_array_equal(sample.load_image(), truth.image)
    assert sample.ignore is None


def coco_json(tmp_path: Path, images: list, annotations: list, name: str = "ann.json") -> Path:
    cats = [{"id": 7, "name": "thing"}, {"id": 9, "name": "crowd"}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return path


def test_coco_polygon_rle_and_crowd(tmp_path):
    h, w = 20, 30
    write_rgb(tmp_path / "img" / "a.jpg", h, w)
    square = np.zeros((h, w), np.uint8)
    square[2:8, 3:13] = 1  # 60 px
    bar = np.zeros((h, w), np.uint8)
    bar[10:12, 0:30] = 1  # 60 px
    crowd = np.zeros((h, w), np.uint8)
    crowd[0:20, 20:25] = 1  # 100 px, 10 of them under `bar`
    compressed = mask_utils.encode(np.asfortranarray(bar))
    # uncompressed RLE (column-major run lengths, starting with zeros), as COCO stores crowds
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.r_[0, flat, 0 if flat[-1] == 0 else 1 - flat[-1]]))
    runs = np.diff(np.r_[0, changes, flat.size]).tolist()
    runs = [r for r in runs if r > 0] if flat[0] == 0 else [0] + runs
    assert sum(runs) == h * w
    anns = [
        # polygon tracing the pixel square's outer corners: pycocotools rasterises it to 3..12 x 2..7
        {"id": 11, "image_id": 5, "category_id": 7, "iscrowd": 0, "bbox": [3, 2, 10, 6],
         "segmentation": [[3, 2, 13, 2, 13, 8, 3, 8]]},
        {"id": 12, "image_id": 5, "category_id": 7, "iscrowd": 0,
         "segmentation": {"size": [h, w], "counts": compressed["counts"].decode()}},
        {"id": 13, "image_id": 5, "category_id": 9, "iscrowd": 1,
         "segmentation": {"size": [h, w], "counts": runs}},
    ]
    ann = coco_json(tmp_path, [{"id": 5, "file_name": "a.jpg", "height": h, "width": w}], anns)
    ds = CocoDataset(tmp_path, ann.name, "img")
    assert ds.object_counts() == [2]
    s = ds.get(0)
    assert [o.object_id for o in s.objects] == ["11", "12"]
    np.testing.assert_array_equal(s.objects[1].mask, bar.astype(bool))
    assert s.objects[0].box == (3.0, 2.0, 13.0, 8.0)
    assert abs(int(s.objects[0].mask.sum()) - 60) <= 16  # polygon rasterisation at the edges
    assert s.objects[0].mask[3:7, 4:12].all() and not s.objects[0].mask[9:].any()
    # crowd pixels minus those of regular objects are void
    np.testing.assert_array_equal(s.ignore, crowd.astype(bool) & ~bar.astype(bool)
                                  & ~s.objects[0].mask)
    assert int(s.ignore.sum()) == 90
    keep = CocoDataset(tmp_path, ann.name, "img", crowd="keep").get(0)
    assert [o.extra["iscrowd"] for o in keep.objects] == [0, 0, 1] and keep.ignore is None
    np.testing.assert_array_equal(keep.objects[2].mask, crowd.astype(bool))
    assert len(CocoDataset(tmp_path, ann.name, "img", crowd="drop").get(0).objects) == 2
    with pytest.raises(ConfigError):
        CocoDataset(tmp_path, ann.name, "img", crowd="maybe")


def test_lvis_v1_coco_url_and_v05_file_name(tmp_path):
    h, w = 8, 8
    write_rgb(tmp_path / "coco" / "train2017" / "000000000009.jpg", h, w, 10)
    write_rgb(tmp_path / "coco" / "val2017" / "000000000139.jpg", h, w, 20)
    rle = mask_utils.encode(np.asfortranarray(np.eye(8, dtype=np.uint8)))
    seg = {"size": [h, w], "counts": rle["counts"].decode()}
    images = [
        {"id": 139, "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg", "height": h,
         "width": w, "neg_category_ids": [3], "not_exhaustive_category_ids": [7]},
        {"id": 9, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg", "height": h,
         "width": w, "neg_category_ids": [], "not_exhaustive_category_ids": []},
    ]
    anns = [{"id": 1, "image_id": 9, "category_id": 7, "segmentation": seg, "area": 8.0, "bbox": [0, 0, 8, 8]}]
    path = tmp_path / "lvis_v1_val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 7, "name": "thing", "frequency": "r"}]}))
    ds = CocoDataset(tmp_path, path.name, "coco")
    assert ds.image_ids() == ["139", "9"] and ds.object_counts() == [0, 1]
    first, second = ds.get(0), ds.get(1)
    assert first.path == tmp_path / "coco" / "val2017" / "000000000139.jpg"
    assert first.coco.neg_category_ids == (3,) and first.coco.not_exhaustive_category_ids == (7,)
    assert int(first.load_image()[0, 0, 0]) == 20 and int(second.load_image()[0, 0, 0]) == 10
    np.testing.assert_array_equal(second.objects[0].mask, np.eye(8, dtype=bool))
    assert second.objects[0].extra["frequency"] == "r" and ds.metadata["format"] == "lvis"
    # v0.5: file_name, images may sit flat in one folder
    images05 = [{"id": 9, "file_name": "000000000009.jpg", "height": h, "width": w}]
    path05 = tmp_path / "lvis_v0.5_val.json"
    path05.write_text(json.dumps({"images": images05, "annotations": anns, "categories": [
        {"id": 7, "name": "thing", "frequency": "r"}]}))
    assert CocoDataset(tmp_path, path05.name, "coco/train2017").get(0).path.name == "000000000009.jpg"


def test_coco_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.json"):
        CocoDataset(tmp_path, "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: invalid json"):
        CocoDataset(tmp_path, "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="list.json: not a COCO"):
        CocoDataset(tmp_path, "list.json")
    ann = coco_json(tmp_path, [{"id": 1, "file_name": "x.jpg", "height": 4, "width": 4}],
                    [{"id": 2, "image_id": 1, "category_id": 7, "segmentation": {"size": [5, 5], "counts": 3}}])
    with pytest.raises(DataError, match="annotation 2: cannot decode"):
        CocoDataset(tmp_path, ann.name).get(0)


# --------------------------------------------------------------------------------------- bsds500
def test_bsds500_real_val_sample(bsds_root):
    ds = BSDS500Dataset(bsds_root, "val")
    assert len(ds) == 100
    index = ds.image_ids().index(sorted(ds.image_ids())[0])
    s = ds.get(index)
    import scipy.io

    cell = scipy.io.loadmat(str(s.edges.source))["groundTruth"][0]
    segs = [c["Segmentation"][0, 0] for c in cell]
    assert len(s.edges.boundaries) == len(cell) == 5
    assert (s.height, s.width) == segs[0].shape == s.load_image().shape[:2]
    assert len(s.objects) == sum(len(np.unique(g)) for g in segs) == ds.object_counts()[index]
    np.testing.assert_array_equal(s.edges.boundaries[2], cell[2]["Boundaries"][0, 0] == 1)
    # every annotator's regions tile the image exactly once
    for k in range(5):
        cover = sum(o.mask.astype(int) for o in s.objects if o.extra["annotator"] == k)
        assert (cover == 1).all()
    first = BSDS500Dataset(bsds_root, "val", annotators="first").get(index)
    assert len(first.objects) == len(np.unique(segs[0])) and len(first.edges.boundaries) == 5
    assert {o.extra["annotator"] for o in BSDS500Dataset(bsds_root, "val", annotators=3).get(index).objects} == {3}


def test_bsds500_demo_config_on_synthetic(synthetic_roots):
    ds = open_dataset("demo_bsds", str(synthetic_roots["demo_bsds"]), split="val")
    s = ds.get(0)
    assert ds.image_ids() == [f"synthetic_{i:03d}" for i in range(4)]
    truth = make_image(np.random.default_rng(0))
    fine = [o.mask for o in s.objects if o.extra["annotator"] == 0]
    coarse = [o.mask for o in s.objects if o.extra["annotator"] == 1]
    assert len(fine) == 5 and len(coarse) == 3  # background + 4 nested shapes; background + 2 wholes
    assert any((m == truth.masks[2]).all() for m in fine)  # the subpart disc
    assert any((m == truth.masks[3]).all() for m in coarse)  # the triangle
    with pytest.raises(DataError, match="images/test: BSDS500 image directory not found"):
        BSDS500Dataset(synthetic_roots["demo_bsds"], "test")


# --------------------------------------------------------------------------------------- binary masks
def test_binary_masks_real_grabcut(grabcut_root):
    ds = open_dataset("grabcut", str(grabcut_root))
    assert len(ds) == 50 and ds.object_counts() == [1] * 50
    ids = ds.image_ids()
    s = ds.get(ids.index("124080"))
    # values counted from the trimap file itself: 66259 pixels at 255, 2503 at 128
    assert int(s.objects[0].mask.sum()) == 66259 and int(s.ignore.sum()) == 2503
    assert not (s.objects[0].mask & s.ignore).any()
    assert s.load_image().shape == (321, 481, 3) == (s.height, s.width, 3)
    assert ds.get(ids.index("106024")).ignore is None  # this trimap has no 128 band
    assert ds.get(ids.index("music")).path.name == "music.JPG"


def test_binary_masks_multi_and_missing(tmp_path):
    write_rgb(tmp_path / "img" / "a.jpg", 4, 5)
    write_rgb(tmp_path / "img" / "b.png", 4, 5)
    m0 = np.zeros((4, 5), np.uint8)
    m0[0, :] = 255
    m1 = np.zeros((4, 5), np.uint8)
    m1[1:3, 1] = 1
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "a_0.png"), m0)
    cv2.imwrite(str(tmp_path / "gt" / "a_1.png"), m1)
    with pytest.raises(DataError, match="no mask for 2 image"):
        BinaryMaskDataset(tmp_path, "img", "gt")
    ds = BinaryMaskDataset(tmp_path, "img", "gt", threshold=0, multi=True, skip_unmatched=True)
    assert ds.image_ids() == ["a"] and ds.object_counts() == [2]
    s = ds.get(0)
    assert [int(o.mask.sum()) for o in s.objects] == [5, 2] and s.ignore is None


# --------------------------------------------------------------------------------------- label PNGs
def test_cityscapes_config_on_real_sample(shared_data):
    ds = open_dataset("cityscapes", str(shared_data / "cityscapes_sample"), split="val")
    assert ds.image_ids() == ["frankfurt/frankfurt_000000_000294"] and ds.object_counts() == [15]
    s = ds.get(0)
    labels = cv2.imread(str(shared_data / "cityscapes_sample/gtFine/val/frankfurt/"
                            "frankfurt_000000_000294_gtFine_instanceIds.png"), cv2.IMREAD_UNCHANGED)
    # 8 stuff classes present (one segment each) + 4 persons + 3 cars
    assert [o.object_id for o in s.objects] == ["7", "8", "11", "13", "17", "20", "21", "23",
                                                "24000", "24001", "24002", "24003", "26000", "26001", "26002"]
    assert [o.category for o in s.objects][:2] == ["road", "sidewalk"] and s.objects[-1].category == "car"
    assert int(s.objects[0].area) == 9740 and int(s.objects[-1].area) == 1572
    np.testing.assert_array_equal(s.objects[9].mask, labels == 24001)
    # ids 1-4 (ego vehicle, rectification border, out of roi, static) are void: 1890+987+764+233 px
    assert int(s.ignore.sum()) == 3874
    np.testing.assert_array_equal(s.ignore, np.isin(labels, [1, 2, 3, 4]))
    assert s.load_image().shape == (128, 256, 3)


def write_pair(root: Path, stem: str, labels: np.ndarray, palette: bool = False) -> None:
    from PIL import Image

    write_rgb(root / "img" / f"{stem}.jpg", *labels.shape[:2])
    (root / "ann").mkdir(parents=True, exist_ok=True)
    if palette:
        im = Image.fromarray(labels.astype(np.uint8), mode="P")
        im.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10, 10, 10, 200] + [0] * (256 * 3 - 12))
        im.save(root / "ann" / f"{stem}.png")
    else:
        Image.fromarray(labels).save(root / "ann" / f"{stem}.png")


def test_instance_png_palette_colour_and_ade_channels(tmp_path):
    from sam_bench.data.readers.label_png import InstancePngDataset

    ids = np.zeros((6, 8), np.uint8)
    ids[0:2, 0:3] = 1
    ids[4:6, 5:8] = 3
    write_pair(tmp_path / "p", "leaf", ids, palette=True)  # palette PNG: values must stay indices
    ds = InstancePngDataset(tmp_path / "p", "img", "ann", encoding="ids")
    assert ds.object_counts() == [2]
    assert [(o.object_id, int(o.area)) for o in ds.get(0).objects] == [("1", 6), ("3", 6)]
    colour = InstancePngDataset(tmp_path / "p", "img", "ann", encoding="colour")
    assert [int(o.area) for o in colour.get(0).objects] == [6, 6]  # black background dropped
    # ADE20K instance PNG: R = class, G = instance
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[0:3, 0:2] = (12, 1, 0)
    rgb[3:6, 0:2] = (12, 2, 0)
    rgb[0:6, 6:8] = (40, 3, 0)
    rgb[5, 3] = (7, 0, 0)  # class without instance id: not an object
    write_pair(tmp_path / "a", "ADE_val_1", rgb)
    ade = InstancePngDataset(tmp_path / "a", "img", "ann", encoding="class_instance_channels")
    got = [(o.object_id, o.category_id, int(o.area)) for o in ade.get(0).objects]
    assert got == [("1", 12, 6), ("2", 12, 6), ("3", 40, 12)] and ade.object_counts() == [3]
    with pytest.raises(ConfigError):
        InstancePngDataset(tmp_path / "a", "img", "ann", encoding="hex")
    with pytest.raises(DataError, match="none of 1 images matches include"):
        InstancePngDataset(tmp_path / "a", "img", "ann", include=["ego4d_*"])


def test_semantic_png_components_and_void(tmp_path):
    from sam_bench.data.readers.label_png import SemanticPngDataset

    labels = np.zeros((10, 12), np.uint8)
    labels[1:3, 1:3] = 1  # class 1, component A (4 px)
    labels[6:9, 8:11] = 1  # class 1, component B (9 px)
    labels[1:4, 6:9] = 2  # class 2 (9 px)
    labels[9, :] = 255  # void row
    write_pair(tmp_path, "frame", labels)
    whole = SemanticPngDataset(tmp_path, "img", "ann", categories={1: "hand", 2: "cup"})
    s = whole.get(0)
    assert [(o.object_id, o.category, int(o.area)) for o in s.objects] == [("c1", "hand", 13), ("c2", "cup", 9)]
    assert int(s.ignore.sum()) == 12
    parts = SemanticPngDataset(tmp_path, "img", "ann", components=True)
    assert [(o.object_id, int(o.area)) for o in parts.get(0).objects] == [("c1_1", 4), ("c1_2", 9), ("c2_1", 9)]
    assert parts.object_counts() == [3]
    assert SemanticPngDataset(tmp_path, "img", "ann", components=True, min_area=5).object_counts() == [2]


# --------------------------------------------------------------------------------------- video / json formats
def rle_of(mask: np.ndarray, compressed: bool = True) -> dict:
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode()}
    flat = mask.flatten(order="F").astype(int)
    runs, current, n = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    return {"size": list(mask.shape), "counts": runs}


def test_ytvis_frames_rle_and_crowd(tmp_path):
    from sam_bench.data.readers.ytvis import YouTubeVISDataset

    h, w = 6, 7
    for t in range(3):
        write_rgb(tmp_path / "train" / "vid1" / f"{t:05d}.jpg", h, w, 10 * t)
    a = np.zeros((h, w), bool)
    a[1:3, 1:4] = True
    b = np.zeros((h, w), bool)
    b[4:6, 0:7] = True
    crowd = np.zeros((h, w), bool)
    crowd[0:6, 6] = True
    data = {"videos": [{"id": 1, "height": h, "width": w, "length": 3,
                        "file_names": [f"vid1/{t:05d}.jpg" for t in range(3)]}],
            "categories": [{"id": 5, "name": "fish"}],
            "annotations": [
                {"id": 10, "video_id": 1, "category_id": 5, "iscrowd": 0,
                 "segmentations": [rle_of(a), None, rle_of(a, compressed=False)]},
                {"id": 11, "video_id": 1, "category_id": 5, "iscrowd": 0, "segmentations": [rle_of(b), None, None]},
                {"id": 12, "video_id": 1, "category_id": 5, "iscrowd": 1, "segmentations": [None, None, rle_of(crowd)]}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = YouTubeVISDataset(tmp_path, "ann.json", "train")
    assert ds.image_ids() == ["vid1/00000", "vid1/00002"]  # frame 1 has no object
    assert ds.object_counts() == [2, 1]
    first, last = ds.get(0), ds.get(1)
    assert [o.object_id for o in first.objects] == ["10", "11"] and first.objects[0].category == "fish"
    np.testing.assert_array_equal(last.objects[0].mask, a)
    np.testing.assert_array_equal(last.ignore, crowd & ~a)
    assert int(last.load_image()[0, 0, 0]) == 20 and last.extra == {"video_id": 1, "frame": 2}


def test_jsonl_manifest_every_mask_form(tmp_path):
    from sam_bench.data.readers.jsonl import JsonlDataset

    write_rgb(tmp_path / "images" / "x.png", 5, 6)
    labels = np.zeros((5, 6), np.uint8)
    labels[0, :] = 3
    labels[4, :] = 7
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "labels" / "x.png"), labels)
    square = np.zeros((5, 6), bool)
    square[1:3, 1:3] = True
    line = {"image": "images/x.png", "objects": [
        {"mask": "labels/x.png", "value": 3, "category": "top", "id": "t"},
        {"mask": "labels/x.png"},
        {"rle": rle_of(square)},
        {"polygons": [[1, 1, 3, 1, 3, 3, 1, 3]], "category_id": 4}],
        "ignore": {"mask": "labels/x.png", "value": 7}}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(line) + "\n\n")
    ds = JsonlDataset(tmp_path)
    assert ds.image_ids() == ["images/x"] and ds.object_counts() == [4]
    s = ds.get(0)
    assert [o.object_id for o in s.objects] == ["t", "1", "2", "3"]
    assert [int(o.area) for o in s.objects] == [6, 12, 4, 4]
    np.testing.assert_array_equal(s.objects[3].mask, square)  # polygon on pixel corners = same square
    assert int(s.ignore.sum()) == 6 and (s.height, s.width) == (5, 6)
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png"}\n{"objects": []}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: each line needs an \"image\""):
        JsonlDataset(tmp_path, "bad.jsonl")


def test_via_woodscape_visor_polygons(tmp_path):
    from sam_bench.data.readers.polygon_json import ViaDataset, VisorDataset, WoodScapeDataset

    write_rgb(tmp_path / "ABOVE" / "1.jpg", 10, 10)
    via = {"1.jpg123": {"filename": "1.jpg", "size": 123, "regions": {
        "0": {"shape_attributes": {"name": "polygon", "all_points_x": [2, 6, 6, 2], "all_points_y": [2, 2, 6, 6]},
              "region_attributes": {"species": "dolphin"}},
        "1": {"shape_attributes": {"name": "rect", "x": 0, "y": 8, "width": 10, "height": 2},
              "region_attributes": {}}}}}
    (tmp_path / "ABOVE_LABELS.json").write_text(json.dumps(via))
    ds = ViaDataset(tmp_path, "ABOVE_LABELS.json", "ABOVE", category_attribute="species")
    s = ds.get(0)
    assert [(o.category, int(o.area)) for o in s.objects] == [("dolphin", 16), (None, 20)]

    # WoodScape: the later z_order polygon covers the earlier one where they overlap
    write_rgb(tmp_path / "rgb_images" / "00001_FV.png", 8, 8)
    (tmp_path / "instance_annotations").mkdir()
    ws = {"00001_FV.json": {"image_width": 8, "image_height": 8, "annotation": [
        {"id": "a", "tags": ["road"], "z_order": 1, "segmentation": [[0, 0], [8, 0], [8, 8], [0, 8]]},
        {"id": "b", "tags": ["car"], "z_order": 2, "segmentation": [[2, 2], [4, 2], [4, 4], [2, 4]]}]}}
    (tmp_path / "instance_annotations" / "00001_FV.json").write_text(json.dumps(ws))
    wds = WoodScapeDataset(tmp_path)
    objs = wds.get(0).objects
    assert [(o.object_id, o.category, int(o.area)) for o in objs] == [("a", "road", 60), ("b", "car", 4)]
    assert [int(o.area) for o in WoodScapeDataset(tmp_path, visible_only=False).get(0).objects] == [64, 4]

    # VISOR: frames unzipped per video, polygons in 1920x1080 coordinates (here a 12x9 frame)
    write_rgb(tmp_path / "frames" / "P01_107" / "P01_107_frame_0000000140.jpg", 9, 12)
    (tmp_path / "visor_ann").mkdir()
    visor = {"video_annotations": [{"image": {"name": "P01_107_frame_0000000140.jpg",
                                              "image_path": "P01_107/P01_107_frame_0000000140.jpg", "video": "P01_107"},
                                    "annotations": [{"id": "o1", "name": "left hand", "class_id": 300,
                                                     "segments": [[[0, 0], [3, 0], [3, 3], [0, 3]],
                                                                  [[6, 6], [8, 6], [8, 8], [6, 8]]]},
                                                    {"id": "o2", "name": "empty", "segments": []}]}]}
    (tmp_path / "visor_ann" / "P01_107.json").write_text(json.dumps(visor))
    vds = VisorDataset(tmp_path, "visor_ann", "frames", height=9, width=12)
    assert vds.object_counts() == [1] and vds.image_ids() == ["P01_107_frame_0000000140"]
    v = vds.get(0)
    assert [(o.category, int(o.area)) for o in v.objects] == [("left hand", 13)] and v.load_image().shape == (9, 12, 3)


def test_concat_and_per_image_folders(tmp_path):
    from sam_bench.data.readers.concat import ConcatDataset

    for name, n in (("a1", 2), ("a2", 3)):
        write_rgb(tmp_path / "stage1_train" / name / "images" / f"{name}.png", 4, 4)
        (tmp_path / "stage1_train" / name / "masks").mkdir(parents=True)
        for k in range(n):
            m = np.zeros((4, 4), np.uint8)
            m[k, :] = 255
            cv2.imwrite(str(tmp_path / "stage1_train" / name / "masks" / f"m{k}.png"), m)
    bbbc = BinaryMaskDataset(tmp_path, "stage1_train/{id}/images", "stage1_train/{id}/masks", threshold=0)
    assert bbbc.image_ids() == ["a1", "a2"] and bbbc.object_counts() == [2, 3]
    assert [int(o.area) for o in bbbc.get(1).objects] == [4, 4, 4]
    part = {"reader": "binary_masks", "args": {"images": "stage1_train/{id}/images",
                                               "masks": "stage1_train/{id}/masks", "threshold": 0}}
    ds = ConcatDataset(tmp_path, [{"name": "x", **part}, {"name": "y", **part}])
    assert ds.image_ids() == ["x/a1", "x/a2", "y/a1", "y/a2"] and ds.object_counts() == [2, 3, 2, 3]
    s = ds.get(2)
    assert s.image_id == "y/a1" and s.extra["part"] == "y" and ds.image_path(3).name == "a2.png"
    with pytest.raises(ConfigError, match="part 0 needs"):
        ConcatDataset(tmp_path, [{"reader": "coco"}])


def test_hypersim_instance_hdf5(tmp_path):
    from sam_bench.data.readers.hypersim import HypersimDataset

    scene = tmp_path / "ai_001_002" / "images"
    write_rgb(scene / "scene_cam_00_final_preview" / "frame.0000.tonemap.jpg", 4, 5)
    (scene / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    hdf5 = scene / "scene_cam_00_geometry_hdf5" / "frame.0000.semantic_instance.hdf5"
    ids = -np.ones((4, 5), np.int32)
    ids[0:2, 0:2] = 7
    ids[3, :] = 9
    hdf5.write_bytes(b"")  # replaced by a real file below when h5py is there
    assert len(HypersimDataset(tmp_path)) == 1
    with pytest.raises(DataError, match="no Hypersim frames"):  # volume 1 excluded: nothing left
        HypersimDataset(tmp_path, exclude_volumes=[1])
    try:
        import h5py
    except ImportError:  # optional dependency: indexing works, reading says how to get it
        ds = HypersimDataset(tmp_path)
        assert ds.image_ids() == ["ai_001_002/scene_cam_00/0000"]
        with pytest.raises(ConfigError, match="pip install h5py"):
            ds.get(0)
        return
    with h5py.File(hdf5, "w") as f:
        f["dataset"] = ids
    ds = HypersimDataset(tmp_path)
    assert ds.image_ids() == ["ai_001_002/scene_cam_00/0000"] and ds.object_counts() == [2]
    assert [(o.object_id, int(o.area)) for o in ds.get(0).objects] == [("7", 4), ("9", 5)]


def test_binary_masks_palette_and_colour_masks(tmp_path):
    """DAVIS-style masks come as palette PNGs (index 1 = object, drawn dark red) or colour images."""
    from PIL import Image

    write_rgb(tmp_path / "img" / "p.jpg", 3, 4)
    write_rgb(tmp_path / "img" / "c.jpg", 3, 4)
    (tmp_path / "gt").mkdir()
    idx = np.zeros((3, 4), np.uint8)
    idx[1, 1:3] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * (254 * 3))
    pal.save(tmp_path / "gt" / "p.png")
    colour = np.zeros((3, 4, 3), np.uint8)
    colour[0, :] = (0, 0, 200)
    Image.fromarray(colour).save(tmp_path / "gt" / "c.png")
    ds = open_dataset("davis", str(tmp_path))  # RITM layout img/ + gt/, nonzero = object
    got = {s.image_id: int(s.objects[0].mask.sum()) for s in ds}
    assert got == {"p": 2, "c": 4}
