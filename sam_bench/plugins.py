"""Load every model, reader and task: the built-in modules, then external packages' entry points.

Built-ins are imported by package name (no static import of the packages above this module), so
the registries fill in one place. An external package registers its own entries by declaring an
entry point in one of the groups below that points to a module (importing it runs its
`@MODELS.register(...)` / `@TASKS.register(...)` / `@READERS.register(...)` decorators), e.g. in its
pyproject.toml:

    [project.entry-points."sam_bench.models"]
    efficientvit_sam = "my_package.sam_bench_adapter"
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib.metadata import entry_points

from .errors import ConfigError

log = logging.getLogger(__name__)

BUILTIN_PACKAGES = {"sam_bench.models": "sam_bench.models", "sam_bench.readers": "sam_bench.data.readers",
                    "sam_bench.tasks": "sam_bench.tasks"}
_loaded = False


def load_plugins() -> None:
    """Idempotent: registers every built-in and installed plugin entry once per process."""
    global _loaded
    if _loaded:
        return
    for group, package_name in BUILTIN_PACKAGES.items():
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")
    for group in BUILTIN_PACKAGES:
        for entry in entry_points(group=group):
            try:
                entry.load()
            except Exception as exc:  # a broken third-party plugin must name itself
                raise ConfigError(f"plugin '{entry.name}' ({entry.value}, entry point group {group}) "
                                  f"failed to load: {type(exc).__name__}: {exc}") from exc
            log.debug("loaded plugin %s from %s", entry.name, entry.value)
    _loaded = True
