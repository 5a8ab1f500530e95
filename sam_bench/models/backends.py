"""Optional model-family packages: import them on demand with a one-line install hint.

Adapter modules are imported for every run (registration), so they must not import their
family's package at module level; they declare it here and call `import_backend` in the factory.
`list models` reads the declarations to say which families are usable.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from dataclasses import dataclass
from types import ModuleType

from ..errors import ConfigError


@dataclass(frozen=True)
class Backend:
    module: str  # import name
    pip_name: str  # PyPI distribution(s)
    extra: str  # sam-bench extra that installs it
    needs: tuple[str, ...] = ()  # further imports the package needs but does not declare (timm)


BACKENDS: dict[str, Backend] = {
    # sam2 must be built with SAM2_BUILD_CUDA=0 pip install --no-build-isolation (see .ci/run).
    "sam2": Backend("sam2", "sam2, hydra-core and iopath (SAM2_BUILD_CUDA=0, --no-build-isolation)", "sam2"),
    "sam3": Backend("sam3", "sam3 and psutil", "sam3", needs=("psutil",)),
}


def declare_backend(model: str, module: str, pip_name: str, extra: str, needs: tuple[str, ...] = ()) -> None:
    """Record that registered model `model` needs `module` (installed by `pip install sam-bench[extra]`)."""
    BACKENDS[model] = Backend(module, pip_name, extra, needs)


def backend_status(model: str) -> str:
    """'' for models without an optional package, else 'installed' or the pip command that adds it."""
    backend = BACKENDS.get(model)
    if backend is None:
        return ""
    missing = [m for m in (backend.module, *backend.needs) if importlib.util.find_spec(m) is None]
    if not missing:
        return f"[{backend.module}: installed]"
    return f"[{', '.join(missing)}: missing; pip install 'sam-bench[{backend.extra}]']"


def import_backend(model: str, module: str | None = None) -> ModuleType:
    """Import the package of `model` (or its submodule `module`); ConfigError naming the pip command."""
    backend = BACKENDS[model]
    name = module or backend.module
    try:
        with warnings.catch_warnings():
            # timm deprecation and registry-overwrite warnings raised by the TinyViT copies of
            # segment_anything_hq and mobile_sam at import time; they are not the user's concern.
            warnings.simplefilter("ignore")
            for needed in backend.needs:
                importlib.import_module(needed)
            return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"model '{model}' needs {backend.pip_name} ({exc.name or name} is not importable): "
                          f"pip install 'sam-bench[{backend.extra}]'") from None
