"""Files made ahead for the filesystem backend's writes, by the helper process (closer.py).

Every write makes a new file (its temporary file, renamed into place at the end), and
making a file means finding a free inode. On ext4 without a journal that search passes
over every inode freed in the last minute or more, and a server that replaces files by
the thousand frees them by the thousand: on this project's benchmark machine the search
was a third of a small PUT's CPU time, on the single CPU a pinned process serves from.

So the helper process that frees replaced files on the other CPUs also makes files
ahead: unnamed ones (O_TMPFILE) in a stock folder the backend keeps at its root, sent
to the server in batches over the helper's socket (SCM_RIGHTS). A write takes one and
links it at the temporary name it would otherwise have created (linkat through
``/proc/self/fd``; any folder of the same filesystem will do); from there on it is an
ordinary temporary file. An unnamed file never shows in a folder, and one the server
never used goes with the process, whatever ends it.

Nothing ever waits for the helper: a write that finds the stock empty (the helper
behind, gone or never started) or whose link fails (another filesystem mounted below
the root) creates its file itself, as without a helper. A folder whose filesystem cannot
make unnamed files (the helper says so once) gets none for the rest of the process.

What differs from a file created in place: its group and default ACL are those a file
made in the stock folder gets (set-group-ID folders and default ACLs below the root do
not pass theirs on), and ext4 places its inode near the stock folder rather than near
its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Iterable

log = logging.getLogger(__name__)

BATCH = 32
"""Files per request, sent in one message."""
_LOW = 64
"""A folder's stock is topped up when what it holds and what is asked for fall below:
up to two requests under way, made side by side by the helper's threads. Where ext4
searches long for each inode (200-300 us in the helper), one batch at a time left the
stock empty at 3,000 PUTs a second: the server creating its own files was 27 % of its
CPU samples (docs/benchmarks.md)."""
MESSAGE = 4096 + 64
"""Room for the longest message on the helper's socket: a kind, a folder's path, a reason."""

MAKE = b"n"  # the server asks for a batch for a folder
_MADE = b"f"  # the helper sends one (the descriptors ride along)
_CANNOT = b"u"  # the helper cannot make them there: folder, NUL, reason


class _Stock:
    """One stock folder's files at hand, and how many are asked for."""

    __slots__ = ("asked", "fds", "off")

    def __init__(self) -> None:
        self.fds: deque[int] = deque()  # oldest first
        self.asked = 0
        self.off = False


_lock = threading.Lock()
_channel: socket.socket | None = None
_fd_folder = -1  # /proc/self/fd, to link a descriptor's file by
_stocks: dict[str, _Stock] = {}


def attach(channel: socket.socket | None) -> None:
    """Use ``channel``, the server's end of the helper's socket (closer.py); None: the
    helper is stopped, and every file still at hand is closed."""
    global _channel, _fd_folder
    with _lock:
        if channel is not None and _fd_folder < 0:
            try:
                _fd_folder = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                log.warning("no files made ahead: /proc/self/fd cannot be opened (%s)", exc)
                channel = None
        _channel = channel
        if channel is None:
            for stock in _stocks.values():
                close_all(stock.fds)
            _stocks.clear()


def active() -> bool:
    """Whether a helper makes files ahead (a storage then keeps a stock folder)."""
    return _channel is not None


def place(folder: str, name: str) -> int | None:
    """A file made ahead in the stock folder ``folder``, now linked at the path ``name``
    and open for reading and writing; None when there is none at hand or the link fails,
    and the caller creates the file itself (its error is then the one to report)."""
    with _lock:
        channel = _channel
        if channel is None:
            return None
        stock = _stocks.get(folder)
        if stock is None:
            stock = _stocks[folder] = _Stock()
        if stock.off:
            return None
        if stock.asked:  # else nothing is on its way (one system call less)
            _receive(channel)
        fd = stock.fds.popleft() if stock.fds else None
        if len(stock.fds) + stock.asked < _LOW:
            with contextlib.suppress(OSError):  # full or gone: asked again at the next take
                channel.send(MAKE + os.fsencode(folder))
                stock.asked += BATCH
        fd_folder = _fd_folder
    if fd is None:
        return None
    try:
        os.link(str(fd), name, src_dir_fd=fd_folder, follow_symlinks=True)
    except OSError:
        # The name's folder is missing, on another filesystem, full...: the file is
        # as good as before for the next write.
        with _lock:
            if _channel is None or stock.off:  # stopped meanwhile
                close_all([fd])
            else:
                stock.fds.appendleft(fd)
        return None
    return fd


def _receive(channel: socket.socket) -> None:
    """File every batch the helper has sent (never waits); under ``_lock``."""
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(channel, MESSAGE, BATCH)
        except OSError:  # BlockingIOError: nothing more now
            return
        if not message:  # the helper is gone
            close_all(fds)
            return
        kind, rest = message[:1], message[1:]
        folder, _, reason = os.fsdecode(rest).partition("\0")
        stock = _stocks.get(folder)
        if stock is None or stock.off:
            close_all(fds)
            continue
        stock.asked = max(0, stock.asked - BATCH)
        if kind == _MADE:
            stock.fds.extend(fds)
        else:
            close_all(fds)
            stock.off = True
            close_all(stock.fds)
            stock.fds.clear()
            log.warning("no files made ahead in %s: %s", folder, reason)


def close_all(fds: Iterable[int]) -> None:
    """Close each of ``fds``, ignoring errors (nothing is left to report them to)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def make(channel: socket.socket, folder: bytes) -> None:
    """The helper's side: a batch of unnamed files in ``folder``, sent over ``channel``
    (or why there can be none)."""
    fds: list[int] = []
    try:
        try:
            for _ in range(BATCH):
                fds.append(os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666))
        except OSError as exc:
            if not fds:
                channel.send(_CANNOT + folder + b"\0" + os.fsencode(exc.strerror or str(exc)))
                return
        socket.send_fds(channel, [_MADE + folder], fds)
    except OSError:
        return  # the server is gone
    finally:
        close_all(fds)  # the server holds its own copies now
