"""report.md: one section per task, one column (or row) per run, the paper's rows beside them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from ..io import write_text
from ..metadata import read_run_json
from ..plugins import load_plugins
from ..registry import TASKS
from .entry import ReportEntry


def collect_entries(run_dirs: Sequence[Path]) -> dict[str, list[ReportEntry]]:
    """Every finished (task, dataset) result in the given run directories, by task."""
    entries: dict[str, list[ReportEntry]] = {}
    labels = _run_labels(run_dirs)
    for run_dir in run_dirs:
        run_json = read_run_json(run_dir)
        for key, record in sorted(run_json.get("tasks", {}).items()):
            task, dataset = key.split("/", 1)
            task_dir = Path(run_dir) / task / dataset
            metrics_path = task_dir / "metrics.json"
            if not metrics_path.exists():
                continue
            entries.setdefault(task, []).append(ReportEntry(
                run_label=labels[(Path(run_dir), key)], run_dir=Path(run_dir), dataset=dataset,
                metrics=json.loads(metrics_path.read_text()), record=record, task_dir=task_dir))
    return entries


def _run_labels(run_dirs: Sequence[Path]) -> dict[tuple[Path, str], str]:
    """Column names: the run's --label or the model's label, made unique with the directory name."""
    raw = {}
    for run_dir in run_dirs:
        for key, record in read_run_json(run_dir).get("tasks", {}).items():
            raw[(Path(run_dir), key)] = record["config"].get("label") or record["model"]["label"]
    by_label: dict[str, set[Path]] = {}
    for (run_dir, _), label in raw.items():
        by_label.setdefault(label, set()).add(run_dir)
    return {k: (f"{label} [{k[0].name}]" if len(by_label[label]) > 1 else label) for k, label in raw.items()}


def build_report(run_dirs: Iterable[str | Path]) -> str:
    load_plugins()
    run_dirs = [Path(d) for d in run_dirs]
    entries = collect_entries(run_dirs)
    lines = ["# sam-bench report", ""]
    lines += ["| run | model | checkpoint sha256 | device, precision | finished |", "|---|---|---|---|---|"]
    for run_dir in run_dirs:
        for key, rec in sorted(read_run_json(run_dir).get("tasks", {}).items()):
            sha = rec["model"].get("checkpoint_sha256") or rec["model"].get("weights_sha256") or "-"
            lines.append(f"| {run_dir.name}: {key} | {rec['model']['label']} | {sha[:12]} | "
                         f"{_compute(rec)} | {rec['finished']} |")
    if any(rec["model"].get("untrained") for d in run_dirs
           for rec in read_run_json(d).get("tasks", {}).values()):
        lines += ["", "Runs marked *untrained* use random weights: their numbers test the pipeline, "
                      "they say nothing about SAM."]
    for task in TASKS.names():
        if task in entries:
            lines += ["", TASKS.get(task).report_section(entries[task]).rstrip()]
    return "\n".join(lines) + "\n"


def _compute(record: dict) -> str:
    """Where and how the model ran: device, precision (autocast dtype), compiled or not."""
    config = record.get("config", {})
    compiled = ", compiled" if record["model"].get("compiled") else ""
    return f"{record['device']}, {config.get('precision', 'fp32')}{compiled}"


def write_report(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    path = Path(path)
    write_text(path, build_report(run_dirs))
    return path
