"""Task definitions and suites (tasks/*.yaml): include, validation errors naming the file, expansion."""
from __future__ import annotations

from pathlib import Path

import pytest

from sam_bench.errors import ConfigError
from sam_bench.taskdefs import catalog, expand, load_definition


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write(tmp_path / "_point.yaml", "protocol: point\nversion: 2\noptions: {first_click: center, max_clicks: 9}\n")
    write(tmp_path / "group" / "p_grabcut.yaml",
          "include: _point.yaml\ndataset: grabcut\noptions: {max_clicks: 3}\nreference: {label: GrabCut}\n")
    write(tmp_path / "group" / "p_ppdls.yaml", "include: _point.yaml\ndataset: ppdls\n")
    write(tmp_path / "suites" / "inner.yaml", "tasks: [p_ppdls]\n")
    write(tmp_path / "suites" / "outer.yaml", "tasks: [p_grabcut, inner, {task: p_ppdls, models: [tiny]}]\n")
    return tmp_path


def test_include_merges_options_key_by_key(root):
    d = load_definition(root / "group" / "p_grabcut.yaml", root)
    assert (d.name, d.protocol, d.dataset, d.version) == ("p_grabcut", "point", "grabcut", "2")
    assert d.options == {"first_click": "center", "max_clicks": 3}  # the including file wins
    assert d.reference == {"label": "GrabCut"}


def test_suite_expansion_flattens_nested_suites_first_wins(root):
    items = expand("outer", root)
    assert [i.definition.name for i in items] == ["p_grabcut", "p_ppdls"]
    assert items[1].models == ()  # the first mention (through 'inner') wins
    assert [i.definition.name for i in expand("p_ppdls", root)] == ["p_ppdls"]


@pytest.mark.parametrize("text, message", [
    ("include: _point.yaml\ndataset: grabcut\nsplitt: all\n", "unknown key 'splitt'"),
    ("include: _point.yaml\ndataset: grabcut\noptions: {max_click: 3}\n", "unknown option 'max_click'"),
    ("include: _point.yaml\ndataset: grabcut\noptions: {max_clicks: three}\n",
     "option 'max_clicks' must be int, got str 'three'"),
    ("include: _point.yaml\ndataset: grabcut\noptions: {feedback: 1}\n", "option 'feedback' must be bool"),
    ("include: _point.yaml\ndataset: grabcut\noptions: {first_click: corner}\n", "first_click"),
    ("include: _point.yaml\ndataset: nowhere\n", "dataset 'nowhere' has no config"),
    ("include: _missing.yaml\ndataset: grabcut\n", "included file '_missing.yaml' not found"),
    ("protocol: nope\ndataset: grabcut\nversion: 1\n", "protocol 'nope' is not a registered task"),
    ("include: _point.yaml\n", "'dataset:' is required"),
    ("include: _point.yaml\ndataset: grabcut\nversion: [1]\n", "'version' must be int or str"),
    ("protocol: point\ndataset: [grabcut\n", "invalid YAML"),
])
def test_bad_definitions_name_the_file_and_the_key(root, text, message):
    path = write(root / "group" / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_definition(path, root)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_suites_name_the_file(root):
    write(root / "suites" / "broken.yaml", "tasks: [p_grabcut, nothing_like_it]\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: 'nothing_like_it' is neither"):
        expand("broken", root)
    write(root / "suites" / "loop.yaml", "tasks: [loop]\n")
    with pytest.raises(ConfigError, match="includes itself"):
        expand("loop", root)
    write(root / "suites" / "typo.yaml", "task: [p_grabcut]\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown key 'task'"):
        catalog(root)


def test_shipped_suites():
    definitions, suites = catalog()
    assert {"sa23", "interactive", "edges", "proposals", "instances", "sam_paper", "demo"} <= set(suites)
    sa23 = expand("sa23")
    assert len(sa23) == 23 and {i.definition.protocol for i in sa23} == {"point"}
    assert all(i.definition.options == {"first_click": "center", "max_clicks": 9, "feedback": True} for i in sa23)
    groups = suites["sa23"].groups
    datasets = [i.definition.dataset for i in sa23]
    assert sorted(groups["image"] + groups["video"]) == sorted(datasets)  # a partition of the 23
    assert len(groups["image"]) == 13 and len(groups["video"]) == 10  # sizes implied by SAM 2's means
    assert [i.definition.dataset for i in expand("interactive")] == ["grabcut", "berkeley", "davis", "coco_mval"]
    proposals = {i.definition.name: i.definition for i in expand("proposals")}
    assert proposals["proposals_lvis_single_output"].options["preset"] == "single_output"
    assert proposals["proposals_lvis"].options["preset"] == "paper"
    instances = {i.definition.name: i.definition for i in expand("instances")}
    assert instances["instances_coco_gt_boxes"].options["boxes"] == "gt"
    assert {d.dataset for d in instances.values()} == {"coco", "lvis_v1"}
    paper = {i.definition.name for i in expand("sam_paper")}
    assert paper >= {i.definition.name for s in ("sa23", "interactive", "edges", "proposals", "instances")
                     for i in expand(s)} and "text_coco" in paper
