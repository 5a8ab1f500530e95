"""`--launcher` and its flags: what they mean, and the submitit executor they make.

Each flag is one submitit parameter (AutoExecutor names; submitit writes the `#SBATCH` lines):

| flag | submitit | sbatch |
|---|---|---|
| `--slurm-partition P` | `slurm_partition` | `--partition` |
| `--slurm-account A` | `slurm_account` | `--account` |
| `--gpus-per-job G` | `gpus_per_node` | `--gpus-per-node` |
| `--cpus-per-job C` | `cpus_per_task` (+ `OMP_NUM_THREADS=C` in `setup`) | `--cpus-per-task` |
| `--mem 32G` | `mem_gb` | `--mem` |
| `--time 4:00:00` | `timeout_min` | `--time` (minutes) |
| `--max-parallel N` | `slurm_array_parallelism` | `--array=0-K%N` |
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError

LAUNCHERS = ("local", "slurm")
DEFAULT_TIME_MIN = 240


@dataclass
class LaunchSettings:
    launcher: str = "local"  # local: submitit's LocalExecutor (separate processes); slurm: SLURM job arrays
    shards: int = 1
    slurm_partition: Optional[str] = None
    slurm_account: Optional[str] = None
    gpus_per_job: Optional[int] = None  # default: 1 on SLURM, every visible GPU (shared) locally
    cpus_per_job: Optional[int] = None
    mem_gb: Optional[float] = None
    time_min: int = DEFAULT_TIME_MIN
    max_parallel: Optional[int] = None  # elements running at once (default: all)
    retries: int = 1  # resubmissions of a failed element
    poll_s: float = 0.5  # how often the driver looks at its jobs (30 s on SLURM)


def require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError("--launcher needs submitit: pip install 'submitit>=1.5' (or sam-bench[cluster])") from None
    return submitit


def parse_minutes(text: str) -> int:
    """`90`, `1:30` (h:mm), `1:30:00` or `2-00:00:00` (days-h:mm:ss) -> minutes, as `sbatch --time`."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ConfigError(f"--time: expected minutes, H:MM, H:MM:SS or D-HH:MM:SS, got {text!r}")
    days, first, second, third = match.groups()
    if second is None and days is None:
        minutes = int(first)
    else:
        seconds = int(third or 0)
        minutes = int(days or 0) * 1440 + int(first) * 60 + int(second or 0) + (1 if seconds else 0)
    if minutes < 1:
        raise ConfigError(f"--time: must be at least one minute, got {text!r}")
    return minutes


def parse_gigabytes(text: str) -> float:
    """`32G`, `32GB`, `500M`, `32` (GB) -> GB, as `sbatch --mem`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([GgMmTt]?)[Bb]?", text.strip())
    if not match:
        raise ConfigError(f"--mem: expected a size such as 32G or 500M, got {text!r}")
    value, unit = float(match[1]), match[2].upper()
    return value * {"": 1, "G": 1, "M": 1 / 1024, "T": 1024}[unit]


def add_launch_arguments(parser: argparse.ArgumentParser, shards: bool) -> None:
    group = parser.add_argument_group("launcher (a suite as submitit job arrays; see README 'On a cluster')")
    group.add_argument("--launcher", choices=LAUNCHERS,
                       help="slurm: one SLURM array element per task x dataset x shard; local: the same in "
                            "local processes (default: this process)")
    group.add_argument("--slurm-partition", dest="slurm_partition", help="SLURM partition (sbatch --partition)")
    group.add_argument("--slurm-account", dest="slurm_account", help="SLURM account (sbatch --account)")
    group.add_argument("--gpus-per-job", dest="gpus_per_job", type=int, help="GPUs per job (sbatch --gpus-per-node)")
    group.add_argument("--cpus-per-job", dest="cpus_per_job", type=int, help="CPU cores per job (sbatch --cpus-per-task)")
    group.add_argument("--mem", help="memory per job, e.g. 32G")
    group.add_argument("--time", help=f"time limit per job: minutes or H:MM:SS (default {DEFAULT_TIME_MIN} min)")
    group.add_argument("--max-parallel", dest="max_parallel", type=int, help="jobs running at once")
    group.add_argument("--retries", type=int, help="resubmissions of a failed job (default 1)")
    if shards:
        group.add_argument("--shards", type=int, help="split each dataset's images into N jobs (default 1)")


_FLAGS = ("slurm_partition", "slurm_account", "gpus_per_job", "cpus_per_job", "mem", "time", "max_parallel",
          "retries", "shards")


def launch_settings(args: argparse.Namespace) -> Optional[LaunchSettings]:
    """The settings of `--launcher ...`, None without it (a launcher flag alone is an error)."""
    given = [f for f in _FLAGS if getattr(args, f, None) is not None]
    if args.launcher is None:
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} goes with --launcher local|slurm")
        return None
    for name in ("gpus_per_job", "cpus_per_job", "max_parallel", "shards"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "gpus_per_job" else 1):
            raise ConfigError(f"--{name.replace('_', '-')}: must be at least {0 if name == 'gpus_per_job' else 1}, "
                              f"got {value}")
    if args.retries is not None and args.retries < 0:
        raise ConfigError(f"--retries: must be 0 or more, got {args.retries}")
    if args.launcher == "local" and (args.slurm_partition or args.slurm_account):
        raise ConfigError("--slurm-partition and --slurm-account go with --launcher slurm")
    settings = LaunchSettings(launcher=args.launcher, shards=getattr(args, "shards", None) or 1,
                              slurm_partition=args.slurm_partition, slurm_account=args.slurm_account,
                              gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                              mem_gb=parse_gigabytes(args.mem) if args.mem else None,
                              time_min=parse_minutes(args.time) if args.time else DEFAULT_TIME_MIN,
                              max_parallel=args.max_parallel,
                              retries=1 if args.retries is None else args.retries,
                              poll_s=30.0 if args.launcher == "slurm" else 0.5)
    return settings


def executor_parameters(s: LaunchSettings, name: str, gpus: bool = True) -> dict[str, Any]:
    """submitit AutoExecutor parameters for the elements (`gpus=False`: scoring, which needs none)."""
    gpu_count = s.gpus_per_job if s.gpus_per_job is not None else (1 if s.launcher == "slurm" else _visible_gpus())
    params: dict[str, Any] = {"name": name, "timeout_min": s.time_min, "nodes": 1, "tasks_per_node": 1,
                              "gpus_per_node": gpu_count if gpus else 0}
    if s.cpus_per_job is not None:
        params["cpus_per_task"] = s.cpus_per_job
        # torch sizes its thread pools from the machine, not from the job's share of it
        params[f"{s.launcher}_setup"] = [f"export OMP_NUM_THREADS={s.cpus_per_job}"]
    if s.mem_gb is not None:
        params["mem_gb"] = s.mem_gb
    if s.launcher == "slurm":
        for key in ("slurm_partition", "slurm_account"):
            if getattr(s, key):
                params[key] = getattr(s, key)
        if s.max_parallel is not None:
            params["slurm_array_parallelism"] = s.max_parallel
    return params


def _visible_gpus() -> int:
    """Local jobs see the GPUs this process sees (submitit hides all of them when asked for none)."""
    import torch

    return torch.cuda.device_count()


def make_executor(s: LaunchSettings, folder: Path, name: str, gpus: bool = True) -> Any:
    """A submitit executor for the elements, logs under `folder/<job id>_*`."""
    submitit = require_submitit()
    executor = submitit.AutoExecutor(folder=Path(folder), cluster=s.launcher)
    executor.update_parameters(**executor_parameters(s, name, gpus))
    return executor
