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
(POSIX record locks belong to the process, not to the thread). A wait the kernel's
deadlock detection refuses is tried again (davserver/runtime/byterange.py): stripes taken
in order can never make a real circle.
"""

from __future__ import annotations

import os
import threading
import zlib

from davserver.runtime.byterange import lock_byte, unlock_byte

STRIPES = 1024


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
                    lock_byte(fd, i)
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
                    unlock_byte(self._fd, i)  # type: ignore[arg-type]
            finally:
                self._locks[i].release()
