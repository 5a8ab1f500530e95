"""run.json's `speed` record: comparable throughput of a run, for accuracy-against-speed charts.

Rates count the images this process evaluated (a resumed run's earlier images are not timed):
encoder images per second over the `encode` stage, prompt-stage images per second over the rest
of each image's evaluation (prompts, decoding, post-processing, per-image metric), and the whole.
"""
from __future__ import annotations

import platform
import resource
from typing import Any, Mapping, Optional

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


def peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory allocated by torch, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _rate(images: int, seconds: float) -> Optional[float]:
    return images / seconds if images and seconds > 0 else None


def speed_record(device: torch.device, precision: str, compiled: bool, batch_size: Optional[int],
                 encode_batch: int, stage_seconds: Mapping[str, float], images_timed: int) -> dict[str, Any]:
    evaluate = stage_seconds.get("evaluate", 0.0)
    encode = stage_seconds.get("encode", 0.0)
    return {"device_name": device_name(device), "device_type": device.type, "precision": precision,
            "compile": compiled, "batch_size": batch_size, "encode_batch": encode_batch,
            "images_timed": images_timed, "encoder_images_per_second": _rate(images_timed, encode),
            "prompt_images_per_second": _rate(images_timed, evaluate - encode),
            "images_per_second": _rate(images_timed, evaluate), "peak_memory_bytes": peak_memory_bytes(device)}
