"""Import every built-in model, reader and task module so their registrations run."""
from __future__ import annotations

import importlib
import pkgutil


def load_plugins() -> None:
    from . import models, tasks
    from .data import readers

    for package in (models, readers, tasks):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
