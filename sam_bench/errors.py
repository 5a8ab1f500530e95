"""User-facing errors: each names the file or setting at fault and what is wrong with it.

The CLI prints these as one line and exits non-zero instead of showing a traceback.
"""


class SamBenchError(Exception):
    """Base class for errors caused by the user's input, files or configuration."""


class ConfigError(SamBenchError):
    """A bad name, option or combination of options."""


class CheckpointError(SamBenchError):
    """A checkpoint file that is missing, unreadable or not in the expected layout."""


class DataError(SamBenchError):
    """A dataset file that is missing, corrupt or not in the expected layout."""
