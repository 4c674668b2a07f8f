"""How the processes sharing the state tell each other, cheaply, that something shared
changed (the locks, the change sequence), so that each drops or reloads what it caches.

:class:`Generations` is the interface: ``changed`` is asked at the start of every request
and must cost no I/O; ``settle`` is asked before a write, and makes sure that what other
processes said before it is seen (a lock granted elsewhere a moment ago is enforced).
:class:`FileGenerations` serves the processes of one host; the PostgreSQL one
(davserver/state/postgres/generations.py) serves several hosts.

One host: a small file in the state folder, mapped into memory by every process, holds
one word per topic. A process that changes something shared writes a
new value into its topic's word; the others compare the word with the value they saw last
(a memory read, no system call) at the start of each request, and reload what they cache
only when it differs. Values only need to differ: each process writes numbers no other
writes (its own counter, tagged with a random id). A torn read at worst makes a process
reload once more than needed.

A write replaces the word, so it could hide another process's write that the writer had
not read yet (the writer then takes the word for its own and never reloads): a process
holding a stale lock index would show, or enforce, a lock released elsewhere. So writes
take the file's lock (``flock``) and read the word they replace: a value the writer had
not seen makes its next :meth:`changed` say yes. Readers take no lock.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import secrets
import struct
from pathlib import Path
from typing import Protocol

from davserver.runtime.threads import offload

SIZE = 4096
TOPICS = ("locks", "changes", "shares")
_WORD = struct.Struct("<Q")


class Generations(Protocol):
    """Tells the processes sharing the state that a topic (one of TOPICS) changed."""

    def changed(self, topic: str) -> bool:
        """Whether another process said ``topic`` changed since this one last asked (no
        I/O: asked at the start of every request)."""

    async def settle(self) -> None:
        """Return once what other processes said before this call is seen by
        :meth:`changed` (a write asks before it checks the locks)."""

    async def bump(self, topic: str) -> None:
        """Tell the other processes that ``topic`` changed."""

    async def open(self) -> None:
        """Prepare (before the first request)."""

    async def close(self) -> None:
        """Release what :meth:`open` took."""


class FileGenerations:
    """A :class:`Generations` over the shared words of ``path`` (created when missing; one
    per name in TOPICS), for the processes of one host. A word written by one process is
    seen by the others at once: :meth:`settle` has nothing to wait for."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._tag = secrets.randbits(24) << 40
        self._counter = 0
        self._seen: dict[str, int] = {}
        self._missed: set[str] = set()
        """Topics whose word held, when this process replaced it, a value it had not seen."""
        self._fd = -1  # kept open for flock

    async def open(self) -> None:
        """Map the file."""
        await offload(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        for topic in TOPICS:
            self._seen[topic] = self._read(topic)

    def _read(self, topic: str) -> int:
        if self._map is None:
            return 0
        return int(_WORD.unpack_from(self._map, 8 * TOPICS.index(topic))[0])

    async def settle(self) -> None:
        """Nothing to wait for: a word another process wrote is in memory already."""

    async def bump(self, topic: str) -> None:
        """Tell the other processes that ``topic`` changed."""
        if self._map is None:
            return
        self._counter = (self._counter + 1) & ((1 << 40) - 1)
        value = self._tag | self._counter
        replaced = self._replace(topic, value, False)
        if replaced is None:  # another process is writing a word this very moment
            replaced = await offload(self._replace, topic, value, True)
        assert replaced is not None
        if replaced != self._seen.get(topic, 0):
            self._missed.add(topic)
        self._seen[topic] = value

    def _replace(self, topic: str, value: int, wait: bool) -> int | None:
        """Write ``value`` into the topic's word under the file's lock; the value it
        replaced (None without ``wait`` when another process holds the lock)."""
        assert self._map is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        try:
            replaced = self._read(topic)
            _WORD.pack_into(self._map, 8 * TOPICS.index(topic), value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return replaced

    def changed(self, topic: str) -> bool:
        """Whether another process bumped ``topic`` since this one last looked."""
        value = self._read(topic)
        missed = topic in self._missed
        self._missed.discard(topic)
        if value == self._seen.get(topic, 0):
            return missed
        self._seen[topic] = value
        return True

    async def close(self) -> None:
        """Unmap the file."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
