"""Who among the processes sharing the state does a job only one of them may do (looking
for a mount's outside changes, so each is published, and pushed, once): the holder of a
named lock. A holder that dies lets go of it, and another process takes it at its next
try. Here the processes of one host: an ``flock`` on a file of the state folder; the
processes of several hosts: postgres/leaders.py."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

from davserver.runtime.threads import offload


class Leaders(Protocol):
    """The named locks of the jobs."""

    async def take(self, name: str) -> bool:
        """Whether this process leads ``name`` (taking it if it is free); asked before
        each round of the job, it also tells a leader that lost the lock."""

    async def release(self, name: str) -> None:
        """Let go of ``name``."""

    async def close(self) -> None:
        """Let go of everything."""


class FileLeaders:
    """:class:`Leaders` as locks on files of ``folder`` (one per name)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._held: dict[str, int] = {}

    def _path(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        return self._folder / f"poll-{digest}.lock"

    async def take(self, name: str) -> bool:
        """Whether this process holds the lock file of ``name``."""
        if name in self._held:
            return True
        fd = await offload(self._try, self._path(name))
        if fd is None:
            return False
        self._held[name] = fd
        return True

    @staticmethod
    def _try(path: Path) -> int | None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    async def release(self, name: str) -> None:
        """Close the lock file of ``name``."""
        fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)

    async def close(self) -> None:
        """Close every lock file."""
        for name in list(self._held):
            await self.release(name)
