"""Python entry points for notebooks: the same runs as the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .config import load_run_config

SUFFIX = {"md": "md", "html": "html", "latex": "tex", "csv": "csv"}


def run(task: str, model: str, dataset: str, out: str | Path = "results/run", config: str | None = None,
        **settings: Any) -> dict[str, float]:
    """Run `task` on `dataset` with `model`; returns the metrics. Extra keyword arguments are run
    settings (checkpoint=, data_root=, limit=, ...) or task options (options={...})."""
    from .runner import run as run_config

    cfg = load_run_config(config, {"task": task, "model": model, "dataset": dataset, "out": str(out),
                                   **settings})
    return run_config(cfg)


def report(run_dirs: Sequence[str | Path], out: str | Path | None = None, fmt: str = "md") -> Path:
    """Rebuild the report for one or several run directories (one column per run) as md, html,
    latex or csv; default path: DIR/report.<ext> for one run, ./report.<ext> for several."""
    from .reporting.writer import write_report

    run_dirs = [Path(d) for d in run_dirs]
    name = f"report.{SUFFIX[fmt]}"
    return write_report(run_dirs, out or (run_dirs[0] / name if len(run_dirs) == 1 else name), fmt)
