"""The concepts task package; importing it registers the task."""
from . import task  # noqa: F401
