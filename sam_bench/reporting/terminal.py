"""Metrics as the terminal prints them: fractions as percentages, like every report table."""
from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

# Float metrics that are not fractions of 1 (clicks, masks, candidates per image...): printed as is.
NOT_FRACTIONS = ("NoC@*", "*per_image*", "*per_second*", "*seconds*", "max_*", "*MCC*")  # MCC: a correlation, -1..1
# Metrics where fewer is better (clicks to reach an IoU, failures); every other headline metric: more is better.
LOWER_IS_BETTER = ("NoC@*", "NoF@*")


def lower_is_better(metric: str) -> bool:
    return any(fnmatch(metric, pattern) for pattern in LOWER_IS_BETTER)


def format_metric(name: str, value: Any) -> str:
    """`0.8123` -> `81.2 %`; counts and other non-fractions unchanged; None (undefined) -> `n/a`."""
    if value is None:
        return "n/a (undefined: nothing to average; null in metrics.json)"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if any(fnmatch(name, pattern) for pattern in NOT_FRACTIONS):
        return f"{value:.2f}"
    return f"{100 * value:.1f} %"


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    width = max((len(k) for k in metrics), default=0)
    return [f"{name:<{width}}  {format_metric(name, value)}" for name, value in metrics.items()]
