"""Named locks that hold across the processes of a host: a coroutine holds one while it
checks something and writes what depends on it (the UIDs of a calendar, say).

Within a process, an asyncio lock per name; across processes, a byte-range lock
(``lockf``) on a shared file, byte <stripe of the name>. A taken range is tried again
every few milliseconds rather than waited for in a thread, so waiting costs no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

STRIPES = 4096
RETRY = 0.005


class Mutexes:
    """Named locks over the file ``path`` (created with its folder when first used)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fd: int | None = None
        self._local: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, asyncio.Task[object]] = {}

    def open(self) -> None:
        """Open the lock file (blocking: off the event loop, or at start)."""
        if self._path is not None and self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        """Close the lock file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock named ``name`` for the block (a task already holding it passes:
        a write holding a collection's lock may refresh that collection)."""
        stripe = zlib.crc32(name.encode("utf-8", "surrogateescape")) % STRIPES
        task = asyncio.current_task()
        if task is not None and self._holders.get(stripe) is task:
            yield
            return
        local = self._local.setdefault(stripe, asyncio.Lock())
        async with local:
            if task is not None:
                self._holders[stripe] = task
            try:
                async with self._across(stripe):
                    yield
            finally:
                self._holders.pop(stripe, None)

    @contextlib.asynccontextmanager
    async def _across(self, stripe: int) -> AsyncIterator[None]:
        """The byte of ``stripe`` in the shared file, for the block."""
        fd = self._fd
        if fd is None:
            yield
            return
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
            await asyncio.sleep(RETRY)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, stripe)
