"""The bytes of recently used calendar objects, kept in memory by path and ETag so that
reports answer without reading the disk (an ETag that moved is a miss), and the data
elements lately rendered from them.

Each worker has its own cache, so its budget counts once per worker: 11 MiB of bytes hold
every object of a calendar of 12,000 typical events (about 620 bytes each, and
:data:`ENTRY` of bookkeeping), and 1 MiB the rendered elements of the last 1,100 or so
objects a multiget or a query asked for whole, so that an item asked for again (by
another device of its owner, by each sharee of its calendar, by a client reloading a
week) is not decoded and escaped again. The budget bounds what the cache adds to a worker
serving a larger calendar (whose index takes about 800 bytes an event besides: 90 MiB at
110,000 events)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_LIMIT = 11 << 20
DEFAULT_TEXTS = 1 << 20
ENTRY = 256
"""What an entry costs besides its bytes (its path, the tuple with its ETag, the links of
the LRU order: about 250 bytes measured), counted in the budget."""


class BodyCache:
    """Least recently used bodies up to ``limit`` bytes in all, and renderings of them
    up to ``texts``."""

    def __init__(self, limit: int = DEFAULT_LIMIT, texts: int = DEFAULT_TEXTS) -> None:
        self._bodies = _Recent(limit)
        self._texts = _Recent(texts)

    def get(self, path: str, etag: str) -> bytes | None:
        """The bytes of ``path`` when cached with this ETag."""
        found = self._bodies.get(path, etag)
        return found[1] if found is not None else None

    def rendered(self, path: str, etag: str, render: Callable[[bytes], str]) -> str | None:
        """``render`` of the bytes of ``path`` at this ETag: kept from an earlier call
        while it is among the latest, else made from the cached bytes (None when they are
        not cached). ``render`` is a function that depends on the bytes alone."""
        kept = self._texts.get(path, etag)
        if kept is not None and kept[1] is render:
            text: str = kept[2]
            return text
        found = self._bodies.get(path, etag)
        if found is None:
            return None
        made: str = render(found[1])
        self._texts.put(path, (etag, render, made), len(made))
        return made

    def put(self, path: str, etag: str, data: bytes) -> None:
        """Remember the bytes of ``path`` at ``etag``."""
        self._texts.drop(path)
        self._bodies.put(path, (etag, data), len(data))

    def drop(self, path: str) -> None:
        """Forget ``path``."""
        self._bodies.drop(path)
        self._texts.drop(path)


class _Recent:
    """Entries (tuples whose first field is an ETag) by path, least recently used first,
    up to ``limit`` bytes: each entry's given size and :data:`ENTRY`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._entries: OrderedDict[str, tuple[int, tuple[Any, ...]]] = OrderedDict()

    def get(self, path: str, etag: str) -> tuple[Any, ...] | None:
        found = self._entries.get(path)
        if found is None or found[1][0] != etag:
            return None
        self._entries.move_to_end(path)
        return found[1]

    def put(self, path: str, entry: tuple[Any, ...], size: int) -> None:
        if size > self._limit // 16:
            return
        self.drop(path)
        self._entries[path] = (size + ENTRY, entry)
        self._size += size + ENTRY
        while self._size > self._limit:
            _, (old, _) = self._entries.popitem(last=False)
            self._size -= old

    def drop(self, path: str) -> None:
        found = self._entries.pop(path, None)
        if found is not None:
            self._size -= found[0]
