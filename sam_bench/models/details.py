"""What the report's model column says about a checkpoint-backed model (issue 11)."""
from __future__ import annotations

import torch


def model_details(family: str, size: str, model: torch.nn.Module, checkpoint: str | None,
                  checkpoint_sha256: str, **extra: object) -> dict:
    """ModelInfo.details: family, size, parameter count and checkpoint sha256 (plus `extra`)."""
    return {"family": family, "size": size, "parameters": parameter_count(model),
            "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256, **extra}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
