"""report.md section of the `miou` task: EfficientViT-SAM's table (all / large / medium / small per
dataset) and HQ-SAM's (mIoU / mBIoU on its four sets), published rows beside when the protocol matches."""
from __future__ import annotations

import pandas as pd

from ...reference import checkpoint, peers, published_label
from ...reporting.entry import ReportEntry
from ...reporting.markdown import markdown_table

SIZES = ("all", "large", "medium", "small")
HQ_SETS = ("dis5k", "coift", "hrsod", "thinobject5k")
CHOICE_TEXT = {"predicted_iou": "multimask, highest predicted IoU", "single": "single output",
               "oracle": "multimask, oracle (best of 3 vs ground truth)"}


def _protocol(entry: ReportEntry) -> tuple[str, int, str]:
    opts = entry.record.get("task_options", {})
    return opts.get("prompt", "box"), int(opts.get("clicks", 1)), opts.get("mask_choice", "predicted_iou")


def _setting_text(protocol: tuple[str, int, str]) -> str:
    prompt, clicks, choice = protocol
    follow = f" + {clicks - 1} RITM click(s)" if clicks > 1 else ""
    return f"{prompt}{follow}, {CHOICE_TEXT.get(choice, choice)}"


def _pct(metrics: dict[str, float], name: str) -> float | None:
    return 100.0 * metrics[name] if name in metrics else None


def _labels(entries: list[ReportEntry]) -> dict[int, str]:
    """Row label per entry: the run, plus its protocol when runs used several."""
    several = len({_protocol(e) for e in entries}) > 1
    return {id(e): e.run_label + (f" [{_setting_text(_protocol(e))}]" if several else "") for e in entries}


def _published_sizes(protocol: tuple[str, int, str], datasets: list[str]) -> dict[str, dict[str, float]]:
    """EfficientViT-SAM / survey rows whose protocol equals this one (same prompt, 1 round, argmax)."""
    prompt, clicks, choice = protocol
    if clicks != 1 or choice != "predicted_iou" or prompt not in ("box", "center"):
        return {}
    rows: dict[str, dict[str, float]] = {}
    ref = peers()["efficientvit_sam_prompted_miou"]
    for model, values in ref.items():
        if model == "source":
            continue
        row = {f"{d} {size}": values[f"{d} {prompt} {size}"] for d in datasets for size in SIZES
               if f"{d} {prompt} {size}" in values}
        if row:
            rows[published_label(model, checkpoint(peers(), "efficientvit_sam_prompted_miou", model))] = row
    if prompt == "box" and "coco" in datasets:
        for model, value in peers()["survey_coco_gt_box_miou"].items():
            if model != "source":
                rows.setdefault(published_label(model, checkpoint(peers(), "survey_coco_gt_box_miou", model),
                                                "survey"), {"coco all": value})
    return rows


def _size_table(entries: list[ReportEntry], labels: dict[int, str]) -> list[str]:
    datasets = list(dict.fromkeys(e.dataset for e in entries))
    columns = [f"{d} {s}" for d in datasets for s in SIZES] + [f"{d} mBIoU" for d in datasets]
    rows: dict[str, dict[str, float | None]] = {}
    for e in entries:
        row = rows.setdefault(labels[id(e)], {})
        row[f"{e.dataset} all"] = _pct(e.metrics, "mIoU")
        for size in SIZES[1:]:
            row[f"{e.dataset} {size}"] = _pct(e.metrics, f"mIoU_{size}")
        row[f"{e.dataset} mBIoU"] = _pct(e.metrics, "mBIoU")
    sources = []
    for protocol in dict.fromkeys(_protocol(e) for e in entries):
        published = _published_sizes(protocol, datasets)
        rows.update(published)
        if published:
            sources.append(f"published rows for {_setting_text(protocol)}: EfficientViT-SAM README; "
                           "'(survey)': arXiv 2410.04960, secondhand, "
                           + peers()["checkpoint_notes"]["survey_coco_gt_box_miou"].rstrip("."))
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(float)
    table.index.name = "method"
    lines = ["### mIoU (%) by object size (EfficientViT-SAM's layout)", "", markdown_table(table), "",
             "Size bins by the annotation's area as pycocotools bins it (small <= 32², 32² <= medium <= 96², "
             "large >= 96²; an object at exactly 32² or 96² counts in both bins, as in COCO AP). "
             "mBIoU: boundary IoU, dilation 0.02 of the image diagonal."]
    if sources:
        lines += ["", "; ".join(sources) + "."]
    return lines


def _hq_table(entries: list[ReportEntry], labels: dict[int, str]) -> list[str]:
    sets = [s for s in HQ_SETS if any(e.dataset == s for e in entries)]
    columns = [f"{s} {m}" for s in sets for m in ("mIoU", "mBIoU")] + ["mean mIoU", "mean mBIoU"]
    rows: dict[str, dict[str, float | None]] = {}
    for e in entries:
        row = rows.setdefault(labels[id(e)], {})
        row[f"{e.dataset} mIoU"], row[f"{e.dataset} mBIoU"] = _pct(e.metrics, "mIoU"), _pct(e.metrics, "mBIoU")
    for row in rows.values():  # HQ-SAM's headline: the plain mean over its four sets
        if all(row.get(f"{s} mIoU") is not None for s in HQ_SETS):
            for m in ("mIoU", "mBIoU"):
                row[f"mean {m}"] = sum(row[f"{s} {m}"] for s in HQ_SETS) / len(HQ_SETS)
    note = ("Mean columns need all four sets (DIS5K-VD, COIFT, HRSOD, ThinObject5k-TE). HQ-SAM resizes "
            "images to 1024x1024 without keeping the aspect ratio; sam-bench uses SAM's own preprocessing.")
    if any(_protocol(e) == ("box", 1, "single") for e in entries):
        ref = peers()["hq_sam_box_protocol"]
        for model, values in ref.items():
            if model != "source":
                rows[published_label(model, checkpoint(peers(), "hq_sam_box_protocol", model))] = {
                    f"mean {m}": v for m, v in values.items()}
        note += (" Published rows: HQ-SAM's box protocol (single output), numbers secondhand; "
                 + peers()["checkpoint_notes"]["hq_sam_box_protocol"])
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(float)
    table.index.name = "method"
    return ["### High-quality sets: mIoU / mBIoU (%) (HQ-SAM's layout)", "", markdown_table(table), "", note]


def miou_report(title: str, entries: list[ReportEntry]) -> str:
    """The markdown section for every `miou` result of the runs being reported."""
    labels = _labels(entries)
    lines = [f"## {title}", ""]
    settings = {e.run_label: _setting_text(_protocol(e)) for e in entries}
    if len(set(settings.values())) == 1:
        lines += [f"Prompt (every run): {next(iter(settings.values()))}.", ""]
    else:
        lines += [f"Prompt of {run}: {text}." for run, text in settings.items()] + [""]
    general = [e for e in entries if e.dataset not in HQ_SETS]
    hq = [e for e in entries if e.dataset in HQ_SETS]
    if general:
        lines += _size_table(general, labels) + [""]
    if hq:
        lines += _hq_table(hq, labels) + [""]
    counts = pd.DataFrame.from_dict({f"{e.dataset} / {labels[id(e)]}": {
        "instances": str(int(e.metrics.get("instances", 0))),
        "crowd excluded": str(int(e.metrics.get("crowd_excluded", 0))),
        "empty excluded": str(int(e.metrics.get("empty_excluded", 0)))} for e in entries}, orient="index")
    counts.index.name = "dataset / run"
    lines += ["Instances scored; crowd annotations and empty masks are excluded from every mean:", "",
              markdown_table(counts)]
    return "\n".join(lines) + "\n"
