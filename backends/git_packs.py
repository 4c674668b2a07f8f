"""The packs of a served repository as its reading threads see them.

Packs come and go under a serving process: the upkeep process (git_gc.py) writes a new
pack and only then removes the loose objects or the packs it replaces, and a ``git gc``
run from outside does the same. A reader that cached the old list may find an object in
none of the packs it knows (it moved into a new one), or a pack it knows gone from disk
before it opened it. As git does (``reprepare_packed_git``), a miss rescans the pack
folder and looks again; a pack that vanished is dropped, and the search retried.

dulwich's own pack cache does this too, but it is not safe across threads (two threads
rescanning at once may pop the same pack and turn a hit into a miss), and it closes a
pack that vanished at once, under a thread that may be reading from it. Here rescans
take a lock; a search that missed looks again when the set changed meanwhile (by its
own rescan or another thread's); and a pack that left the folder is closed
``RETIRE_AFTER`` seconds later (at a later rescan or :meth:`PackSet.refresh`), so that
the descriptors and disk space of removed packs are given back without pulling them
from under a reader.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from dulwich.object_store import DiskObjectStore
from dulwich.pack import Pack, PackFileDisappeared

T = TypeVar("T")

RETIRE_AFTER = 10.0
"""Seconds a pack that left the folder stays open for the readers that still use it."""
ATTEMPTS = 4
"""Searches of one object, each after a rescan that found the folder changed."""


class PackSet:
    """The packs of ``store``, found with :meth:`lookup`; shared by the reading threads."""

    def __init__(self, store: DiskObjectStore) -> None:
        self._dir = os.fspath(store.pack_dir)
        self._store = store
        self._lock = threading.Lock()
        self._packs: dict[str, Pack] = {}
        self._retired: list[tuple[float, Pack]] = []
        self._scanned = False
        self._generation = 0  # changes of the set, so a miss knows whether to look again

    def lookup(self, sha: bytes, use: Callable[[Pack, str], T]) -> T:
        """``use(pack, path of its .pack file)`` for the first pack that has ``sha``.

        ``use`` raises KeyError when the pack does not hold the object, and may raise
        FileNotFoundError (or dulwich's PackFileDisappeared) when the pack is gone; then
        the folder is scanned again. KeyError when no pack holds it.
        """
        if not self._scanned:
            self.refresh()
        for _ in range(ATTEMPTS):
            with self._lock:
                seen, packs = self._generation, list(self._packs.items())
            for name, pack in packs:
                try:
                    return use(pack, os.path.join(self._dir, name + ".pack"))
                except (KeyError, FileNotFoundError, PackFileDisappeared):
                    continue
            self.refresh()
            if self._generation == seen:  # nothing new since the search began
                break
        raise KeyError(sha)

    def refresh(self) -> None:
        """Scan the folder: take in new packs, drop removed ones, close those removed
        long enough ago."""
        try:
            names = set(os.listdir(self._dir))
        except FileNotFoundError:
            names = set()
        # A pack counts once its index is there: the index is written last.
        present = {n[:-5] for n in names if n.endswith(".pack") and n[:-5] + ".idx" in names}
        with self._lock:
            self._scanned = True
            now = time.monotonic()
            added, removed = present - self._packs.keys(), self._packs.keys() - present
            for name in added:
                pack = self._open(name)
                if pack is not None:
                    self._packs[name] = pack
            for name in removed:
                self._retired.append((now, self._packs.pop(name)))
            if added or removed:
                self._generation += 1
            due = [p for since, p in self._retired if now - since >= RETIRE_AFTER]
            self._retired = [(t, p) for t, p in self._retired if now - t < RETIRE_AFTER]
        for pack in due:
            _close(pack)

    def _open(self, name: str) -> Pack | None:
        """The pack ``name`` with its index and data loaded (dulwich loads them on first
        use, and two threads doing so at once would each map them); None if it is gone
        already."""
        s = self._store
        pack = Pack(
            os.path.join(self._dir, name),
            object_format=s.object_format,
            delta_window_size=s.pack_delta_window_size,
            window_memory=s.pack_window_memory,
            delta_cache_size=s.pack_delta_cache_size,
            depth=s.pack_depth,
            threads=s.pack_threads,
            big_file_threshold=s.pack_big_file_threshold,
            delta_base_cache_limit=s.delta_base_cache_limit,
        )
        try:
            pack.index  # noqa: B018 - loads it
            pack.data  # noqa: B018
        except (FileNotFoundError, PackFileDisappeared):
            _close(pack)
            return None
        return pack

    def count(self) -> tuple[int, int]:
        """Packs in use and packs removed from disk but not yet closed."""
        with self._lock:
            return len(self._packs), len(self._retired)

    def close(self) -> None:
        """Close every pack (the store is closing)."""
        with self._lock:
            packs = [*self._packs.values(), *(p for _, p in self._retired)]
            self._packs, self._retired, self._scanned = {}, [], False
        for pack in packs:
            _close(pack)


def _close(pack: Pack) -> None:
    """Close ``pack``. A reader still inside it finds it closed and gone from disk, which
    is a vanished pack to it (it searches again); a view of the mapping still held keeps
    the mapping until dropped."""
    with contextlib.suppress(BufferError):
        pack.close()
