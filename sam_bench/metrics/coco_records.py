"""How the per-image COCOeval / LVISEval match records are stored (packed arrays in json), shared by
the evaluator that writes them (coco.py) and the bootstrap that re-accumulates them (coco_resample.py)."""
from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np

AREA_NAMES = ("all", "small", "medium", "large")
_T = 10  # IoU thresholds .50:.05:.95 in both libraries


def _pack(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def _unpack(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def _bits(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    """A list over areas of (T, D) 0/1 arrays -> (D,) uint64, bit a*T+t."""
    out = np.zeros(width, np.uint64)
    for a, m in enumerate(rows):
        for t in range(m.shape[0]):
            out |= (m[t] != 0).astype(np.uint64) << np.uint64(a * _T + t)
    return out


def _unbits(bits: np.ndarray, area: int) -> np.ndarray:
    shifts = np.arange(area * _T, area * _T + _T, dtype=np.uint64)[:, None]
    return ((bits[None, :] >> shifts) & np.uint64(1)).astype(bool)
