"""report.md section of the `concepts` task: SA-Co per-subset tables with the subset average as SAM 3
reports it (the plain mean over subsets; a partial set says "k of N" instead), published rows beside;
COCO / LVIS noun-phrase tables; the crowd rule and the source of every run under them."""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from ...reference import saco
from ...reporting.entry import ReportEntry
from ...reporting.markdown import markdown_table

SACO = {"saco_gold": "gold", "saco_silver": "silver"}
SUMMARY = ("cgF1", "IL_MCC", "pmF1")  # SAM 3's three numbers: percent, fraction, percent
DETAIL = ("cgF1", "cgF1@0.5", "cgF1@0.75", "pmF1", "IL_MCC", "IL_precision", "IL_recall", "IL_F1",
          "precision", "recall")


def _scaled(metrics: dict[str, float], name: str) -> Optional[float]:
    value = metrics.get(name)
    if value is None or pd.isna(value):
        return None
    return float(value) if name == "IL_MCC" else 100.0 * float(value)


def _subset(entry: ReportEntry) -> str:
    return str(entry.record.get("config", {}).get("split") or entry.record.get("dataset", {}).get("split") or "-")


def _row_label(entry: ReportEntry) -> str:
    crowd = entry.record.get("task_options", {}).get("crowd", "official")
    return entry.run_label + ("" if crowd == "official" else f" [crowd {crowd}]")


def saco_tables(dataset: str, entries: list[ReportEntry]) -> list[str]:
    ref = saco()[SACO[dataset]]
    subsets: list[str] = ref["subsets"]
    found: dict[str, dict[str, dict[str, float]]] = {}
    for e in entries:
        found.setdefault(_row_label(e), {})[_subset(e)] = e.metrics
    cg: dict[str, dict[str, Any]] = {}
    detail: dict[str, dict[str, Any]] = {}
    for label, by_subset in found.items():
        done = [s for s in subsets if s in by_subset]
        cg[label] = {s: _scaled(by_subset[s], "cgF1") for s in done}
        detail[label] = {s: _pair(by_subset[s]) for s in done}
        if len(done) == len(subsets):
            for name in SUMMARY:  # SAM 3 averages each number over the subsets
                values = [_scaled(by_subset[s], name) for s in subsets]
                cg[label][f"average {name}"] = None if None in values else sum(values) / len(values)
        else:
            cg[label]["average cgF1"] = f"{len(done)} of {len(subsets)}"
    for model, row in ref["rows"].items():
        label = f"{model} (published)"
        cg[label] = {s: row[s][0] for s in subsets if s in row}
        cg[label].update({f"average {n}": v for n, v in zip(SUMMARY, row["average"]) if v is not None})
        detail[label] = {s: f"{row[s][1]:.2f} / {row[s][2]:.1f}" for s in subsets if s in row}
    columns = subsets + [f"average {n}" for n in SUMMARY]
    table = pd.DataFrame.from_dict(cg, orient="index").reindex(columns=columns)
    table.index.name = "method"
    pairs = pd.DataFrame.from_dict(detail, orient="index").reindex(columns=subsets)
    pairs.index.name = "method"
    title = "SA-Co/Gold" if dataset == "saco_gold" else "SA-Co/Silver"
    return [f"### {title}: cgF1 (%) per subset and the subset average", "", markdown_table(_formatted(table)), "",
            "IL_MCC / pmF1 (%) per subset:", "", markdown_table(pairs), "",
            f"Published rows: {saco()['source']}. {saco()['note']}."]


def _pair(metrics: dict[str, float]) -> Optional[str]:
    mcc, pm = _scaled(metrics, "IL_MCC"), _scaled(metrics, "pmF1")
    return None if mcc is None or pm is None else f"{mcc:.2f} / {pm:.1f}"


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as the published tables print them (IL_MCC with two decimals), text ("k of 7") as is."""
    def cell(column: str, value: Any) -> Any:
        if isinstance(value, (int, float)) and not pd.isna(value):
            return f"{value:.2f}" if column.endswith("IL_MCC") else f"{value:.1f}"
        return value
    return pd.DataFrame({c: [cell(c, v) for v in table[c]] for c in table.columns}, index=table.index)


def phrase_table(dataset: str, entries: list[ReportEntry]) -> list[str]:
    rows = {}
    for e in entries:
        row: dict[str, Any] = {n: _scaled(e.metrics, n) for n in DETAIL}
        row["queries (+/-)"] = f"{int(e.metrics.get('queries_positive', 0))}/{int(e.metrics.get('queries_negative', 0))}"
        rows[f"{_row_label(e)}" + (f" [{_subset(e)}]" if _subset(e) not in ("-", "val") else "")] = row
    lines = [f"### {dataset}: category names as noun phrases", ""]
    if dataset.startswith("lvis"):
        ref = saco()["lvis_cgF1"]
        for model, value in ref["rows"].items():
            rows[f"{model} (published)"] = {"cgF1": value}
        lines_after = [f"Published rows: {ref['note']}; {saco()['source']}."]
    else:
        lines_after = []
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(DETAIL) + ["queries (+/-)"])
    table.index.name = "method"
    return lines + [markdown_table(_formatted(table)), ""] + lines_after


def concepts_section(title: str, entries: list[ReportEntry]) -> str:
    lines = [f"## {title}", "",
             "cgF1 = positive micro F1 x image-level MCC (IL_MCC), averaged over IoU 0.50:0.95, as "
             "sam3.eval.cgf1_eval.CGF1Evaluator computes it; F1 numbers in percent, IL_MCC a fraction."]
    for dataset in dict.fromkeys(e.dataset for e in entries):
        group = [e for e in entries if e.dataset == dataset]
        lines += [""] + (saco_tables(dataset, group) if dataset in SACO else phrase_table(dataset, group))
    lines += [""]
    for e in entries:
        o = e.record.get("task_options", {})
        source = o.get("source") or (f"predictions file {o['predictions']}" if o.get("predictions") else "-")
        lines.append(f"- {e.run_label} / {e.dataset} [{_subset(e)}]: source {source}; crowd {o.get('crowd')} "
                     f"({o.get('crowd_rule', '')}); {int(e.metrics.get('queries', 0))} queries scored, "
                     f"{int(e.metrics.get('queries_excluded', 0))} not instance-exhaustive left out")
    return "\n".join(lines) + "\n"
