"""Importing the application of a WSGI or ASGI mount by its ``module:attribute`` name."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from davserver.config import ConfigError

_import_lock = threading.Lock()


def load(kind: str, spec: str, pythonpath: tuple[Path, ...]) -> Callable[..., Any]:
    """Import ``package.module:callable`` (``application`` when no attribute is named)
    after putting ``pythonpath`` first on sys.path; ``kind`` ("WSGI", "ASGI") names the
    mount type in the error (blocking: an import reads files)."""
    with _import_lock:
        for folder in reversed(pythonpath):
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        module_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for name in (attr or "application").split("."):
                obj = getattr(obj, name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{kind} app {spec!r}: cannot load: {exc}") from exc
    if not callable(obj):
        raise ConfigError(f"{kind} app {spec!r}: {type(obj).__name__} is not callable")
    return obj  # type: ignore[no-any-return]
