"""Dataset configs (every one loads, names a registered reader with arguments it accepts, carries
the paper's counts) and `data check` on real, synthetic and broken downloads."""
from __future__ import annotations

import inspect
import shutil

import pytest

import sam_bench.data.readers  # noqa: F401  (registers the readers)
from sam_bench.data.check import check_dataset
from sam_bench.data.registry import dataset_names, load_dataset_config
from sam_bench.registry import READERS

# PROTOCOLS.md §1: (split, images, masks) the paper used
PAPER_23 = {
    "ppdls": (182, 2347), "bbbc038": (227, 10506), "doors": (10000, 10000), "timberseg": (220, 2487),
    "ndd20": (4402, 6100), "lvis_v05": (945, 9642), "streets": (819, 9854), "zerowaste_f": (2947, 6155),
    "ishape": (754, 9742), "ade20k": (302, 10128), "ovis": (2044, 10011), "hypersim": (338, 9445),
    "ndispark": (111, 2577), "visor": (1864, 10141), "plittersdorf": (187, 546), "egohos": (2940, 9961),
    "ibd": (467, 11953), "woodscape": (107, 10266), "cityscapes": (293, 9973), "pidray": (3733, 8892),
    "dram": (718, 1179), "trashcan": (5936, 9540), "gtea": (652, 1208),
}
CLASSIC = {"grabcut": 50, "berkeley": 100, "davis": 345, "coco_mval": 800}


def check_reader_args(reader: str, args: dict, where: str) -> None:
    """The config's arguments are accepted by the reader's constructor (catches typos)."""
    params = inspect.signature(READERS.get(reader)).parameters  # a class or a factory function
    unknown = set(args) - set(params)
    assert not unknown, f"{where}: reader '{reader}' has no argument(s) {sorted(unknown)}"
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty
                and n != "root" and p.kind is p.POSITIONAL_OR_KEYWORD}
    assert required <= set(args), f"{where}: reader '{reader}' needs {sorted(required - set(args))}"
    if reader == "concat":
        for k, part in enumerate(args["parts"]):
            check_reader_args(part["reader"], part.get("args") or {}, f"{where} part {k}")


@pytest.mark.parametrize("name", dataset_names())
def test_every_config_is_complete_and_names_a_registered_reader(name):
    cfg = load_dataset_config(name)
    assert cfg.reader in READERS, f"{name}: reader '{cfg.reader}' is not registered"
    assert cfg.title and cfg.homepage and cfg.license and cfg.layout.strip()
    if name in PAPER_23 or name in CLASSIC or name == "bsds500":
        assert set(cfg.paper) >= {"split", "images", "masks"}, f"{name}: paper needs split, images, masks"
    if cfg.splits:
        assert cfg.default_split in cfg.splits
    for split in (cfg.splits or {None: None}):
        check_reader_args(cfg.reader, cfg.reader_arguments(split), f"{cfg.path} split {split}")


def test_the_paper_datasets_all_have_configs_with_its_counts():
    names = set(dataset_names())
    assert set(PAPER_23) | set(CLASSIC) | {"bsds500"} <= names
    for name, (images, masks) in PAPER_23.items():
        cfg = load_dataset_config(name)
        assert (cfg.paper["images"], cfg.paper["masks"]) == (images, masks), name
        # the paper's rule: more than 15k masks -> random images until about 10k masks, seeded
        assert cfg.subsample == {"max_masks": 15000, "target_masks": 10000, "seed": 0}, name
    for name, n in CLASSIC.items():
        assert load_dataset_config(name).paper["masks"] == n
    bsds = load_dataset_config("bsds500")
    assert bsds.default_split == "test" and bsds.paper["images"] == 200


def test_data_check_real_grabcut(grabcut_root):
    lines: list[str] = []
    assert check_dataset("grabcut", str(grabcut_root), None, out=lines.append) == 0
    assert "images     50        paper: 50 (all)" in lines
    assert "masks      50        paper: 50" in lines and lines[-1] == "OK"


def test_data_check_cityscapes_sample_and_subsample_preview(shared_data):
    lines: list[str] = []
    assert check_dataset("cityscapes", str(shared_data / "cityscapes_sample"), "val", out=lines.append) == 0
    assert "images     1         paper: 293 (val (panoptic))" in lines
    assert "masks      15        paper: 9973" in lines
    assert "subsample  not needed (15 <= 15000 masks)" in lines


def test_data_check_reports_missing_and_broken_files(synthetic_roots, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(synthetic_roots["demo"], root)
    lines: list[str] = []
    assert check_dataset("demo", str(root), None, out=lines.append) == 0
    assert "images     4         paper: -" in lines and "masks      16        paper: -" in lines
    (root / "images" / "synthetic_002.png").unlink()
    (root / "images" / "synthetic_003.png").write_bytes(b"not a png")
    lines.clear()
    assert check_dataset("demo", str(root), None, out=lines.append) == 1
    problems = [line for line in lines if line.startswith("PROBLEM")]
    assert len(problems) == 2
    assert "1 of 4 image files missing" in problems[0] and "synthetic_002.png" in problems[0]
    assert "synthetic_003.png: cannot decode image" in problems[1]
    assert lines[-1].startswith("FAILED: 2 problem(s)")
    assert "  <data-root>/annotations.json   LVIS v1 style json (valid COCO): RLE masks, category frequencies" in lines


def test_data_check_cli_names_what_is_missing(tmp_path, capsys):
    """Through the command line entry point: exit status 1 and the missing folder named."""
    from sam_bench.cli import main

    assert main(["data", "check", "bsds500", "--data-root", str(tmp_path), "--split", "val"]) == 1
    stdout = capsys.readouterr().out
    assert f"PROBLEM    {tmp_path}/images/val: BSDS500 image directory not found" in stdout
    assert "<data-root>/images/<train|val|test>/<id>.jpg" in stdout
