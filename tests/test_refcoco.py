"""The RefCOCO-family reader on files written in the refer toolkit's native format."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from refcoco_builders import H, W, write_refcoco
from sam_bench.data.readers.refcoco import read_refcoco
from sam_bench.data.registry import open_dataset
from sam_bench.errors import DataError


@pytest.fixture(scope="module")
def refcoco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refcoco_root")
    write_refcoco(root)
    write_refcoco(root, "refcocog", "refs(google).p",
                  refs=[(200, 13, "val", [(2000, "small box at the bottom")])])
    write_refcoco(root, "refcocog", "refs(umd).p", refs=[(300, 22, "test", [(3000, "the traffic light")])])
    return root


def test_val_split_images_objects_and_expressions(refcoco_root):
    ds = open_dataset("refcoco", str(refcoco_root), split="val")
    assert ds.image_ids() == ["1", "2"]
    assert ds.metadata["refs_in_split"] == 3 and ds.metadata["expressions"] == 4
    assert ds.metadata["splits_in_file"] == ["testA", "val"]
    assert ds.expressions() == ["the upper left one", "left box", "box on the right", "thing at right"]
    assert ds.object_counts() == [2, 1]  # referred annotations: 11 and 12, then 22

    first = ds.get(0)
    assert (first.height, first.width) == (H, W) and first.coco.id == 1
    assert first.load_image().shape == (H, W, 3) and first.load_image()[0, 0, 0] == 40
    # Only the referred annotations are objects (13 is in image 1 but referred by no val ref).
    assert [o.object_id for o in first.objects] == ["11", "12"]
    person, dog = first.objects
    assert (person.category, person.category_id, dog.category) == ("person", 1, "dog")
    ys, xs = np.nonzero(person.mask)
    assert person.mask.sum() == 200 and (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 29, 5, 14)
    assert dog.mask.sum() == 300
    assert first.extra["expressions"] == [
        {"ref_id": 100, "sent_id": 1000, "ann_id": 11, "category_id": 1, "sentence": "the upper left one"},
        {"ref_id": 100, "sent_id": 1001, "ann_id": 11, "category_id": 1, "sentence": "left box"},
        {"ref_id": 101, "sent_id": 1002, "ann_id": 12, "category_id": 2, "sentence": "box on the right"}]
    second = ds.get(1)
    assert [e["sent_id"] for e in second.extra["expressions"]] == [1004]
    assert [o.category for o in second.objects] == ["traffic light"]


def test_splits_and_sentence_field(refcoco_root):
    test_a = open_dataset("refcoco", str(refcoco_root), split="testA")
    assert test_a.image_ids() == ["2"] and test_a.expressions() == ["square"]
    raw = read_refcoco(refcoco_root, "refcoco/refs(unc).p", "refcoco/instances.json", split="testA",
                       sentence_field="raw")
    assert raw.expressions() == ["Square."]
    # RefCOCOg: the UMD partition by default, the Google partition through the google_* splits.
    assert open_dataset("refcocog", str(refcoco_root), split="test").expressions() == ["the traffic light"]
    google = open_dataset("refcocog", str(refcoco_root), split="google_val")
    assert google.expressions() == ["small box at the bottom"] and [o.object_id for o in google.get(0).objects] == ["13"]


def test_bad_inputs_name_the_file(refcoco_root, tmp_path):
    with pytest.raises(DataError, match=r"no refs in split 'testB'; splits in the file: \['testA', 'val'\]"):
        open_dataset("refcoco", str(refcoco_root), split="testB")
    with pytest.raises(DataError, match=r"refcoco\+/refs\(unc\)\.p: refs pickle not found"):
        open_dataset("refcocoplus", str(refcoco_root))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = write_refcoco(tmp_path / "evil")
    with open(bad / "refcoco" / "refs(unc).p", "wb") as f:
        pickle.dump([{"ref_id": 1, "payload": Evil()}], f, protocol=2)
    with pytest.raises(DataError, match=r"refs\(unc\)\.p: not a readable refs pickle: refuses to load __builtin__.print"):
        open_dataset("refcoco", str(bad))

    dangling = write_refcoco(tmp_path / "dangling", refs=[(1, 11, "val", [(5, "x")])])
    instances = json.loads((dangling / "refcoco" / "instances.json").read_text())
    instances["annotations"] = [a for a in instances["annotations"] if a["id"] != 11]
    (dangling / "refcoco" / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(DataError, match=r"ref 1: annotation 11 is not in .*instances\.json"):
        open_dataset("refcoco", str(dangling))
