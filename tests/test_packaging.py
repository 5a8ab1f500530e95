"""Installed, not editable: the wheel carries datasets/ and tasks/, and an external package's entry
point registers its model without editing sam-bench."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
from sam_bench.errors import ConfigError
from sam_bench.registry import MODELS


@MODELS.register("plugged", help="test plugin: felzenszwalb with a recorded scale")
def build(checkpoint=None, device=None, precision="fp32", batch_size=None, **model_args):
    unknown = sorted(set(model_args) - {"scale"})
    if unknown:
        raise ConfigError(f"model 'plugged' has no argument {unknown[0]}")
    model = MODELS.get("felzenszwalb")()
    model.info.name = "plugged"
    model.info.details["scale"] = float(model_args.get("scale", 1))
    return model
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """A real installed distribution: package + dist-info with entry_points.txt on sys.path."""
    site = tmp_path_factory.mktemp("site")
    (site / "sbplug").mkdir()
    (site / "sbplug" / "__init__.py").write_text(PLUGIN)
    info = site / "sbplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sbplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sam_bench.models]\nplugged = sbplug\n")
    return site


def test_entry_point_plugin_registers_a_model(plugin_path, synthetic_roots, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{plugin_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    listed = subprocess.run([sys.executable, "-m", "sam_bench.cli", "list", "models"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any(line.startswith("plugged ") and "test plugin" in line for line in listed.stdout.splitlines())
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "run", "--task", "point", "--model", "plugged",
                           "--model-args", "scale=2.5", "--dataset", "demo", "--data-root",
                           str(synthetic_roots["demo"]), "--out", str(out), "--limit", "1", "--max-clicks", "2"],
                          env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    model = json.loads((out / "run.json").read_text())["tasks"]["point/demo"]["model"]
    assert model["name"] == "plugged" and model["scale"] == 2.5 and model["model_args"] == {"scale": "2.5"}


def test_pip_install_ships_datasets_and_tasks(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                            "--target", str(target), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    bundled = target / "sam_bench" / "_bundled"
    for name in ("datasets", "tasks"):
        shipped = sorted(p.relative_to(bundled / name) for p in (bundled / name).rglob("*.yaml"))
        assert shipped == sorted(p.relative_to(ROOT / name) for p in (ROOT / name).rglob("*.yaml"))
    assert (target / "sam_bench" / "reference" / "sa23.json").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    for what, expected in (("datasets", "grabcut "), ("suites", "sa23 ")):
        listed = subprocess.run([sys.executable, "-m", "sam_bench.cli", "list", what], env=env, cwd=tmp_path,
                                capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert any(line.startswith(expected) for line in listed.stdout.splitlines())
    where = subprocess.run([sys.executable, "-c", "import sam_bench.resources as r; print(r.resource_dir('tasks'))"],
                           env=env, cwd=tmp_path, capture_output=True, text=True)
    assert where.stdout.strip() == str(bundled / "tasks")
