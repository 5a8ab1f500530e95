"""`run --suite`: every task definition of a suite through the single-task runner.

Each dataset is looked up at `DATA_DIR/<dataset>` unless `--data-root NAME=PATH` says otherwise. A
dataset that is not there is skipped with one line (what was expected, where to get it); a task
that raises is recorded as failed and the suite goes on. `OUT/suite.json` remembers what finished
with which settings, so rerunning the same command redoes nothing finished; an interrupted task
resumes image by image inside the single-task runner.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from .config import RunConfig, absolute
from .core.preflight import ensure_writable
from .data.registry import load_dataset_config
from .errors import ConfigError
from .engine.inputs import finished_inputs_changed
from .io import read_json_record, write_json
from .metadata import locked, now, read_run_json
from .suggest import did_you_mean
from .taskdefs import SuiteItem, TaskDefinition, expand

log = logging.getLogger(__name__)
STATE_FILE = "suite.json"


@dataclass
class SuiteSettings:
    """One `run --suite` invocation: the suite, where data and results live, the run settings."""

    suite: str
    out: Path
    model: Optional[str] = None  # None: the models the suite lists per task (the demo)
    data_dir: Optional[Path] = None
    data_roots: dict[str, Path] = field(default_factory=dict)  # --data-root NAME=PATH overrides
    tasks: Optional[list[str]] = None  # --tasks a,b: a part of the suite
    limit: Optional[int] = None  # per dataset
    run: dict[str, Any] = field(default_factory=dict)  # checkpoint, model_args, device, precision, ...
    score: str = "end"  # end | later: store per-image records, `sam-bench score OUT` scores them


@dataclass
class Outcome:
    definition: str
    dataset: str
    model: str
    status: str  # ran | stored (scoring left for `sam-bench score`) | done (finished earlier) | skipped | failed
    detail: str = ""


def plan(settings: SuiteSettings) -> list[SuiteItem]:
    """The suite's task definitions, narrowed by --tasks (names of definitions in the suite)."""
    items = expand(settings.suite)
    used = {i.definition.dataset for i in items}
    for name in settings.data_roots:
        if name not in used:  # a mistyped NAME would be ignored and its dataset silently skipped
            raise ConfigError(f"--data-root {name}=...: suite '{settings.suite}' uses no dataset '{name}'"
                              f"{did_you_mean(name, used)} (its datasets: {', '.join(sorted(used))})")
    if settings.tasks:
        known = {i.definition.name for i in items}
        unknown = [t for t in settings.tasks if t not in known]
        if unknown:
            raise ConfigError(f"--tasks: {', '.join(unknown)} not in suite '{settings.suite}'; "
                              f"its tasks: {', '.join(sorted(known))}")
        items = [i for i in items if i.definition.name in settings.tasks]
    return items


def dataset_root(definition: TaskDefinition, settings: SuiteSettings) -> Optional[Path]:
    if definition.dataset in settings.data_roots:
        return Path(absolute(str(settings.data_roots[definition.dataset])))
    return None if settings.data_dir is None else Path(absolute(str(settings.data_dir))) / definition.dataset


def missing_reason(definition: TaskDefinition, root: Optional[Path]) -> str:
    """One line: the dataset that is not there, what its folder holds, where to get it."""
    cfg = load_dataset_config(definition.dataset)
    expected = next((line.strip() for line in cfg.layout.splitlines() if line.strip()), "its files")
    where = f"not found at {root}" if root else "no --data-dir or --data-root given"
    homepage = cfg.homepage.split("#")[0].strip() or "its homepage"
    return f"dataset '{definition.dataset}' {where} (expected e.g. {expected}); get it from {homepage}"


def stamp(cfg: RunConfig, definition: TaskDefinition) -> str:
    """What must be unchanged for a finished task to count as done on a rerun."""
    ident = {"definition": definition.identity(), "protocol": definition.protocol, "options": cfg.options,
             "split": cfg.split, "model": cfg.model, "checkpoint": cfg.checkpoint, "model_args": cfg.model_args,
             "limit": cfg.limit, "seed": cfg.seed, "precision": cfg.precision, "data_root": cfg.data_root}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def suite_jobs(settings: SuiteSettings) -> list[tuple[TaskDefinition, str, Path]]:
    """(task definition, model, run directory) for every planned task: OUT/<model> when the suite's
    own model lists give several models, OUT otherwise."""
    settings.out = Path(absolute(str(settings.out)))
    ensure_writable(settings.out, "--out")
    jobs = []
    for item in plan(settings):
        models = [settings.model] if settings.model else list(item.models)
        if not models:
            raise ConfigError(f"suite '{settings.suite}': task '{item.definition.name}' names no models; give --model")
        jobs += [(item.definition, model) for model in models]
    several = settings.model is None and len({m for _, m in jobs}) > 1
    placed = [(d, m, settings.out / m if several else settings.out) for d, m in jobs]
    for out in {out for _, _, out in placed}:
        read_state(out)  # a damaged suite.json or run.json: one line naming it, before any task runs
        read_run_json(out)
    return placed


def run_suite(settings: SuiteSettings) -> list[Outcome]:
    """Run every planned (task definition, model); returns one outcome each, in plan order."""
    from .runner import run

    jobs = suite_jobs(settings)
    outcomes: list[Outcome] = []
    rank0 = int(os.environ.get("RANK", "0")) == 0
    bar = tqdm(jobs, desc=f"suite {settings.suite}", unit="task", disable=not rank0 or None, position=0,
               dynamic_ncols=True)
    for definition, model, out in bar:
        bar.set_postfix_str(f"{definition.name} / {definition.dataset} [{model}]")
        outcome = _run_one(definition, model, out, settings, run)
        outcomes.append(outcome)
        if outcome.status == "failed" and rank0:
            tqdm.write(f"{outcome.status}: {definition.name} [{model}]: {outcome.detail}")
    bar.close()
    return outcomes


def task_config(definition: TaskDefinition, model: str, out: Path, settings: SuiteSettings) -> RunConfig | Outcome:
    """The single-task run of one suite task, or its outcome without running it (skipped, done)."""
    root = dataset_root(definition, settings)
    if root is None or not root.is_dir():
        return Outcome(definition.name, definition.dataset, model, "skipped", missing_reason(definition, root))
    data_dir = Path(absolute(str(settings.data_dir))) if settings.data_dir else root.parent
    cfg = RunConfig(**{**settings.run, "task": definition.protocol, "model": model, "dataset": definition.dataset,
                       "out": str(out), "data_root": str(root), "split": definition.split, "limit": settings.limit,
                       "options": definition.resolved_options(root, data_dir), "name": definition.name,
                       "definition": definition.identity()})
    key, mark = f"{definition.name}/{definition.dataset}", stamp(cfg, definition)
    state = read_state(out)
    task_dir = out / definition.name / definition.dataset
    finished = (task_dir / "metrics.json").exists()
    if not cfg.fresh and finished and state.get(key, {}).get("stamp") == mark and state[key].get("status") == "ran":
        changed = finished_inputs_changed(task_dir)
        if changed == []:
            return Outcome(definition.name, definition.dataset, model, "done", "finished earlier with these settings")
        log.warning("%s: %s; running it again", key, "no record of the files it was computed from" if changed is None
                    else f"{len(changed)} input files changed since it finished (e.g. {', '.join(changed[:3])})")
    return cfg


def _run_one(definition: TaskDefinition, model: str, out: Path, settings: SuiteSettings, run: Any) -> Outcome:
    cfg = task_config(definition, model, out, settings)
    if isinstance(cfg, Outcome):
        return cfg
    t0 = time.perf_counter()
    try:
        run(cfg, score=settings.score == "end")
        outcome = Outcome(definition.name, definition.dataset, model, "ran" if settings.score == "end" else "stored",
                          f"{time.perf_counter() - t0:.0f} s")
    except Exception as exc:  # bad data, settings or a crash in one task: recorded, the suite goes on
        log.debug("task %s/%s failed", definition.name, definition.dataset, exc_info=True)
        outcome = Outcome(definition.name, definition.dataset, model, "failed",
                          f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    if int(os.environ.get("RANK", "0")) == 0:
        record_outcome(out, outcome, stamp(cfg, definition), settings.suite)
    return outcome


def record_outcome(out: Path, outcome: Outcome, mark: str, suite: str) -> None:
    """OUT/suite.json: how a task ended with which settings (what a rerun checks to skip it)."""
    with locked(out):
        state = read_state(out)
        state[f"{outcome.definition}/{outcome.dataset}"] = {
            "stamp": mark, "status": outcome.status, "detail": outcome.detail, "model": outcome.model,
            "suite": suite, "time": now()}
        write_json(out / STATE_FILE, state)


def mark_scored(out: Path, key: str) -> None:
    """A task stored by `--score later` has been scored: suite.json counts it as finished."""
    with locked(out):
        state = read_state(out)
        if state.get(key, {}).get("status") == "stored":
            state[key].update(status="ran", detail="scored", time=now())
            write_json(out / STATE_FILE, state)


def read_state(out: Path) -> dict[str, Any]:
    return read_json_record(out / STATE_FILE, "suite state (what this suite finished)")


def summary_lines(suite: str, outcomes: list[Outcome]) -> list[str]:
    """The closing summary: counts, then one line per task that did not run now."""
    count = {s: sum(o.status == s for o in outcomes) for s in ("ran", "stored", "done", "skipped", "failed")}
    stored = f"stored for scoring {count['stored']}, " if count["stored"] else ""
    lines = [f"suite {suite}: planned {len(outcomes)}, ran {count['ran']}, {stored}already done {count['done']}, "
             f"skipped {count['skipped']}, failed {count['failed']}"]
    lines += [f"  {o.status}: {o.definition} [{o.model}]: {o.detail}" for o in outcomes
              if o.status in ("skipped", "failed")]
    return lines
