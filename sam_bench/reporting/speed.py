"""Accuracy against speed: run.json's speed records as a table and Pareto charts.

A chart compares runs of one task definition on one dataset measured on one kind of device (the
device name run.json records: a GPU model, or the CPU model and thread count); runs on other
devices get their own chart, since images per second on two machines say nothing about the models.
Each such group gets one chart per headline metric of its task (Task.headline_metrics).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..registry import TASKS
from .entry import ReportEntry, section_order
from .evidence import headline, scaled
from .terminal import lower_is_better

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


def headline_of(protocol: str, entries: Sequence[ReportEntry]) -> list[str]:
    """The task's headline metrics that some entry has (as the report's evidence table lists them)."""
    return headline(entries, TASKS.get(protocol).headline_metrics if protocol in TASKS else ())


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


def pareto_front(points: Sequence[tuple[float, float]], lower_better: bool = False) -> list[int]:
    """Indices of the points no other point beats on both speed and accuracy, fastest first
    (accuracy: the larger y, or the smaller where `lower_better`)."""
    sign = -1.0 if lower_better else 1.0
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -sign * points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if sign * points[i][1] > best:
            front.append(i)
            best = sign * points[i][1]
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
    front = pareto_front(points, lower_is_better(metric))
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="grey", linestyle="--",
                linewidth=1, label="Pareto front")
    ax.set_xscale("log")
    _plain_log_ticks(ax, [x for x, _ in points])
    ax.set_xlabel("images per second (whole evaluation, log scale)")
    ax.set_ylabel(metric + (" (%)" if scaled(metric, 0.5) == 50 else "")
                  + (", lower is better" if lower_is_better(metric) else ""))
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax, rates: Sequence[float]) -> None:
    """Tick labels as plain numbers (0.2, 30): every tick over less than a decade of rates, the 2s and
    5s between powers of ten over up to three decades, the powers of ten only beyond (no overlaps)."""
    from matplotlib.ticker import FuncFormatter

    decades = np.log10(max(rates) / min(rates)) if rates else 0.0
    kept = range(1, 10) if decades < 1 else (2, 5) if decades < 3 else ()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(
        lambda value, _: f"{value:g}" if round(value / 10 ** np.floor(np.log10(value))) in kept else ""))


class ParetoChart(NamedTuple):
    """One accuracy-against-speed chart: one headline metric of one (protocol, definition, dataset,
    device) group."""

    key: tuple[str, str, str, str]
    metric: str
    entries: list[ReportEntry]

    @property
    def caption(self) -> str:
        return f"{self.key[1]} / {self.key[2]}: {self.metric}"

    @property
    def file_name(self) -> str:
        """pareto_<definition>_<dataset>_<metric>_<device>.png: the device too, each device has its chart."""
        parts = [*self.key[1:3], self.metric, self.key[3]]
        return "pareto_" + re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_") + ".png"

    def figure(self):
        return pareto_figure(self.entries, self.metric, f"{self.caption} on {self.key[3]}")


def pareto_charts(entries: Sequence[ReportEntry]) -> list[ParetoChart]:
    """Every group's charts in the report's order, one per headline metric that two or more runs of the
    group have a value of."""
    charts = []
    for key, group in sorted(pareto_groups(entries).items(), key=lambda item: (section_order(item[0][0]), item[0])):
        charts += [ParetoChart(key, metric, group) for metric in headline_of(key[0], group)
                   if sum(scaled(metric, e.metrics.get(metric)) is not None for e in group) > 1]
    return charts


def speed_section(entries: dict[str, list[ReportEntry]], report_dir: Path) -> list[str]:
    everything = [e for group in entries.values() for e in group]
    table = speed_table(everything)
    if not table:
        return []
    lines = ["", "## Accuracy against speed", "", *table, "",
             "Rates count the images evaluated in the run's last process (a resumed run's earlier images are "
             "not timed); encoder = image embedding, prompt stage = the rest of each image's evaluation. "
             "One chart per headline metric; the dashed line joins the runs no other run beats on both axes."]
    previous = None
    for chart in pareto_charts(everything):
        path = report_dir / FIGURE_DIR / chart.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        chart.figure().savefig(path, dpi=100)
        if chart.key != previous:  # a group's charts in one paragraph: side by side
            lines.append("")
            previous = chart.key
        lines.append(f"![accuracy against speed: {chart.caption}, {chart.key[3]}]({FIGURE_DIR}/{path.name})")
    return lines
