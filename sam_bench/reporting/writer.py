"""The report: one section per task in the paper's order, one column (or row) per run, the
paper's rows beside them; the SA-23 summary and Fig. 9 figures before the point section."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..io import write_text
from ..metadata import read_run_json
from ..plugins import load_plugins
from ..registry import TASKS
from .entry import ReportEntry


def collect_entries(run_dirs: Sequence[Path], report_dir: Path | None = None) -> dict[str, list[ReportEntry]]:
    """Every finished result in the given run directories, by protocol (registered task name)."""
    entries: dict[str, list[ReportEntry]] = {}
    labels = _run_labels(run_dirs)
    for run_dir in run_dirs:
        for key, record in sorted(read_run_json(run_dir).get("tasks", {}).items()):
            name, dataset = key.split("/", 1)
            task_dir = Path(run_dir) / name / dataset
            metrics_path = task_dir / "metrics.json"
            if not metrics_path.exists():
                continue
            protocol = record["config"].get("task") or name
            entries.setdefault(protocol, []).append(ReportEntry(
                run_label=labels[(Path(run_dir), key)], run_dir=Path(run_dir), dataset=dataset,
                metrics=json.loads(metrics_path.read_text()), record=record, task_dir=task_dir,
                report_dir=report_dir))
    return entries


def _run_labels(run_dirs: Sequence[Path]) -> dict[tuple[Path, str], str]:
    """Column names: the run's --label or the model's label, made unique with the directory name;
    a task definition's variant (e.g. "single output") is appended so its rows stay apart."""
    raw, variants = {}, {}
    for run_dir in run_dirs:
        for key, record in read_run_json(run_dir).get("tasks", {}).items():
            raw[(Path(run_dir), key)] = record["config"].get("label") or record["model"]["label"]
            variants[(Path(run_dir), key)] = (record["config"].get("definition") or {}).get("variant")
    by_label: dict[str, set[Path]] = {}
    for (run_dir, _), label in raw.items():
        by_label.setdefault(label, set()).add(run_dir)
    labels = {}
    for k, label in raw.items():
        label = f"{label} [{k[0].name}]" if len(by_label[label]) > 1 else label
        labels[k] = f"{label} ({variants[k]})" if variants[k] else label
    return labels


def section_order(protocol: str) -> tuple:
    """The paper's order (§7.1 .. §7.5), then tasks without a paper section by name."""
    return (getattr(TASKS.get(protocol), "paper_section", (99,)), protocol)


def build_report(run_dirs: Sequence[str | Path], report_dir: str | Path) -> str:
    """Markdown of the report that will sit in `report_dir` (figures are written below it)."""
    from .sa23 import sa23_section

    load_plugins()
    run_dirs = [Path(d) for d in run_dirs]
    report_dir = Path(report_dir)
    entries = collect_entries(run_dirs, report_dir)
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
    for task in sorted(entries, key=section_order):
        if task == "point":
            summary = sa23_section(entries[task], report_dir)
            if summary:
                lines += ["", summary.rstrip()]
        lines += ["", TASKS.get(task).report_section(entries[task]).rstrip()]
    return "\n".join(lines) + "\n"


def _compute(record: dict) -> str:
    """Where and how the model ran: device, precision (autocast dtype), compiled or not."""
    config = record.get("config", {})
    compiled = ", compiled" if record["model"].get("compiled") else ""
    return f"{record['device']}, {config.get('precision', 'fp32')}{compiled}"


def write_report(run_dirs: Sequence[str | Path], path: str | Path, fmt: str = "md") -> Path:
    """Write the report as Markdown (default), self-contained HTML, LaTeX tables or CSV numbers."""
    from .formats import to_csv, to_html, to_latex

    path = Path(path)
    text = build_report(run_dirs, path.parent)
    if fmt == "md":
        write_text(path, text)
    elif fmt == "html":
        write_text(path, to_html(text, path.parent))
    elif fmt == "latex":
        write_text(path, to_latex(text))
    elif fmt == "csv":
        write_text(path, to_csv(text, collect_entries([Path(d) for d in run_dirs])))
    else:
        raise ValueError(f"unknown report format {fmt!r}")
    return path
