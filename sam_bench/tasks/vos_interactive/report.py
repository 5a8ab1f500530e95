"""report.md section of `vos_interactive`: J&F (%) after k interacted frames per setting, the
settings and open choices of every run under the table, and SAM 2's Fig. 5-style curves (J&F
against interacted frames; offline and online panels; one line per run, averaged over its datasets)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io import atomic_write
from ...reporting.entry import ReportEntry
from ...reporting.markdown import markdown_table

FIGURE = "figures/vos_interactive_curves.png"
# The open choices and what each value means, printed under the table.
CHOICES = {"frame_ties": "ties between frames of equal J go to the {} frame",
           "pass_start": "a pass re-propagates from {}",
           "propagate_each_click": "a full pass after every click of a frame: {}",
           "candidates": "frames that may be interacted with: {}"}


def _frames(entry: ReportEntry) -> int:
    return int(entry.record.get("task_options", {}).get("frames", 8))


def _label(entry: ReportEntry) -> str:
    baseline = " [per-frame baseline, not this family's tracker]" if entry.metrics.get("baseline") else ""
    return entry.run_label + baseline


def _settings(entry: ReportEntry) -> str:
    o: dict[str, Any] = entry.record.get("task_options", {})
    text = (f"{o.get('setting')}; first interaction: {o.get('first')}; up to {o.get('clicks_per_frame')} RITM clicks "
            f"per frame; {o.get('frames')} interacted frames")
    text += f"; clicks: {o.get('click_rule')}, center = distance-transform maximum [open]"
    if o.get("setting") == "online":
        text += (f"; pause where J < {o.get('threshold')}; [open] @k = the run that stops interacting after k "
                 "frames (the pass runs on without clicks before each pause)")
    else:
        text += "; " + "; ".join(f"[open] {what.format(o.get(name))}" for name, what in CHOICES.items()
                                 if name != "candidates")
    return (text + f"; [open] {CHOICES['candidates'].format(o.get('candidates'))}; [open] corrections: "
            f"{o.get('corrections')}; objects: {o.get('objects')}")


def curve_figure(curves: dict[str, list[float]], titles: tuple[str, ...] = ("",)) -> Any:
    """J&F (%) against interacted frames: one panel per title, `curves` keyed (title, label) or label."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    rows = max(1, len(curves) // max(1, len(titles)))
    fig = Figure(figsize=(5.2 * len(titles), 3.2 + 0.22 * rows))
    axes = fig.subplots(1, len(titles), squeeze=False)[0]
    for ax, title in zip(axes, titles):
        for key, values in curves.items():
            panel, label = key if isinstance(key, tuple) else ("", key)
            if panel == title:
                ax.plot(np.arange(1, len(values) + 1), 100 * np.asarray(values), marker="o", label=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title)
        ax.set_xlabel("interacted frames")
        ax.set_ylabel("J&F (%)")
        ax.grid(alpha=0.3)
        if ax.lines:  # below the axes: run labels are long
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    return fig


def _figure(entries: list[ReportEntry], report_dir: Path) -> str:
    """The curves over every run and setting; returns the markdown image line."""
    curves: dict[tuple[str, str], list[float]] = {}
    for setting in ("offline", "online"):
        mine = [e for e in entries if e.record.get("task_options", {}).get("setting") == setting]
        for run in dict.fromkeys(_label(e) for e in mine):
            runs = [e for e in mine if _label(e) == run]
            n = min(_frames(e) for e in runs)
            curves[(setting, f"{run} ({len(runs)} dataset{'s' if len(runs) > 1 else ''})")] = [
                float(np.mean([e.metrics[f"J&F@{k}"] for e in runs])) for k in range(1, n + 1)]
    fig = curve_figure(curves, ("offline", "online"))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    path = report_dir / FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buffer.getvalue()), mode="wb")
    return f"![J&F against interacted frames (SAM 2 Fig. 5 layout)]({FIGURE})"


def vos_interactive_report(title: str, entries: list[ReportEntry]) -> str:
    lines = [f"## {title}", ""]
    for setting in ("offline", "online"):
        mine = [e for e in entries if e.record.get("task_options", {}).get("setting") == setting]
        if not mine:
            continue
        n = max(_frames(e) for e in mine)
        table = pd.DataFrame(columns=[f"@{k}" for k in range(1, n + 1)] + ["mean", "clicks"])
        table.index.name = "dataset / run"
        for e in mine:
            m = e.metrics
            table.loc[f"{e.dataset} / {_label(e)}"] = (
                [100 * m[f"J&F@{k}"] if f"J&F@{k}" in m else None for k in range(1, n + 1)]
                + [100 * m["J&F"], m.get("clicks")])
        lines += [f"### {setting.capitalize()}: J&F (%) after k interacted frames", "",
                  markdown_table(table.astype(float)), ""]
        settings = {_label(e): _settings(e) for e in mine}
        if len(set(settings.values())) == 1:
            lines += [f"Settings (every run): {next(iter(settings.values()))}.", ""]
        else:
            lines += [f"Settings of {run}: {text}." for run, text in settings.items()] + [""]
    lines += ["mean: J&F averaged over 1..N interacted frames (SAM 2's summary number); clicks: mean per "
              "object, all frames. Scored over the whole video with the `vos` rules (each dataset's "
              "frames); J@k and F@k are in metrics.json. A per-frame baseline (image-only families) is "
              "labelled as such and is not that family's video result.", ""]
    report_dir = next((e.report_dir for e in entries if e.report_dir is not None), entries[0].run_dir)
    lines.append(_figure(entries, report_dir))
    return "\n".join(lines) + "\n"
