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
(POSIX record locks belong to the process, not to the thread).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import zlib
from collections.abc import Iterator

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

    @contextlib.contextmanager
    def hold(self, *paths: str) -> Iterator[None]:
        """Hold the locks of ``paths`` (on a worker thread: it may wait)."""
        stripes = sorted({self._stripe(p) for p in paths})
        fd = self._fd
        with contextlib.ExitStack() as stack:
            for i in stripes:
                stack.enter_context(self._locks[i])
                if fd is not None:
                    fcntl.lockf(fd, fcntl.LOCK_EX, 1, i)
                    stack.callback(fcntl.lockf, fd, fcntl.LOCK_UN, 1, i)
            yield
