"""report.md section of the `vos` task: J&F per dataset with the published rows beside it, then J / F
mean, recall and decay per run and dataset, links to the per-sequence CSV and figure."""
from __future__ import annotations

import math
import os

import pandas as pd

from ...reference import vos_published
from ...reporting.entry import ReportEntry
from ...reporting.markdown import markdown_table

DETAIL = ("J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")


def _column(entry: ReportEntry) -> str:
    return f"{entry.dataset}/{entry.record.get('dataset', {}).get('split') or '-'}"


def _row_label(entry: ReportEntry) -> str:
    opts = entry.record.get("task_options", {})
    prompt = opts.get("prompt", "mask")
    prompt = f"{opts.get('clicks', 1)} click(s)" if prompt == "clicks" else prompt
    baseline = " [per-frame baseline, not this family's tracker]" if entry.metrics.get("baseline") else ""
    return f"{entry.run_label} ({prompt}){baseline}"


def _pct(value: float | None) -> float:
    return math.nan if value is None else 100.0 * value


def vos_report(title: str, entries: list[ReportEntry]) -> str:
    lines = [f"## {title}", ""]
    columns = list(dict.fromkeys(_column(e) for e in entries))
    rows: dict[str, dict[str, float]] = {}
    server = []
    for e in entries:
        if "J&F" not in e.metrics:
            server.append(f"{e.run_label}, {_column(e)}: submission in `{e.task_dir / 'predictions'}` "
                          f"(ground truth on the server: {e.record.get('dataset', {}).get('server', 'see the dataset page')})")
            continue
        rows.setdefault(_row_label(e), {})[_column(e)] = _pct(e.metrics.get("J&F"))
    published, sources = vos_published()["rows"], []
    for name, row in published.items():
        values = {c: v for c, v in row["values"].items() if c in columns}
        if values:
            rows[f"{name} (published)"] = values
            sources.append(f"{name}: {row['source']}")
    if rows:
        table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(float)
        table.index.name = "method"
        lines += ["### J&F (%) per dataset", "", markdown_table(table), "",
                  "J: region IoU; F: boundary F-measure, tolerance ceil(0.008 x diagonal) px; per object, then "
                  "averaged over objects; frames as each evaluator scores them (DAVIS: first and last frame "
                  "dropped; SA-V: first and last annotated frame dropped). Rows marked *per-frame baseline* "
                  "prompt an image model with its previous mask and are not that family's video result.", ""]
        if sources:
            lines += ["Published rows: " + "; ".join(sources) + ".", ""]
    detail = {f"{_row_label(e)} / {_column(e)}": {k: _pct(e.metrics.get(k)) for k in DETAIL}
              for e in entries if "J&F" in e.metrics}
    if detail:
        frame = pd.DataFrame.from_dict(detail, orient="index").reindex(columns=list(DETAIL)).astype(float)
        frame.index.name = "run / dataset"
        lines += ["### J and F: mean, recall (share of frames > 0.5), decay (first quarter - last quarter), %", "",
                  markdown_table(frame), ""]
        for e in entries:
            if "J&F" in e.metrics:
                where = e.report_dir or e.run_dir
                rel = os.path.relpath(e.task_dir, where)
                lines.append(f"- {_row_label(e)} / {_column(e)}: [per-sequence CSV]({rel}/sequences.csv), "
                             f"[per-object CSV]({rel}/objects.csv), [J&F per sequence]({rel}/jf_per_sequence.png)")
        lines.append("")
    if server:
        lines += ["Server-only splits (no local number):", ""] + [f"- {s}" for s in server]
    return "\n".join(lines).rstrip() + "\n"
