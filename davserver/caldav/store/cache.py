"""The bytes of recently used calendar objects, kept in memory by path and ETag so that
reports answer without reading the disk (an ETag that moved is a miss).

Each worker has its own cache, so its budget counts once per worker: 12 MiB holds every
object of a calendar of 12,000 typical events (about 620 bytes each, and :data:`ENTRY`
of bookkeeping) and bounds what the cache adds to a worker serving a larger one (whose
index takes about 800 bytes an event besides: 90 MiB at 110,000 events)."""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_LIMIT = 12 << 20
ENTRY = 256
"""What an entry costs besides its bytes (its path, the tuple with its ETag, the links of
the LRU order: about 250 bytes measured), counted in the budget."""


class BodyCache:
    """Least recently used bodies up to ``limit`` bytes in all."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._size = 0
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def get(self, path: str, etag: str) -> bytes | None:
        """The bytes of ``path`` when cached with this ETag."""
        found = self._bodies.get(path)
        if found is None or found[0] != etag:
            return None
        self._bodies.move_to_end(path)
        return found[1]

    def put(self, path: str, etag: str, data: bytes) -> None:
        """Remember the bytes of ``path`` at ``etag``."""
        if len(data) > self._limit // 16:
            return
        self.drop(path)
        self._bodies[path] = (etag, data)
        self._size += len(data) + ENTRY
        while self._size > self._limit:
            _, (_, old) = self._bodies.popitem(last=False)
            self._size -= len(old) + ENTRY

    def drop(self, path: str) -> None:
        """Forget ``path``."""
        found = self._bodies.pop(path, None)
        if found is not None:
            self._size -= len(found[1]) + ENTRY
