"""`--demo`: every registered task on the synthetic dataset with the weight-free demo models."""
from __future__ import annotations

from pathlib import Path

from .config import RunConfig
from .data.synthetic import generate
from .plugins import load_plugins
from .registry import TASKS
from .reporting.writer import write_report


def run_demo(out: str | Path = "results/demo", device: str = "auto", n_images: int = 4) -> Path:
    from .runner import run

    load_plugins()
    out = Path(out)
    roots = generate(out / "demo_data", n_images=n_images)
    run_dirs: dict[str, Path] = {}
    for name in TASKS.names():
        task = TASKS.get(name)
        for model in task.demo_models:
            run_dir = run_dirs.setdefault(model, out / model)
            options = task.demo_options(roots[task.demo_dataset])
            run(RunConfig(task=name, model=model, dataset=task.demo_dataset, out=str(run_dir),
                          data_root=str(roots[task.demo_dataset]), device=device, options=options))
    return write_report(list(run_dirs.values()), out / "report.md")
