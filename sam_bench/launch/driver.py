"""The driver of a launched suite: plan the elements, submit them, follow them, resubmit failures.

Every (task definition, dataset, model) with its data present becomes `--shards` shard elements
(a shard whose record is already there, with the same settings, is not submitted again) and,
once they are all done, one scoring element (unless `--score later`). On SLURM the elements go
out as job arrays; locally as separate processes, at most `--max-parallel` at once. A failed or
pre-empted element is resubmitted up to `--retries` times and resumes from its own progress
records; one that keeps failing is reported with its job id, last log line and log path.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine.lock import TaskLock
from ..engine.shards import Shard, shard_records
from ..engine.staging import Staging
from ..errors import ConfigError
from ..stages import pending_scores, score_stored
from ..suite_runner import Outcome, mark_scored, SuiteSettings, record_outcome, stamp, suite_jobs, task_config
from ..taskdefs import TaskDefinition
from .plan import (Element, add_elements, last_log_line, launch_dir, read_plan, read_state, record_submission,
                   write_plan)
from .settings import LaunchSettings, make_executor

log = logging.getLogger(__name__)


def launch_suite(settings: SuiteSettings, launch: LaunchSettings) -> list[Outcome]:
    """Run a suite through the launcher; one outcome per planned (task definition, model)."""
    outcomes: dict[tuple[str, str, str], Outcome] = {}
    elements: list[Element] = []  # to submit now
    planned: list[Element] = []  # every part of the launched tasks, for `status`
    for definition, model, out in suite_jobs(settings):
        task = (definition.name, definition.dataset, model)
        cfg = task_config(definition, model, out, settings)
        if isinstance(cfg, Outcome):
            outcomes[task] = cfg
            continue
        if cfg.fresh:  # once, here: the shards of this launch must all join one new staging folder
            _discard_staging(Path(cfg.out) / cfg.result_name / cfg.dataset)
        cfg = replace(cfg, fresh=False)
        shards = [Element(definition.name, definition.dataset, model, str(out), cfg.to_dict(),
                          stamp(cfg, definition), settings.suite, (k, launch.shards)) for k in range(launch.shards)]
        planned += shards + ([_scoring(shards[0])] if settings.score == "end" else [])
        todo = [e for e in shards if not _shard_done(e, definition)]
        if todo:
            elements += todo
        elif settings.score == "end":
            elements.append(_scoring(shards[0]))
        else:
            outcomes[task] = Outcome(*task, "stored", "stored earlier; score with: sam-bench score OUT")
    driver = Driver(settings.out, launch, settings.suite, settings.score == "end")
    write_plan(settings.out, {"suite": settings.suite, "launcher": launch.launcher, "shards": launch.shards,
                              "score": settings.score}, planned)
    results = driver.run(elements)
    launched: dict[tuple[str, str, str], list[Element]] = {}
    for e in elements + driver.added:
        launched.setdefault((e.definition, e.dataset, e.model), []).append(e)
    for task, group in launched.items():
        outcomes[task] = _task_outcome(group, results, settings.score)
        if outcomes[task].status == "failed":
            record_outcome(Path(group[0].run_dir), outcomes[task], group[0].stamp, settings.suite)
    order = [(d.name, d.dataset, m) for d, m, _ in suite_jobs(settings)]
    return [outcomes[k] for k in order if k in outcomes]


def score_out(out: Path, launch: LaunchSettings | None) -> list[tuple[Path, str, str]]:
    """Score every task stored under OUT (`run --score later`), here or one job per task through the
    launcher; (task folder, scored | failed, detail) each."""
    tasks = pending_scores(out)
    if not tasks:
        raise ConfigError(f"{out}: nothing stored to score (no task run with --score later is waiting there)")
    if launch is None:
        done = []
        for task_dir in tasks:
            try:
                score_stored(task_dir)
                mark_scored(task_dir.parent.parent, f"{task_dir.parent.name}/{task_dir.name}")
                done.append((task_dir, "scored", str(task_dir / "metrics.json")))
            except Exception as exc:  # one task's bad records or data: reported, the others are scored
                done.append((task_dir, "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        return done
    elements = [_stored_scoring(task_dir) for task_dir in tasks]
    driver = Driver(out, launch, "score", score_at_end=False)
    if read_plan(out):
        add_elements(out, elements)
    else:
        write_plan(out, {"suite": None, "launcher": launch.launcher, "shards": None, "score": "later"}, elements)
    results = driver.run(elements)
    return [(e.task_dir, "scored" if results[e.key][0] == "done" else "failed", results[e.key][1]) for e in elements]


def _stored_scoring(task_dir: Path) -> Element:
    """The scoring element of a stored task (its model from the shards' records)."""
    record = next(iter(shard_records(Staging(task_dir).work).values()))
    return Element(task_dir.parent.name, task_dir.name, record["config"]["model"], str(task_dir.parent.parent), {},
                   "", "")


def _task_outcome(group: list[Element], results: dict[str, tuple[str, str]], score: str) -> Outcome:
    """How a launched task ended: failed (its first failure's line), ran (scored) or stored."""
    task = (group[0].definition, group[0].dataset, group[0].model)
    failed = [results[e.key][1] for e in group if results.get(e.key, ("",))[0] in ("failed", "busy")]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Outcome(*task, "failed", failed[0] + more)
    if any(e.shard is None and results.get(e.key, ("",))[0] == "done" for e in group):
        return Outcome(*task, "ran", "scored")
    if score == "later":
        return Outcome(*task, "stored", "score with: sam-bench score OUT")
    return Outcome(*task, "failed", "its shards did not all finish")


def _scoring(shard: Element) -> Element:
    return replace(shard, shard=None, config={})


def _discard_staging(task_dir: Path) -> None:
    with TaskLock(task_dir):
        work = Staging(task_dir).work
        if work.exists():
            shutil.rmtree(work)


def _shard_done(e: Element, definition: TaskDefinition) -> bool:
    """The shard's record is there and was made with these settings."""
    record = shard_records(Staging(e.task_dir).work).get(Shard(*e.shard))  # type: ignore[misc]
    return record is not None and stamp(RunConfig(**record["config"]), definition) == e.stamp


class Driver:
    """Submits elements, follows their jobs, resubmits failures, submits each task's scoring."""

    def __init__(self, out: Path, launch: LaunchSettings, suite: str, score_at_end: bool) -> None:
        self.out, self.launch, self.score_at_end = Path(out), launch, score_at_end
        folder = launch_dir(self.out) / "logs"
        self.executors = {True: make_executor(launch, folder, f"sam-bench-{suite}"),  # one line if submitit is absent
                          False: make_executor(launch, folder, f"sam-bench-{suite}-score", gpus=False)}
        from .job import ElementJob  # imports submitit

        self.job = ElementJob(str(self.out))
        self.added: list[Element] = []

    def run(self, elements: list[Element]) -> dict[str, tuple[str, str]]:
        """Until every element is done or has failed for good: key -> (done|failed|busy, detail)."""
        pending, running = list(elements), {}
        attempts: Counter[str] = Counter()
        results: dict[str, tuple[str, str]] = {}
        shards_of: dict[str, list[Element]] = {}
        for e in elements:
            if e.shard is not None:
                shards_of.setdefault(f"{e.run_dir}|{e.task_key}", []).append(e)
        while pending or running:
            free = len(pending) if self.launch.max_parallel is None or self.launch.launcher == "slurm" \
                else max(0, self.launch.max_parallel - len(running))
            batch, pending = pending[:free], pending[free:]
            for e, job in self._submit(batch):
                attempts[e.key] += 1
                running[e.key] = (e, job)
            time.sleep(self.launch.poll_s)
            for key, (e, job) in list(running.items()):
                if not job.done():
                    continue
                del running[key]
                status, detail = self._result(e, job)
                if status == "failed" and attempts[key] <= self.launch.retries:
                    log.warning("%s failed (attempt %d): %s; resubmitting", e.label, attempts[key], detail)
                    pending.append(e)
                    continue
                results[key] = (status, detail)
                if status != "done" or e.shard is None:
                    continue
                group = shards_of.get(f"{e.run_dir}|{e.task_key}", [])
                if all(results.get(s.key, ("",))[0] == "done" for s in group):
                    record_outcome(Path(e.run_dir), Outcome(e.definition, e.dataset, e.model, "stored",
                                                            "shards done"), e.stamp, e.suite)
                    if self.score_at_end:
                        scoring = _scoring(e)
                        add_elements(self.out, [scoring])
                        self.added.append(scoring)
                        pending.append(scoring)
        return results

    def _submit(self, batch: list[Element]) -> list[tuple[Element, Any]]:
        """Shards and scorings as one job array each (SLURM); the launch records job ids and logs."""
        submitted = []
        for gpus in (True, False):
            part = [e for e in batch if (e.shard is not None) == gpus]
            if not part:
                continue
            executor = self.executors[gpus]
            with executor.batch():
                jobs = [executor.submit(self.job, e) for e in part]
            for e, job in zip(part, jobs):
                record_submission(self.out, e.key, str(job.job_id), job.paths.stdout, job.paths.stderr)
                log.info("%s: job %s", e.label, job.job_id)
                submitted.append((e, job))
        return submitted

    def _result(self, e: Element, job: Any) -> tuple[str, str]:
        """(done | busy | failed, one line): a failure says the job, its last word and its log."""
        try:
            value = job.result()
        except Exception:  # the job raised, was killed, or timed out: its own state file says which
            state = read_state(self.out, e.key)
            said = state.get("error") if state.get("state") == "failed" and state.get("job_id") == str(job.job_id) \
                else ""
            line = said or last_log_line(job.paths.stderr) or "ended without a result (killed?)"
            return "failed", f"{e.dataset} {e.part} (job {job.job_id}): {line}; log: {job.paths.stderr}"
        if isinstance(value, str) and value.startswith("busy"):
            return "busy", f"{e.dataset} {e.part}: {value}"
        return "done", ""
