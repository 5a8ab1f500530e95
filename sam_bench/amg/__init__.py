"""Automatic mask generation, faithful to segment_anything's SamAutomaticMaskGenerator."""
from .generator import AutomaticMaskGenerator
from .settings import AmgResult, AmgSettings

__all__ = ["AmgResult", "AmgSettings", "AutomaticMaskGenerator"]
