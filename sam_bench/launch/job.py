"""What runs inside one job: a shard's per-image stage or a task's scoring, and its state file.

The callable is a submitit `Checkpointable`: on SLURM a job that reaches its time limit or is
pre-empted is requeued with the same element (up to submitit's `max_num_timeout`), and resumes
from the progress records like any rerun.
"""
from __future__ import annotations

import logging
from pathlib import Path

import submitit

from ..config import RunConfig
from ..engine.lock import BusyError
from ..engine.shards import Shard
from ..suite_runner import Outcome, mark_scored, record_outcome
from ..stages import run_shard, score_stored
from .plan import Element, write_state

DONE = "done"


class ElementJob(submitit.helpers.Checkpointable):
    """Runs one element; returns "done", or "busy: ..." when another submission holds its shard."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)  # where launch.json and the element states live

    def __call__(self, element: Element) -> str:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        job_id = submitit.JobEnvironment().job_id
        write_state(self.out, element.key, "running", job_id)
        try:
            if element.shard is not None:
                run_shard(RunConfig(**element.config), Shard(*element.shard))
            else:
                score_stored(element.task_dir)
                if element.stamp:  # a suite's task: finished with these settings
                    record_outcome(Path(element.run_dir), Outcome(element.definition, element.dataset, element.model,
                                                                  "ran", "scored"), element.stamp, element.suite)
                else:  # `sam-bench score OUT`
                    mark_scored(Path(element.run_dir), element.task_key)
        except BusyError as exc:
            write_state(self.out, element.key, "busy", job_id, str(exc))
            return f"busy: {exc}"
        except Exception as exc:  # recorded for `status`; submitit records the traceback
            write_state(self.out, element.key, "failed", job_id, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            raise
        write_state(self.out, element.key, DONE, job_id)
        return DONE
