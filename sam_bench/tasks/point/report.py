"""report.md section of the `point` task: Fig. 9a-style mIoU@1 table, Fig. 9c curve, NoC table."""
from __future__ import annotations

import pandas as pd

from ...metrics.point import REPORT_CLICKS
from ...reference import checkpoint, paper, protocol_differences
from ...reporting.markdown import markdown_table
from ...reporting.entry import ReportEntry
from ...reporting.sa23 import first_click
from ...taskdefs import paper_label

def _pct(value: object) -> float | None:
    return None if value is None else 100.0 * float(value)


def _settings(entry: ReportEntry) -> str:
    opts = entry.record.get("task_options", {})
    feedback = "fed back" if opts.get("feedback", True) else "not fed back"
    return (f"{first_click(entry)} first click; RITM clicks after; up to "
            f"{opts.get('max_clicks', 20)} clicks; click 1 keeps the highest predicted IoU of 3 masks "
            f"(oracle: best of 3 vs ground truth; none for models that return one mask, e.g. HQ-SAM); "
            f"clicks 2+ single output, previous low-res logits {feedback}")


def point_report(title: str, entries: list[ReportEntry]) -> str:
    runs = list(dict.fromkeys(e.run_label for e in entries))
    datasets = list(dict.fromkeys(e.dataset for e in entries))
    by = {(e.run_label, e.dataset): e for e in entries}
    ref = runs[0]
    deltas = paper()["point_single_center_delta_vs_ritm"]
    # The paper's numbers are of one protocol (center first click): beside runs of that protocol only.
    stated = paper()["protocols"]["point_single_center_delta_vs_ritm"]
    differs = sorted({f"{e.run_label}: {d}" for e in entries
                      for d in protocol_differences(stated, {"first_click": first_click(e)})})

    table = pd.DataFrame(index=pd.Index(datasets, name="dataset"))
    for run in runs:
        table[f"{run} mIoU@1"] = [_pct(by[(run, d)].metrics.get("mIoU@1")) if (run, d) in by else None
                                  for d in datasets]
        table[f"{run} oracle"] = [_pct(by[(run, d)].metrics.get("oracle_mIoU@1")) if (run, d) in by else None
                                  for d in datasets]
    for run in runs[1:]:
        table[f"Δ {run} vs {ref}"] = table[f"{run} mIoU@1"] - table[f"{ref} mIoU@1"]
    if not differs:
        table["paper Δ SAM−RITM"] = [deltas.get(paper_label(d) or "", None) for d in datasets]
    table = table.astype(float)
    if len(datasets) > 1:  # the paper's headline: plain mean of the per-dataset mIoUs
        mean = table.mean(axis=0, skipna=True)
        if not differs:
            mean["paper Δ SAM−RITM"] = None
        table.loc[f"mean ({len(datasets)} datasets)"] = mean
    sa23 = paper()["point_sa23_miou"]
    lines = [f"## {title}", ""]
    settings = {e.run_label: _settings(e) for e in entries}
    if len(set(settings.values())) == 1:
        lines += [f"Settings (every run): {next(iter(settings.values()))}.", ""]
    else:
        lines += [f"Settings of {run}: {text}." for run, text in settings.items()] + [""]
    skipped = [f"{e.run_label} / {e.dataset}: {int(e.metrics['skipped_objects'])}" for e in entries
               if e.metrics.get("skipped_objects")]
    if skipped:
        lines += ["Objects skipped (empty, or only void pixels: nothing to click; not in any mean): "
                  + "; ".join(skipped) + ". Their ids are in the log and in progress records.", ""]
    lines += ["### mIoU@1 per dataset (%; Fig. 9a)", "", markdown_table(table), ""]
    lines += [f"Δ columns are IoU points against the first run ({ref}), as Fig. 9a plots SAM minus RITM."]
    if differs:
        lines += ["The paper's numbers (Fig. 9a deltas, SA-23 means: center first click) are left out: "
                  f"runs here use another protocol ({'; '.join(differs)}), so they would not be comparable.", ""]
    else:
        names = {k: checkpoint(paper(), "point_sa23_miou", k) for k in sa23 if k != "note"}
        lines += [f"paper Δ: SAM ({checkpoint(paper(), 'point_single_center_delta_vs_ritm', 'SAM')}) "
                  "minus RITM, one center point (SAM paper Fig. 9a). "
                  f"Paper means over the 23 datasets (center click, {sa23['note'].split(',')[-1].strip()}): "
                  + "; ".join(f"SAM ({names[name]}) mIoU@1 {v['1']:.1f}, mIoU@5 {v['5']:.1f}"
                              for name, v in sa23.items() if name != "note") + ".", ""]

    curve = pd.DataFrame(columns=[f"@{n}" for n in REPORT_CLICKS])
    curve.index.name = "dataset / run"
    for e in entries:
        curve.loc[f"{e.dataset} / {e.run_label}"] = [_pct(e.metrics.get(f"mIoU@{n}")) for n in REPORT_CLICKS]
    lines += ["### mIoU (%) after N points (Fig. 9c)", "", markdown_table(curve.astype(float)), ""]
    boundary = pd.DataFrame(columns=[f"@{n}" for n in REPORT_CLICKS])
    boundary.index.name = "dataset / run"
    for e in entries:
        boundary.loc[f"{e.dataset} / {e.run_label}"] = [_pct(e.metrics.get(f"mBIoU@{n}")) for n in REPORT_CLICKS]
    lines += ["### Boundary IoU (%) after N points (mBIoU, dilation 0.02 of the image diagonal)", "",
              markdown_table(boundary.astype(float)), ""]

    noc = pd.DataFrame(columns=["NoC@85", "NoC@90", "NoF@90", "objects"])
    noc.index.name = "dataset / run"
    for e in entries:
        m = e.metrics
        noc.loc[f"{e.dataset} / {e.run_label}"] = [
            m.get("NoC@85"), m.get("NoC@90"), str(m.get("NoF@90", "-")), str(m.get("objects", "-"))]
    max_clicks = sorted({int(e.metrics.get("max_clicks", 20)) for e in entries})
    lines += [f"### Clicks to reach IoU (NoC, at most {'/'.join(map(str, max_clicks))} clicks)", "",
              markdown_table(noc, floatfmt=".2f"), "",
              "NoF@90: objects that never reach 90% IoU. The paper reports no NoC; it is the standard "
              "interactive-segmentation metric (RITM)."]
    return "\n".join(lines) + "\n"
