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
from .entry import ReportEntry, section_order


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
            # null (undefined) -> NaN: sections compute with it and tables print it as "-"
            metrics = {k: float("nan") if v is None else v for k, v in json.loads(metrics_path.read_text()).items()}
            entries.setdefault(protocol, []).append(ReportEntry(
                run_label=labels[(Path(run_dir), key)], run_dir=Path(run_dir), dataset=dataset,
                metrics=metrics, record=record, task_dir=task_dir, report_dir=report_dir))
    return entries


def _run_labels(run_dirs: Sequence[Path]) -> dict[tuple[Path, str], str]:
    """Column names: the run's --label or the model's label, made unique with the directory name;
    a task definition's variant (e.g. "single output") is appended so its rows stay apart."""
    raw, variants = {}, {}
    for run_dir in run_dirs:
        for key, record in read_run_json(run_dir).get("tasks", {}).items():
            raw[(Path(run_dir), key)] = record["config"].get("label") or record["model"]["label"]
            if record.get("dataset", {}).get("synthetic"):  # in every row and column it names
                raw[(Path(run_dir), key)] += " (synthetic data)"
            variants[(Path(run_dir), key)] = (record["config"].get("definition") or {}).get("variant")
    by_label: dict[str, set[Path]] = {}
    for (run_dir, _), label in raw.items():
        by_label.setdefault(label, set()).add(run_dir)
    labels = {}
    for k, label in raw.items():
        label = f"{label} [{k[0].name}]" if len(by_label[label]) > 1 else label
        labels[k] = f"{label} ({variants[k]})" if variants[k] else label
    return labels


def build_report(run_dirs: Sequence[str | Path], report_dir: str | Path) -> str:
    """Markdown of the report that will sit in `report_dir` (figures are written below it)."""
    from .evidence import data_description, evidence_section
    from .sa23 import sa23_section
    from .speed import speed_section

    load_plugins()
    run_dirs = [Path(d) for d in run_dirs]
    report_dir = Path(report_dir)
    entries = collect_entries(run_dirs, report_dir)
    lines = ["# sam-bench report", ""]
    lines += ["| run | model | checkpoint sha256 | data | device, precision | images/s | finished |",
              "|---|---|---|---|---|---|---|"]
    for run_dir in run_dirs:
        for key, rec in sorted(read_run_json(run_dir).get("tasks", {}).items()):
            sha = rec["model"].get("checkpoint_sha256") or rec["model"].get("weights_sha256") or "-"
            entry = next((e for group in entries.values() for e in group
                          if e.run_dir == run_dir and e.task_dir == run_dir / key), None)
            data = data_description(entry) if entry else "no metrics.json"
            rate = (rec.get("speed") or {}).get("images_per_second")
            lines.append(f"| {run_dir.name}: {key} | {rec['model']['label']} | {sha[:12]} | {data} | "
                         f"{_compute(rec)} | {'-' if rate is None else f'{rate:.3g}'} | {rec['finished']} |")
    if any(rec.get("dataset", {}).get("synthetic") for d in run_dirs
           for rec in read_run_json(d).get("tasks", {}).values()):
        lines += ["", "Rows marked *synthetic data* ran on images sam-bench generated (the demo): they test the "
                      "pipeline and are not comparable to any published number."]
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
        lines += [evidence_section(entries[task], TASKS.get(task).headline_metrics, report_dir).rstrip()]
    lines += speed_section(entries, report_dir)
    lines += undefined_notes(entries)
    return "\n".join(lines) + "\n"


def undefined_notes(entries: dict[str, list[ReportEntry]]) -> list[str]:
    """Say which numbers are undefined and why, instead of leaving a bare '-'."""
    notes = [f"- {e.run_label}, {task}/{e.dataset}: {', '.join(names)}"
             for task, group in entries.items() for e in group
             if (names := [k for k, v in e.metrics.items()
                           if isinstance(v, float) and v != v and not k.endswith(("_ci_low", "_ci_high"))])]
    if not notes:
        return []
    return ["", "## Undefined metrics", "",
            "These metrics are undefined (null in metrics.json, '-' in the tables): no evaluated item "
            "contributed to them, e.g. no ground-truth object in that size range or frequency group, "
            "so there was nothing to average.", "", *notes]


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
