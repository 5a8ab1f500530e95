"""Format readers; importing this package registers them all in READERS."""
import importlib as _importlib
import pkgutil as _pkgutil

# open_dataset imports this package alone (no load_plugins), so registration happens here too.
for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")
