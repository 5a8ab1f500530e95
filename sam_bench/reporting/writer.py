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
            # null (undefined) -> NaN: sections compute with it and tables print it as "-"
            metrics = {k: float("nan") if v is None else v for k, v in json.loads(metrics_path.read_text()).items()}
            entries.setdefault(task, []).append(ReportEntry(
                run_label=labels[(Path(run_dir), key)], run_dir=Path(run_dir), dataset=dataset,
                metrics=metrics, record=record, task_dir=task_dir))
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
    lines += ["| run | model | checkpoint sha256 | device | finished |", "|---|---|---|---|---|"]
    for run_dir in run_dirs:
        for key, rec in sorted(read_run_json(run_dir).get("tasks", {}).items()):
            sha = rec["model"].get("checkpoint_sha256") or rec["model"].get("weights_sha256") or "-"
            lines.append(f"| {run_dir.name}: {key} | {rec['model']['label']} | {sha[:12]} | "
                         f"{rec['device']} | {rec['finished']} |")
    if any(rec["model"].get("untrained") for d in run_dirs
           for rec in read_run_json(d).get("tasks", {}).values()):
        lines += ["", "Runs marked *untrained* use random weights: their numbers test the pipeline, "
                      "they say nothing about SAM."]
    for task in TASKS.names():
        if task in entries:
            lines += ["", TASKS.get(task).report_section(entries[task]).rstrip()]
    lines += undefined_notes(entries)
    return "\n".join(lines) + "\n"


def undefined_notes(entries: dict[str, list[ReportEntry]]) -> list[str]:
    """Say which numbers are undefined and why, instead of leaving a bare '-'."""
    notes = [f"- {e.run_label}, {task}/{e.dataset}: {', '.join(names)}"
             for task, group in entries.items() for e in group
             if (names := [k for k, v in e.metrics.items() if isinstance(v, float) and v != v])]
    if not notes:
        return []
    return ["", "## Undefined metrics", "",
            "These metrics are undefined (null in metrics.json, '-' in the tables): no evaluated item "
            "contributed to them, e.g. no ground-truth object in that size range or frequency group, "
            "so there was nothing to average.", "", *notes]


def write_report(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    path = Path(path)
    write_text(path, build_report(run_dirs))
    return path
