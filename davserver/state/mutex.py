"""Named locks that hold across the processes sharing the state: a coroutine holds one
while it checks something and writes what depends on it (the UIDs of a calendar, say).

:class:`Mutexes` is the interface. :class:`FileMutexes` serves the processes of one host:
within a process, an asyncio lock per name; across processes, a byte-range lock
(``lockf``) on a shared file, byte <stripe of the name>. A taken range is tried again
every few milliseconds rather than waited for in a thread, so waiting costs no thread.
The PostgreSQL one (davserver/state/postgres/mutex.py) serves several hosts.

Once a lock is held, ``after()`` runs (when given): it brings what the process caches up
to date with what the previous holder did, before the holder checks anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

STRIPES = 4096
RETRY = 0.005


After = Callable[[], Awaitable[None]]
"""What runs once a lock is held (catching up with what other processes changed)."""


class Mutexes(Protocol):
    """Named locks across the processes sharing the state."""

    def open(self) -> None:
        """Prepare (blocking: called off the event loop, or at start)."""

    def close(self) -> None:
        """Release what :meth:`open` took."""

    def hold(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold the lock named ``name`` for the block."""


class ProcessMutexes(ABC):
    """What every :class:`Mutexes` does within a process: an asyncio lock per key (the
    number a name maps to), which a task already holding it passes (a write holding a
    collection's lock may refresh that collection); then :meth:`_across` holds the key
    for the other processes, and ``after()`` runs."""

    def __init__(self, after: After | None) -> None:
        self._after = after
        self._local: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, asyncio.Task[object]] = {}

    @abstractmethod
    def _key(self, name: str) -> int:
        """The number of the lock named ``name`` (names may share one)."""

    @abstractmethod
    def _across(self, key: int) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` against the other processes for the block."""

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock named ``name`` for the block (re-entrant per task)."""
        key = self._key(name)
        task = asyncio.current_task()
        if task is not None and self._holders.get(key) is task:
            yield
            return
        local = self._local.setdefault(key, asyncio.Lock())
        async with local:
            if task is not None:
                self._holders[key] = task
            try:
                async with self._across(key):
                    if self._after is not None:
                        await self._after()
                    yield
            finally:
                self._holders.pop(key, None)


class FileMutexes(ProcessMutexes):
    """Named locks over the file ``path`` (created with its folder when first used;
    None: within this process only)."""

    def __init__(self, path: Path | None, after: After | None = None) -> None:
        super().__init__(after)
        self._path = path
        self._fd: int | None = None

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

    def _key(self, name: str) -> int:
        """The name's stripe: its byte of the file."""
        return zlib.crc32(name.encode("utf-8", "surrogateescape")) % STRIPES

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
