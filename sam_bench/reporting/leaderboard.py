"""`sam-bench leaderboard DIR ...`: one self-contained HTML page, a sortable table per suite.

One row per run directory: model, checkpoint, settings, every headline metric of every task of
the suite with its 95% interval (a header row names the task and dataset over its metrics),
throughput, and a link to the run's own report; under each table the accuracy-against-speed
charts, one per headline metric (PNG embedded as base64). Sorting is a few lines of inline script
(click a column header; click again to reverse); `#sort=<table>:<column>` in the address opens
the page sorted, e.g. `board.html#sort=0:3` (columns counted in the last header row).
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from ..io import write_text
from ..plugins import load_plugins
from .entry import ReportEntry, section_order
from .evidence import scaled, with_interval
from .speed import headline_of, pareto_charts, speed_of
from .terminal import lower_is_better
from .writer import collect_entries

SORT_SCRIPT = """
const columnsRow = table => table.tHead.rows[table.tHead.rows.length - 1];
function sortTable(table, column, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => r.cells[column].dataset.sort;
  const numeric = rows.every(r => key(r) === "" || !isNaN(parseFloat(key(r))));
  rows.sort((a, b) => {
    let x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");  // runs without a value last, either way
    if (numeric) { x = parseFloat(x); y = parseFloat(y); }
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
  rows.forEach(r => body.appendChild(r));
  Array.from(columnsRow(table).cells).forEach((th, k) =>
    th.setAttribute("aria-sort", k === column ? (descending ? "descending" : "ascending") : "none"));
}
document.querySelectorAll("table.board").forEach(table => {
  Array.from(columnsRow(table).cells).forEach((th, column) => th.addEventListener("click", () =>
    // the first click puts the best first: highest, or lowest where fewer is better (NoC)
    sortTable(table, column, th.getAttribute("aria-sort") === "none" ? !("lowerIsBetter" in th.dataset)
                                                                     : th.getAttribute("aria-sort") !== "descending")));
});
const wanted = /^#sort=(\\d+):(\\d+)$/.exec(location.hash);
if (wanted) columnsRow(document.querySelectorAll("table.board")[+wanted[1]]).cells[+wanted[2]].click();
"""

STYLE = ("body{font-family:sans-serif;max-width:90em;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em}"
         "th{cursor:pointer;background:#eef;text-align:left}th[aria-sort=ascending]::after{content:' \\25B2'}"
         "th[aria-sort=descending]::after{content:' \\25BC'}th.group{cursor:default;text-align:center}"
         "td.num{text-align:right;white-space:nowrap}td.text{text-align:left}img{max-width:48%;margin:.5em}"
         "div.wide{overflow-x:auto}")  # a suite's many metric columns scroll inside their box


def _suite_of(entry: ReportEntry) -> str:
    """The suite that ran this result (OUT/suite.json), else 'single runs'."""
    path = entry.run_dir / "suite.json"
    try:
        record = json.loads(path.read_text()).get(f"{entry.task_dir.parent.name}/{entry.dataset}", {})
        return record.get("suite") or "single runs"
    except (OSError, ValueError):
        return "single runs"


def _cell(text: str, sort: object, numeric: bool) -> str:
    return (f'<td class="{"num" if numeric else "text"}" data-sort="{html.escape(str(sort), quote=True)}">'
            f"{text}</td>")


def _checkpoint(entry: ReportEntry) -> str:
    model = entry.record.get("model", {})
    path = entry.record.get("config", {}).get("checkpoint")
    sha = model.get("checkpoint_sha256") or model.get("weights_sha256") or ""
    name = Path(path).name if path else ("random weights" if model.get("untrained") else "none (weight-free)")
    return f"{name} ({sha[:12]})" if sha else name


def _settings(entry: ReportEntry) -> str:
    config = entry.record.get("config", {})
    speed = speed_of(entry)
    parts = [config.get("precision", "fp32"), "compiled" if config.get("compile") else "eager",
             f"batch {speed.get('batch_size') or config.get('batch_size') or '-'}"]
    args = config.get("model_args") or {}
    parts += [f"{k}={v}" for k, v in sorted(args.items())]
    return ", ".join(parts)


def _throughput(entries: Sequence[ReportEntry]) -> tuple[Optional[float], str]:
    """Images per second over all of a run's tasks in the suite (images / evaluation seconds)."""
    images = seconds = 0.0
    devices = set()
    for e in entries:
        s = speed_of(e)
        if s.get("images_per_second"):
            images += s["images_timed"]
            seconds += s["images_timed"] / s["images_per_second"]
            devices.add(s.get("device_name", "?"))
    return (images / seconds if seconds else None), ", ".join(sorted(devices)) or "-"


def _data_summary(entries: Sequence[ReportEntry]) -> str:
    """`synthetic data; 2 images per task; --limit 2`: what every task of the run evaluated."""
    images = sorted({e.record.get("images") for e in entries if e.record.get("images") is not None})
    limits = sorted({e.record.get("config", {}).get("limit") for e in entries} - {None})
    parts = ["synthetic data"] if any(e.record.get("dataset", {}).get("synthetic") for e in entries) else []
    if images:
        parts.append(f"{images[0]}{'' if len(images) == 1 else f'-{images[-1]}'} images per task")
    parts += [f"--limit {limit}" for limit in limits]
    return "; ".join(parts)


def _link(run_dir: Path, base: Path) -> str:
    report = run_dir / "report.md"
    if not report.exists():
        return "-"
    rel = Path(os.path.relpath(report.resolve(), base.resolve())).as_posix()
    return f'<a href="{html.escape(rel, quote=True)}">{html.escape(run_dir.name)}</a>'


def suite_table(suite: str, entries: list[ReportEntry], base: Path) -> str:
    groups: dict[tuple[str, str], list[ReportEntry]] = {}
    for e in entries:
        groups.setdefault((e.task_dir.parent.name, e.dataset), []).append(e)
    protocol = {key: group[0].record.get("config", {}).get("task") or key[0] for key, group in groups.items()}
    # (definition, dataset) in the report's order -> the headline metrics some run has: one column each
    columns = {key: metrics for key in sorted(groups, key=lambda k: (section_order(protocol[k]), k))
               if (metrics := headline_of(protocol[key], groups[key]))}
    runs = list(dict.fromkeys(e.run_dir for e in entries))
    rows = []
    for run_dir in runs:
        mine = {(e.task_dir.parent.name, e.dataset): e for e in entries if e.run_dir == run_dir}
        first = next(iter(mine.values()))
        cells = [_cell(html.escape(first.record["model"]["label"]), first.record["model"]["label"], False),
                 _cell(html.escape(_checkpoint(first)), _checkpoint(first), False),
                 _cell(html.escape(_settings(first)), _settings(first), False)]
        data = _data_summary(list(mine.values()))
        cells.append(_cell(html.escape(data), data, False))
        for key, metrics in columns.items():
            e = mine.get(key)
            for metric in metrics:
                value = None if e is None else scaled(metric, e.metrics.get(metric))
                text = "-" if e is None or metric not in e.metrics else html.escape(with_interval(e, metric))
                cells.append(_cell(text, "" if value is None else value, True))
        rate, device = _throughput(list(mine.values()))
        cells += [_cell("-" if rate is None else f"{rate:.3g}", "" if rate is None else rate, True),
                  _cell(html.escape(device), device, False), _cell(_link(run_dir, base), run_dir.name, False)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tasks = "".join(f'<th class="group" colspan="{len(metrics)}">{html.escape(f"{key[0]} / {key[1]}")}</th>'
                    for key, metrics in columns.items())
    groups_row = f'<tr><th class="group" colspan="4">run</th>{tasks}<th class="group" colspan="3"></th></tr>'
    names = [(name, name) for name in ("model", "checkpoint", "settings", "data")]
    names += [(metric, f"{key[0]} / {key[1]}: {metric}") for key, metrics in columns.items() for metric in metrics]
    names += [(name, name) for name in ("img/s", "device", "report")]
    header = "".join(f'<th aria-sort="none" title="{html.escape(title, quote=True)}"'
                     f'{" data-lower-is-better" if lower_is_better(name) else ""}>{html.escape(name)}</th>'
                     for name, title in names)
    charts = []
    for chart in pareto_charts(entries):
        buf = io.BytesIO()
        chart.figure().savefig(buf, format="png", dpi=90)
        data64 = base64.b64encode(buf.getvalue()).decode()
        charts.append(f'<img alt="accuracy against speed: {html.escape(chart.caption, quote=True)}" '
                      f'src="data:image/png;base64,{data64}">')
    return (f"<h2>{html.escape(suite)}</h2>\n<div class=\"wide\"><table class=\"board\"><thead>{groups_row}"
            f"<tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>\n" + "\n".join(charts))


def build_leaderboard(run_dirs: Sequence[Path], base: Path) -> str:
    load_plugins()
    entries = [e for group in collect_entries(run_dirs).values() for e in group]
    suites: dict[str, list[ReportEntry]] = {}
    for e in entries:
        suites.setdefault(_suite_of(e), []).append(e)
    sections = [suite_table(name, group, base) for name, group in sorted(suites.items())]
    note = ("<p>Values: every headline metric of each task with its 95% bootstrap interval (fractions in %); "
            "img/s over all of a run's tasks in the suite; one accuracy-against-speed chart per headline metric "
            "under each table. Click a column header to sort.</p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>sam-bench leaderboard</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>sam-bench leaderboard</h1>\n{note}\n"
            + "\n".join(sections) + f"\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")


def write_leaderboard(run_dirs: Sequence[Path], out: str | Path) -> Path:
    out = Path(out)
    write_text(out, build_leaderboard(run_dirs, out.parent))
    return out
