"""SA-23 summary of the point protocol: SAM 2's Table 6 layout, Fig. 9a deltas and Fig. 9c curves.

The 23 datasets and their image / video grouping come from `tasks/suites/sa23.yaml`. A mean over
fewer than 23 datasets is never printed as the SA-23 number: the table then says "k of 23", names
what is missing, and gives the mean of the present datasets in its own, labelled line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..reference import NOT_STATED, checkpoint, paper, protocol_differences, published_label, sa23_published
from ..taskdefs import expand, get_suite, paper_label
from .entry import ReportEntry
from .markdown import markdown_table

SUITE = "sa23"
FIGURE_DIR = "figures"


def sa23_datasets() -> tuple[list[str], dict[str, list[str]], str]:
    """The suite's datasets in order, its groups (image / video) and where the grouping comes from."""
    suite = get_suite(SUITE)
    return [i.definition.dataset for i in expand(SUITE)], suite.groups, suite.groups_source


def _miou(entry: ReportEntry, clicks: int) -> Optional[float]:
    value = entry.metrics.get(f"mIoU@{clicks}")
    return None if value is None else 100.0 * float(value)


def _cell(values: dict[str, tuple[Optional[float], Optional[float]]], members: list[str]) -> str:
    """"1-click (5-click)" mean over `members`, or "k of N" when some did not run."""
    present = [d for d in members if d in values and values[d][0] is not None]
    if len(present) < len(members):
        return f"{len(present)} of {len(members)}"
    one = np.mean([values[d][0] for d in members])
    five = [values[d][1] for d in members]
    return f"{one:.1f} ({np.mean(five):.1f})" if all(v is not None for v in five) else f"{one:.1f} (-)"


def _runs_table(runs: list[str], values: dict, columns: list[tuple[str, list[str]]],
                header: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(columns=header)
    table.index.name = "model: mIoU 1-click (5-click)"
    for run in runs:
        table.loc[run] = [_cell(values[run], members) for _, members in columns]
    return table


def _protocol_differences(published: dict, entries: list[ReportEntry]) -> list[str]:
    """How a run's point settings differ from the published rows' protocol (empty: same)."""
    stated = published.get("protocol", {})
    return sorted({d for e in entries for d in protocol_differences(stated, {"first_click": first_click(e)})})


def first_click(entry: ReportEntry) -> str:
    """The first-click rule a point run used (center: the default, and what older runs used)."""
    return entry.record.get("task_options", {}).get("first_click", "center")


def sa23_section(entries: list[ReportEntry], report_dir: Path) -> str:
    """Markdown of the SA-23 summary for the point entries (empty when none is an SA-23 dataset)."""
    datasets, groups, groups_source = sa23_datasets()
    mine = [e for e in entries if e.dataset in datasets]
    if not mine:
        return ""
    runs = list(dict.fromkeys(e.run_label for e in mine))
    values = {run: {e.dataset: (_miou(e, 1), _miou(e, 5)) for e in mine if e.run_label == run} for run in runs}
    columns = [("all", datasets)] + [(name, members) for name, members in groups.items()]
    header = [f"SA-23 {name} ({len(members)})" for name, members in columns]
    published = sa23_published()
    # The published means are of one protocol (center first click): only runs of that protocol sit
    # beside them; a run of another first click gets a table of its own.
    differs = {run: _protocol_differences(published, [e for e in mine if e.run_label == run]) for run in runs}
    comparable = [run for run in runs if not differs[run]]
    lines = ["## SA-23 summary (single point, SAM 2 Table 6 layout)", ""]
    if comparable:
        table = _runs_table(comparable, values, columns, header)
        for name, row in published["rows"].items():
            cells = [f"{row[2 * k]:.1f} ({row[2 * k + 1]:.1f})" if row[2 * k] is not None else "-"
                     for k in range(min(len(columns), len(row) // 2))]
            label = published_label(name, published.get("checkpoints", {}).get(name, NOT_STATED))
            table.loc[label] = cells + ["-"] * (len(columns) - len(cells))
        lines += [markdown_table(table), "",
                  f"Published rows: {published['source']}. Checkpoints: "
                  f"{published.get('checkpoint_note', 'as named in each row')} Their protocol: "
                  f"{published.get('protocol', {}).get('text', 'as in the SAM paper')}."]
    other = [run for run in runs if differs[run]]
    if other:
        lines += ([""] if comparable else []) + [markdown_table(_runs_table(other, values, columns, header)), "",
                  "Runs of another protocol than the published rows' ("
                  + "; ".join(f"{run}: {', '.join(differs[run])}" for run in other)
                  + "): the published rows are not put beside them, their numbers would not be comparable."]
    lines += ["", f"Image / video grouping: {groups_source} (lists in tasks/suites/{SUITE}.yaml)."]
    for run in runs:
        missing = [d for d in datasets if d not in values[run]]
        if missing:
            present = [d for d in datasets if d in values[run]]
            one = np.mean([values[run][d][0] for d in present])
            lines += ["", f"**{run}: {len(present)} of {len(datasets)} SA-23 datasets ran; not an SA-23 number.** "
                          f"Missing: {', '.join(missing)}. Mean mIoU@1 of the {len(present)} present "
                          f"(for orientation only): {one:.1f}."]
    lines += _mean_intervals(mine, runs, datasets)
    figures = [_fig9a(mine, runs, report_dir, paper_beside=not other), _fig9c(mine, runs, datasets, report_dir)]
    links = [f"![{alt}]({rel})" for alt, rel in figures if rel]
    if links:
        lines += [""] + links
    if len(runs) < 2:
        lines += ["", "Fig. 9a (per-dataset mIoU@1 deltas) needs a reference run: "
                      "`sam-bench report RUN REFERENCE_RUN`."]
    return "\n".join(lines) + "\n"


def _mean_intervals(entries: list[ReportEntry], runs: list[str], datasets: list[str]) -> list[str]:
    """95% interval of each run's mean over its datasets, objects resampled within each dataset."""
    from ..metrics.bootstrap import DEFAULT_RESAMPLES, stratified_mean
    from .evidence import load_units

    lines = []
    for run in runs:
        mine = [e for e in entries if e.run_label == run]
        units = [load_units(e) for e in mine]
        n = mine[0].record.get("config", {}).get("ci", DEFAULT_RESAMPLES)
        if not n or any(u is None for u in units):
            continue
        seed = int(mine[0].record.get("config", {}).get("seed", 0))
        what = "SA-23 all" if len(mine) == len(datasets) else f"mean of the {len(mine)} present datasets"
        cells = []
        for clicks in (1, 5):
            if all(f"mIoU@{clicks}" in u.data for u in units):
                value, low, high = stratified_mean(units, f"mIoU@{clicks}", n, seed)  # type: ignore[arg-type]
                if low is not None and high is not None:
                    cells.append(f"{clicks}-click {100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]")
        if cells:
            lines.append(f"- {run}, {what}: " + "; ".join(cells))
    if not lines:
        return []
    return ["", "95% intervals of the mean over datasets (objects resampled within each dataset, each dataset "
                "keeping its size):", "", *lines]


def _fig9a(entries: list[ReportEntry], runs: list[str], report_dir: Path,
           paper_beside: bool) -> tuple[str, Optional[str]]:
    """Per-dataset mIoU@1 of each run minus the first run, the paper's SAM-minus-RITM beside when
    every run has the paper's protocol (center first click)."""
    alt = "Fig. 9a: mIoU@1 deltas per dataset"
    if len(runs) < 2:
        return alt, None
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(e.dataset for e in entries))
    by = {(e.run_label, e.dataset): _miou(e, 1) for e in entries}
    deltas = paper()["point_single_center_delta_vs_ritm"]
    series = {f"{run} − {runs[0]}": [_delta(by.get((run, d)), by.get((runs[0], d))) for d in datasets]
              for run in runs[1:]}
    if paper_beside:
        series[f"paper: SAM ({checkpoint(paper(), 'point_single_center_delta_vs_ritm', 'SAM')}) − RITM"] = [
            deltas.get(paper_label(d) or "", np.nan) for d in datasets]
    fig = Figure(figsize=(max(5.0, 0.45 * len(datasets) + 2), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(len(datasets))
    for k, (label, ys) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, ys, width, label=label)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, [paper_label(d) or d for d in datasets], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("Δ IoU at 1 point")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return alt, _save(fig, report_dir, "fig9a_miou1_deltas.png")


def _delta(a: Optional[float], b: Optional[float]) -> float:
    return np.nan if a is None or b is None else a - b


def _fig9c(entries: list[ReportEntry], runs: list[str], datasets: list[str],
           report_dir: Path) -> tuple[str, Optional[str]]:
    """Mean mIoU over the SA-23 datasets present, after 1..9 points, one line per run."""
    from matplotlib.figure import Figure

    clicks = list(range(1, 10))
    fig = Figure(figsize=(4.8, 3.4))
    ax = fig.add_subplot()
    for run in runs:
        mine = [e for e in entries if e.run_label == run]
        curve = []
        for n in clicks:  # NaN where some dataset stopped before n points (max_clicks < n)
            values = [_miou(e, n) for e in mine]
            curve.append(np.mean(values) if all(v is not None for v in values) else np.nan)
        ax.plot(clicks, curve, marker="o", label=f"{run} ({len(mine)} of {len(datasets)})")
    ax.set_xlabel("number of points")
    ax.set_ylabel("mean mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return "Fig. 9c: mIoU after N points", _save(fig, report_dir, "fig9c_miou_curves.png")


def _save(fig, report_dir: Path, name: str) -> str:
    path = report_dir / FIGURE_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"{FIGURE_DIR}/{name}"
