"""Byte-range locks (POSIX record locks, ``lockf``) of one byte of a shared file: what
excludes the other processes of a host (and hosts sharing a network filesystem) from a
lock. Used by the path locks of the filesystem backend and by the named locks of the
shared state.

They belong to the process, not to the thread: a thread of a process never waits for a
byte another thread of it holds (whatever serializes the process's own threads or tasks
comes first). And the kernel's deadlock detection sees all the threads of a process as one
waiter: worker A's thread holding byte 3 while its other thread waits for byte 5, which
worker B holds while waiting for byte 3, looks like a circle although A's first thread
will let go. The kernel then answers EDEADLK; :func:`lock_byte` simply waits again a
moment later.
"""

from __future__ import annotations

import errno
import fcntl
import time

RETRY_S = 0.001
"""The pause before a wait the kernel refused as a deadlock is tried again."""


def try_lock_byte(fd: int, offset: int) -> bool:
    """Take byte ``offset`` of ``fd`` unless another process holds it (no wait)."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def lock_byte(fd: int, offset: int) -> None:
    """Take byte ``offset`` of ``fd``, waiting in the kernel while another process holds
    it (blocking: on a worker thread)."""
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
            return
        except OSError as exc:
            if exc.errno != errno.EDEADLK:
                raise
            time.sleep(RETRY_S)


def unlock_byte(fd: int, offset: int) -> None:
    """Let go of byte ``offset`` of ``fd``."""
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
