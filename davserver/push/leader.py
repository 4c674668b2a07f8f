"""Which process of a host looks for a mount's outside changes: the one holding the lock
on a file of the state folder (``flock``, so a process that dies lets go of it and
another takes over at its next try). Only it polls, so an outside change is published,
and pushed, once."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path


class Leadership:
    """The lock of one mount's poller (blocking calls: run them off the event loop)."""

    def __init__(self, folder: Path, mount: str) -> None:
        name = hashlib.sha256(mount.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        self._path = folder / f"poll-{name}.lock"
        self._fd: int | None = None

    def take(self) -> bool:
        """Whether this process holds the lock (taking it if it is free)."""
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
