"""The one stage timer: wall seconds per named stage, summed (the runner's, the AMG's, the clicks')."""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator


class StageTimers:
    """Wall time per stage (encode, decode, metric, ...), summed over a run or a call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
