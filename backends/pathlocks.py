"""Serializing the writes of one path, so that a write's precondition is checked against
the very state it replaces.

Each write takes the lock of its path (both paths for a MOVE) around its check and its
rename; the locks are striped (a path hashes to one of a fixed number of locks), so they
cost no memory per path and a rare collision only makes two writes wait for each other.
Locks are always taken in the order of their stripes, so two writes that each need two
never wait for each other in a circle.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator

STRIPES = 1024


class PathLocks:
    """Striped locks by path for the worker threads of one process."""

    def __init__(self, stripes: int = STRIPES) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def _stripe(self, path: str) -> int:
        return zlib.crc32(path.encode("utf-8", "surrogateescape")) % len(self._locks)

    @contextlib.contextmanager
    def hold(self, *paths: str) -> Iterator[None]:
        """Hold the locks of ``paths`` (on a worker thread: it may wait)."""
        stripes = sorted({self._stripe(p) for p in paths})
        with contextlib.ExitStack() as stack:
            for i in stripes:
                stack.enter_context(self._locks[i])
            yield
