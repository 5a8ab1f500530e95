"""Python entry points for notebooks: the same runs as the CLI."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from .config import load_run_config
from .errors import SamBenchError

SUFFIX = {"md": "md", "html": "html", "latex": "tex", "csv": "csv"}


def run(task: str, model: str, dataset: str, out: str | Path = "results/run", config: str | None = None,
        progress: bool = True, **settings: Any) -> dict[str, float]:
    """Run `task` on `dataset` with `model`; returns the metrics. Extra keyword arguments are run
    settings (checkpoint=, data_root=, limit=, ...) or task options (options={...}). `progress`
    prints what the CLI logs (images done, time left, warnings) to stderr unless logging already
    shows sam-bench's INFO messages."""
    from .runner import run as run_config

    cfg = load_run_config(config, {"task": task, "model": model, "dataset": dataset, "out": str(out),
                                   **settings})
    with _progress_log(progress):
        return run_config(cfg)


@contextlib.contextmanager
def _progress_log(enabled: bool) -> Iterator[None]:
    """sam-bench's INFO log on stderr for the call, as the CLI prints it (a notebook has no
    terminal for the progress bar; the log says the rate and time left instead)."""
    logger = logging.getLogger("sam_bench")
    if not enabled or logger.isEnabledFor(logging.INFO):
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # once, not again through the root logger's handlers
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def report(run_dirs: Sequence[str | Path], out: str | Path | None = None, fmt: str = "md") -> Path:
    """Rebuild the report for one or several run directories (one column per run) as md, html,
    latex or csv; default path: DIR/report.<ext> for one run, ./report.<ext> for several."""
    from .reporting.writer import write_report

    run_dirs = [Path(d) for d in run_dirs]
    for run_dir in run_dirs:
        if not (run_dir / "run.json").is_file():
            problem = "no such folder" if not run_dir.exists() else "no run.json in it"
            raise SamBenchError(f"{run_dir}: not a sam-bench run directory ({problem})")
    name = f"report.{SUFFIX[fmt]}"
    return write_report(run_dirs, out or (run_dirs[0] / name if len(run_dirs) == 1 else name), fmt)
