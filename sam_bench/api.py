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


def run_directories(dirs: Sequence[str | Path]) -> list[Path]:
    """Run directories as given; a folder without run.json that holds run directories (e.g.
    results/demo) stands for all of them."""
    found: list[Path] = []
    for d in map(Path, dirs):
        if (d / "run.json").is_file():
            found.append(d)
            continue
        inside = sorted(p.parent for p in d.glob("*/run.json")) if d.is_dir() else []
        if not inside:
            problem = "no such folder" if not d.exists() else "no run.json in it or in its subfolders"
            raise SamBenchError(f"{d}: not a sam-bench run directory ({problem})")
        found += inside
    return found


def report_format(out: str | Path | None, fmt: str | None) -> str:
    """--format, else the --out extension, else md; a --format that contradicts --out is an error."""
    by_suffix = {f".{suffix}": name for name, suffix in SUFFIX.items()}
    implied = by_suffix.get(Path(out).suffix.lower()) if out else None
    if fmt and implied and fmt != implied:
        raise SamBenchError(f"--format {fmt} does not match --out {out} (a .{SUFFIX[implied]} file is {implied}); "
                            f"drop one or make them agree")
    if out and not fmt and not implied:
        raise SamBenchError(f"--out {out}: cannot tell the format from '{Path(out).suffix}'; use "
                            f"{', '.join('.' + s for s in SUFFIX.values())} or --format")
    return fmt or implied or "md"


def report(run_dirs: Sequence[str | Path], out: str | Path | None = None, fmt: str | None = None) -> Path:
    """Rebuild the report for one or several run directories (one column per run) as md, html,
    latex or csv (from `fmt`, else from the extension of `out`); a folder of run directories
    stands for all of them. Default path: DIR/report.<ext> for one run, ./report.<ext> for several."""
    from .reporting.writer import write_report

    given = [Path(d) for d in run_dirs]
    fmt = report_format(out, fmt)
    found = run_directories(given)
    name = f"report.{SUFFIX[fmt]}"
    default = given[0] / name if len(given) == 1 else Path(name)
    return write_report(found, out or default, fmt)
