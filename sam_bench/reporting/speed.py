"""Accuracy against speed: run.json's speed records as a table and Pareto charts.

A chart compares runs of one task definition on one dataset measured on one kind of device (the
device name run.json records: a GPU model, or the CPU model and thread count); runs on other
devices get their own chart, since images per second on two machines say nothing about the models.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..registry import TASKS
from .entry import ReportEntry
from .evidence import scaled

FIGURE_DIR = "figures"


def speed_of(entry: ReportEntry) -> dict:
    return entry.record.get("speed") or {}


def _number(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def speed_table(entries: Sequence[ReportEntry]) -> list[str]:
    lines = ["| task / dataset / run | device | precision | compiled | prompt batch | encoder img/s | "
             "prompt-stage img/s | img/s | peak memory (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        s = speed_of(e)
        if not s:
            continue
        memory = s.get("peak_memory_bytes")
        lines.append(f"| {e.task_dir.parent.name} / {e.dataset} / {e.run_label} | {s.get('device_name', '-')} | "
                     f"{s.get('precision', '-')} | {'yes' if s.get('compile') else 'no'} | {s.get('batch_size') or '-'} | "
                     f"{_number(s.get('encoder_images_per_second'))} | {_number(s.get('prompt_images_per_second'))} | "
                     f"{_number(s.get('images_per_second'))} | {'-' if memory is None else f'{memory / 2**20:.0f}'} |")
    return lines if len(lines) > 2 else []


def pareto_groups(entries: Sequence[ReportEntry]) -> dict[tuple[str, str, str, str], list[ReportEntry]]:
    """(protocol, definition, dataset, device) -> entries with a measured rate; two or more only."""
    groups: dict[tuple[str, str, str, str], list[ReportEntry]] = {}
    for e in entries:
        s = speed_of(e)
        if s.get("images_per_second"):
            protocol = e.record.get("config", {}).get("task") or e.task_dir.parent.name
            key = (protocol, e.task_dir.parent.name, e.dataset, s.get("device_name", "?"))
            groups.setdefault(key, []).append(e)
    return {k: v for k, v in groups.items() if len({e.run_label for e in v}) > 1}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both speed and accuracy, fastest first."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(entries: Sequence[ReportEntry], metric: str, title: str):
    """Matplotlib Figure: accuracy (with its interval) against images per second, front drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.8))
    ax = fig.add_subplot()
    points = []
    for e in entries:
        x, y = speed_of(e)["images_per_second"], scaled(metric, e.metrics.get(metric))
        if y is None:
            continue
        low, high = (scaled(metric, e.metrics.get(f"{metric}_ci_{k}")) for k in ("low", "high"))
        yerr = None if low is None or high is None else [[y - low], [high - y]]
        ax.errorbar([x], [y], yerr=yerr, marker="o", capsize=3, linestyle="none", label=e.run_label)
        points.append((x, y))
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="grey", linestyle="--",
                linewidth=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("images per second (whole evaluation, log scale)")
    ax.set_ylabel(metric + (" (%)" if scaled(metric, 0.5) == 50 else ""))
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def chart_name(key: tuple[str, ...], metric: str) -> str:
    return "pareto_" + re.sub(r"[^A-Za-z0-9]+", "_", "_".join([*key[1:3], metric])).strip("_") + ".png"


def speed_section(entries: dict[str, list[ReportEntry]], report_dir: Path) -> list[str]:
    everything = [e for group in entries.values() for e in group]
    table = speed_table(everything)
    if not table:
        return []
    lines = ["", "## Accuracy against speed", "", *table, "",
             "Rates count the images evaluated in the run's last process (a resumed run's earlier images are "
             "not timed); encoder = image embedding, prompt stage = the rest of each image's evaluation."]
    for key, group in pareto_groups(everything).items():
        metrics = getattr(TASKS.get(key[0]), "headline_metrics", ()) if key[0] in TASKS else ()
        for metric in [m for m in metrics if any(m in e.metrics for e in group)][:1]:
            fig = pareto_figure(group, metric, f"{key[1]} / {key[2]} on {key[3]}")
            path = report_dir / FIGURE_DIR / chart_name(key, metric)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
            lines += ["", f"![accuracy against speed: {key[1]} / {key[2]}, {metric}, {key[3]}]"
                          f"({FIGURE_DIR}/{path.name})"]
    return lines
