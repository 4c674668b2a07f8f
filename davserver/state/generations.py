"""How the processes of one host tell each other, cheaply, that something shared changed.

A small file in the state folder, mapped into memory by every process, holds one word per
topic (the locks, the change sequence). A process that changes something shared writes a
new value into its topic's word; the others compare the word with the value they saw last
(a memory read, no system call) at the start of each request, and reload what they cache
only when it differs. Values only need to differ: each process writes numbers no other
writes (its own counter, tagged with a random id), so no lock is needed. A torn read at
worst makes a process reload once more than needed.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
from pathlib import Path

SIZE = 4096
TOPICS = ("locks", "changes", "shares")
_WORD = struct.Struct("<Q")


class Generations:
    """The shared words of ``path`` (created when missing; one per name in TOPICS)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._tag = secrets.randbits(24) << 40
        self._counter = 0
        self._seen: dict[str, int] = {}

    def open(self) -> None:
        """Map the file (blocking: call it off the event loop, or at start)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        for topic in TOPICS:
            self._seen[topic] = self._read(topic)

    def _read(self, topic: str) -> int:
        if self._map is None:
            return 0
        return int(_WORD.unpack_from(self._map, 8 * TOPICS.index(topic))[0])

    def bump(self, topic: str) -> None:
        """Tell the other processes that ``topic`` changed."""
        if self._map is None:
            return
        self._counter = (self._counter + 1) & ((1 << 40) - 1)
        value = self._tag | self._counter
        _WORD.pack_into(self._map, 8 * TOPICS.index(topic), value)
        self._seen[topic] = value

    def changed(self, topic: str) -> bool:
        """Whether another process bumped ``topic`` since this one last looked."""
        value = self._read(topic)
        if value == self._seen.get(topic, 0):
            return False
        self._seen[topic] = value
        return True

    def close(self) -> None:
        """Unmap the file."""
        if self._map is not None:
            self._map.close()
            self._map = None
