"""Serializing the writes of one path, so that a write's precondition is checked against
the very state it replaces.

Each write takes the lock of its path (both paths for a MOVE) around its check and its
rename; the locks are striped (a path hashes to one of a fixed number of locks), so they
cost no memory per path and a rare collision only makes two writes wait for each other.
Locks are always taken in the order of their stripes, so two writes that each need two
never wait for each other in a circle.

Within a process a stripe is a thread lock; between processes (the workers of a host,
or hosts sharing the folder over a network filesystem) it is also a byte-range lock
(``lockf``) on byte <stripe> of one lock file in the store, taken after the thread lock
(POSIX record locks belong to the process, not to the thread). Because they belong to
the process, the kernel's deadlock detection sees two threads of one worker as one
waiter: worker A's thread holding stripe 3 while its other thread waits for stripe 5,
which worker B holds while waiting for stripe 3, looks like a circle although A's first
thread will let go. The kernel then answers EDEADLK; the wait is simply tried again,
since stripes taken in order can never make a real circle.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import zlib

STRIPES = 1024
RETRY_S = 0.001
"""The pause before a wait the kernel refused as a deadlock is tried again."""


class PathLocks:
    """Striped locks by path, for the worker threads of one process and, once
    :meth:`open`, across the processes that use the same lock file."""

    def __init__(self, stripes: int = STRIPES) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]
        self._fd: int | None = None

    def open(self, lock_file: str) -> None:
        """Lock across processes too, through ``lock_file`` (created when missing)."""
        self.close()
        self._fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        """Stop locking across processes."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _stripe(self, path: str) -> int:
        return zlib.crc32(path.encode("utf-8", "surrogateescape")) % len(self._locks)

    def hold(self, *paths: str) -> _Held:
        """Hold the locks of ``paths`` (on a worker thread: it may wait), as a context
        manager (a class rather than a generator: every write takes one)."""
        stripes = sorted({self._stripe(p) for p in paths}) if len(paths) > 1 else None
        return _Held(self._locks, stripes or [self._stripe(paths[0])], self._fd)


class _Held:
    """The locks of some stripes, taken in order on entry and let go in reverse."""

    __slots__ = ("_fd", "_locks", "_stripes", "_taken")

    def __init__(self, locks: list[threading.Lock], stripes: list[int], fd: int | None) -> None:
        self._locks = locks
        self._stripes = stripes
        self._fd = fd
        self._taken: list[tuple[int, bool]] = []  # (stripe, its byte locked too)

    def __enter__(self) -> None:
        fd, taken = self._fd, self._taken
        try:
            for i in self._stripes:
                self._locks[i].acquire()
                taken.append((i, False))
                if fd is not None:
                    _lock_byte(fd, i)
                    taken[-1] = (i, True)
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        taken = self._taken
        while taken:
            i, byte = taken.pop()
            try:
                if byte:
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, i)  # type: ignore[arg-type]
            finally:
                self._locks[i].release()


def _lock_byte(fd: int, offset: int) -> None:
    """Wait for the byte-range lock of byte ``offset`` (see the module doc: EDEADLK)."""
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
            return
        except OSError as exc:
            if exc.errno != errno.EDEADLK:
                raise
            time.sleep(RETRY_S)
