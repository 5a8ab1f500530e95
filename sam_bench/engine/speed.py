"""run.json's `speed` record: comparable throughput of a run, for accuracy-against-speed charts.

Rates count the images this process evaluated (a resumed run's earlier images are not timed):
encoder images per second over the `encode` stage, prompt-stage images per second over the rest
of each image's evaluation (prompts, decoding, post-processing, per-image metric), and the whole;
the peak memory of the task run (PeakMemory).
"""
from __future__ import annotations

import platform
import resource
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch


def device_name(device: torch.device) -> str:
    """The accelerator's marketing name, or the CPU model: charts compare runs of one kind."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            for line in open("/proc/cpuinfo", encoding="utf-8"):
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
        except OSError:
            pass
        return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    return device.type


PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


class PeakMemory:
    """The peak memory of one task run: reset when the run starts, read when it ends. On the GPU,
    torch's peak allocation; on the CPU, Linux's peak resident set (VmHWM, reset by writing 5 to
    clear_refs), so a task in a suite does not inherit an earlier task's peak. Where the reset is
    not possible the process's peak since it started (ru_maxrss) is read, and `scope` says so."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.scope = "task" if self._reset() else "process"

    def _reset(self) -> bool:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return True
        try:
            PROC_CLEAR_REFS.write_text("5")
            return _vm_hwm_bytes() is not None
        except OSError:
            return False

    def read(self) -> dict[str, Any]:
        """{"peak_memory_bytes": ..., "peak_memory_scope": "task" | "process"}."""
        if self.device.type == "cuda":
            peak: Optional[int] = int(torch.cuda.max_memory_allocated(self.device))
        else:
            peak = _vm_hwm_bytes() if self.scope == "task" else None
            if peak is None:  # Linux reports ru_maxrss in KiB
                peak, self.scope = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process"
        return {"peak_memory_bytes": peak, "peak_memory_scope": self.scope}


def _vm_hwm_bytes() -> Optional[int]:
    """The peak resident set since the last reset (VmHWM in /proc/self/status), None off Linux."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rate(images: int, seconds: float) -> Optional[float]:
    return images / seconds if images and seconds > 0 else None


def measured(peak: PeakMemory) -> dict[str, Any]:
    """Where a process evaluated its images and its peak memory: a shard keeps this in its record,
    since `sam-bench score` writes the speed record in another process (on the CPU)."""
    return {"device_name": device_name(peak.device), "device_type": peak.device.type, **peak.read()}


def merge_measured(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Shards evaluated by separate processes: the largest peak of one process; scope 'task' only if
    every shard's is."""
    return {"device_name": ", ".join(sorted({p["device_name"] for p in parts})),
            "device_type": ", ".join(sorted({p["device_type"] for p in parts})),
            "peak_memory_bytes": max(p["peak_memory_bytes"] for p in parts),
            "peak_memory_scope": "task" if all(p["peak_memory_scope"] == "task" for p in parts) else "process"}


def speed_record(measurement: Mapping[str, Any], precision: str, compiled: bool, batch_size: Optional[int],
                 encode_batch: int, stage_seconds: Mapping[str, float], images_timed: int) -> dict[str, Any]:
    """`measurement`: measured() of the process (or merge_measured() of the shards) that evaluated."""
    evaluate = stage_seconds.get("evaluate", 0.0)
    encode = stage_seconds.get("encode", 0.0)
    return {"device_name": measurement["device_name"], "device_type": measurement["device_type"],
            "precision": precision, "compile": compiled, "batch_size": batch_size, "encode_batch": encode_batch,
            "images_timed": images_timed, "encoder_images_per_second": _rate(images_timed, encode),
            "prompt_images_per_second": _rate(images_timed, evaluate - encode),
            "images_per_second": _rate(images_timed, evaluate),
            "peak_memory_bytes": measurement["peak_memory_bytes"], "peak_memory_scope": measurement["peak_memory_scope"]}
