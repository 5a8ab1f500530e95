"""Expected time left, for runs whose output is a log file rather than a terminal.

tqdm shows `elapsed<remaining` on a terminal but draws nothing when stderr is not one (batch jobs,
`nohup`, CI); such runs log the rate and time left after the first image and then once a minute.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """`95` -> `1 min 35 s`; `7300` -> `2 h 2 min`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class EtaLog:
    def __init__(self, label: str, total: int, enabled: bool, every: float = 60.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.enabled = enabled and total > 0 and not sys.stderr.isatty()  # a terminal has tqdm's ETA
        self.done = 0
        self.start = self.last = time.perf_counter()

    def step(self) -> None:
        """Call after each finished image."""
        self.done += 1
        now = time.perf_counter()
        if not self.enabled or (self.done > 1 and now - self.last < self.every and self.done < self.total):
            return
        self.last = now
        rate = (now - self.start) / self.done
        log.info("%s: %d/%d images, %.1f s per image, about %s left", self.label, self.done, self.total, rate,
                 duration(rate * (self.total - self.done)))
