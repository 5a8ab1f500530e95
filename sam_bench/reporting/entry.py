"""What a task's report section is given: one finished (task, dataset) result of one run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..registry import TASKS


@dataclass
class ReportEntry:
    """One finished (task, dataset) result of one run directory, as the report sees it."""

    run_label: str
    run_dir: Path
    dataset: str
    metrics: dict[str, float]
    record: dict[str, Any]  # this task's entry in run.json
    task_dir: Path
    report_dir: Optional[Path] = None  # where the report is written: links and figures are relative to it


def section_order(protocol: str) -> tuple:
    """The paper's order (§7.1 .. §7.5), then tasks without a paper section by name."""
    return (getattr(TASKS.get(protocol), "paper_section", (99,)), protocol)
