"""The choices of task `vos_interactive` (docs/PROTOCOLS.md): the task's options, read by the
protocol loops (protocol.py) and validated when a run or a suite names them."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError

SETTINGS = ("offline", "online")
FIRST = ("clicks", "mask", "box")
TIES = ("earliest", "latest")
PASS_STARTS = ("first_frame", "interacted")
CANDIDATES = ("annotated", "scored")


@dataclass(frozen=True)
class VosInteractiveOptions:
    """The protocol's choices: the task's options (docs/PROTOCOLS.md, `vos_interactive`)."""

    setting: str = "offline"  # offline (full passes, worst frame next) | online (one forward pass)
    first: str = "clicks"  # first interaction on the object's first annotated frame: clicks | mask | box
    clicks_per_frame: int = 3  # RITM clicks per interacted frame (the first one too, with first=clicks)
    frames: int = 8  # interacted frames, the first included: J&F@1..frames
    threshold: float = 0.75  # online: pause at a frame whose J is below this
    frame_ties: str = "earliest"  # [open] offline: equal lowest J -> earliest | latest frame
    pass_start: str = "first_frame"  # [open] offline: a pass re-propagates from the first frame | interacted (both ways)
    propagate_each_click: bool = False  # [open] offline: a full pass after each click of a frame, not only the last
    candidates: str = "annotated"  # [open] frames that may be interacted with: annotated | scored (the metric's frames)

    def __post_init__(self) -> None:
        for name, allowed in (("setting", SETTINGS), ("first", FIRST), ("frame_ties", TIES),
                              ("pass_start", PASS_STARTS), ("candidates", CANDIDATES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"option {name} of task 'vos_interactive': {getattr(self, name)!r}; choose {allowed}")
        if not 1 <= int(self.clicks_per_frame) <= 20:
            raise ConfigError(f"option clicks_per_frame of task 'vos_interactive': {self.clicks_per_frame}; need 1..20")
        if not 1 <= int(self.frames) <= 100:
            raise ConfigError(f"option frames of task 'vos_interactive': {self.frames}; need 1..100")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise ConfigError(f"option threshold of task 'vos_interactive': {self.threshold}; need 0 < t <= 1")
