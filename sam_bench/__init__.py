"""sam-bench: the Segment Anything paper's zero-shot protocols, rebuilt and tested."""
from __future__ import annotations

__version__ = "0.1.0"

from .api import report, run  # noqa: E402

__all__ = ["run", "report", "__version__"]
