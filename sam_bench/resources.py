"""Where the shipped YAML folders (`datasets/`, `tasks/`) live: beside a checkout, or in the package.

A checkout keeps them at the repository's top level (the project layout); a wheel built by
`pip install .` carries copies under `sam_bench/_bundled/` (setup.py's build step copies them),
so a non-editable install finds them without the checkout.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The `datasets` or `tasks` folder: the checkout's top-level one first, else the bundled copy."""
    checkout = PACKAGE_DIR.parent / name
    # pyproject.toml beside the package marks a checkout (editable install or source tree).
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    bundled = PACKAGE_DIR / "_bundled" / name
    if bundled.is_dir():
        return bundled
    raise ConfigError(f"no '{name}' folder: looked in {checkout} and {bundled} (reinstall sam-bench)")
