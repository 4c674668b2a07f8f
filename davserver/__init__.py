"""davserver: a WebDAV and CalDAV server with pluggable storage."""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"


def _checkout_backends() -> None:
    """Make ``davserver.backends`` the checkout's ``backends/`` folder when this package
    is imported from a source checkout (``python -m pytest`` from the root, an editable
    install); an installed package holds the backends as ``davserver/backends``."""
    here = _Path(__file__).parent
    source = here.parent / "backends"
    if (here / "backends").is_dir() or not (source / "__init__.py").is_file():
        return
    spec = _util.spec_from_file_location(
        f"{__name__}.backends", source / "__init__.py", submodule_search_locations=[str(source)]
    )
    if spec is None or spec.loader is None:
        return
    module = _util.module_from_spec(spec)
    _sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_checkout_backends()
