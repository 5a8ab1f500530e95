"""`sam-bench score OUT` and `sam-bench status OUT`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .settings import launch_settings


def score_command(args: argparse.Namespace) -> int:
    """Score every stored task of OUT; exit 1 when one fails."""
    from ..reporting.writer import write_report
    from .driver import score_out

    results = score_out(Path(args.out), launch_settings(args))
    for task_dir, state, detail in results:
        print(f"{state}: {task_dir}: {detail}" if detail else f"{state}: {task_dir}")
    for run_dir in sorted({task_dir.parent.parent for task_dir, _, _ in results}):
        if (run_dir / "run.json").exists():
            print(f"report: {write_report([run_dir], run_dir / 'report.md')}")
    return 1 if any(state == "failed" for _, state, _ in results) else 0


def status_command(args: argparse.Namespace) -> int:
    from .status import print_status

    return print_status(Path(args.out))
