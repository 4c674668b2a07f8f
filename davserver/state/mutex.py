"""Named locks that hold across the processes sharing the state: a coroutine holds one
while it checks something and writes what depends on it (the UIDs of a calendar, say).

:class:`Mutexes` is the interface. :class:`FileMutexes` serves the processes of one host:
within a process, an asyncio lock per name; across processes, a byte-range lock
(``lockf``) on a shared file, byte <stripe of the name> (davserver/runtime/byterange.py).
A byte another process holds is waited for in the kernel, on a thread, which wakes the
moment it is let go: with a calendar's writes alternating between two workers, a retry
every few milliseconds left the lock idle for half a retry on average after each write,
and that idle time bounded a bulk upload. A few threads wait at most; a further wait
tries again every few milliseconds. The PostgreSQL one (davserver/state/postgres/mutex.py)
serves several hosts.

Once a lock is held, ``after()`` runs (when given): it brings what the process caches up
to date with what the previous holder did, before the holder checks anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from davserver.runtime.byterange import lock_byte, try_lock_byte, unlock_byte
from davserver.runtime.threads import WorkerPool

STRIPES = 4096
WAITERS = 4
"""Threads of a process at most that wait in the kernel for bytes other processes hold."""
RETRY = 0.005
"""Seconds between the tries of a wait beyond :data:`WAITERS`."""


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
        self._waiters: WorkerPool | None = None  # started at the first wait
        self._waiting = 0

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
        if self._waiters is not None:
            self._waiters.close()
            self._waiters = None

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
        if not try_lock_byte(fd, stripe):
            await self._wait(fd, stripe)
        try:
            yield
        finally:
            unlock_byte(fd, stripe)

    async def _wait(self, fd: int, stripe: int) -> None:
        """Take the byte of ``stripe`` once the process holding it lets go."""
        if self._waiting >= WAITERS:
            while not try_lock_byte(fd, stripe):
                await asyncio.sleep(RETRY)
            return
        if self._waiters is None:
            self._waiters = WorkerPool(WAITERS, "mutexwait")
        self._waiting += 1
        try:
            taken = self._waiters.submit(asyncio.get_running_loop(), lock_byte, fd, stripe)
            await _to_the_end(taken, lambda: unlock_byte(fd, stripe))
        finally:
            self._waiting -= 1


async def _to_the_end(wait: asyncio.Future[None], undo: Callable[[], None]) -> None:
    """Await ``wait`` (a lock taken on a thread) to its end even when the task is
    cancelled meanwhile; a cancelled task then undoes what it took and is cancelled. (A
    byte-range lock belongs to the process: left taken, it would be taken for the next
    task's, and let go under it.)"""
    cancelled = False
    while not wait.done():
        try:
            await asyncio.shield(wait)
        except asyncio.CancelledError:
            cancelled = True
    wait.result()  # the wait's own failure, if any
    if cancelled:
        undo()
        raise asyncio.CancelledError
