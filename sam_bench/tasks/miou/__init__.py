"""Task `miou` (importing the package registers it): task, prompted session, report section."""
from .task import MiouOptions, MiouTask

__all__ = ["MiouOptions", "MiouTask"]
