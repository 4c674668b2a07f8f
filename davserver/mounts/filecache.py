"""A short-lived memory cache of small files' lookups, so a hot file needs no disk call.

An entry is trusted for ``ttl`` seconds after the disk was read; then the next request
reads the disk again (like nginx's ``open_file_cache_valid``). Only answers held in memory
are kept, up to ``max_bytes`` in all, the oldest first out.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

_V = TypeVar("_V")
# Counted for every entry besides its own size, so that many tiny entries (one file under
# many spellings of its URL, say) cannot grow the cache without bound.
ENTRY_COST = 1024


class TtlCache(Generic[_V]):
    """Values with a size, each valid for ``ttl`` seconds after it was stored."""

    def __init__(self, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._entries: dict[Hashable, tuple[float, int, _V]] = {}  # oldest first
        self._bytes = 0

    def get(self, key: Hashable) -> _V | None:
        """The value stored under ``key`` if it is still valid."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._drop(key)
            return None
        return entry[2]

    def put(self, key: Hashable, value: _V, size: int) -> None:
        """Store ``value`` (of ``size`` bytes), evicting the oldest entries."""
        size += ENTRY_COST
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + self.ttl, size, value)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key)[1]
