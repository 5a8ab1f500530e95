"""Task `vos_interactive` (importing the package registers it): protocol loops, task, report section."""
from .task import VosInteractiveTask

__all__ = ["VosInteractiveTask"]
