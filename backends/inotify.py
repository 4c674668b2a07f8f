"""The filesystem backend's change feed (see :class:`base.Feed`): Linux inotify on each
folder asked about (a small ctypes binding, no dependency). The descriptor is read without
blocking whenever a folder is asked about, so every change the kernel saw before is
known; the events name the files, and only those need to be looked at again.

``changes()`` answers None when the feed cannot tell (a folder not watched yet, events
lost to a queue overflow, a folder moved away): the caller then lists the folder.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
from collections.abc import Callable

from davserver.runtime.threads import offload

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_DONT_FOLLOW = 0x02000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000
_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK
)  # fmt: skip
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_EVENT = struct.Struct("iIII")
_RENAMES_KEPT = 1024
"""Cookies of own renames waiting for their second half, at most (a rename to a folder
that is not watched never brings it)."""
_READ_SIZE = 1 << 16


class Inotify:
    """The three inotify calls, through libc."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the process already has
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd = fd
        # Asked before each read: an empty queue (what almost every request finds) then
        # costs one poll, without the failed read and the exception it raises.
        self._queued = select.epoll()
        self._queued.register(fd, select.EPOLLIN)

    def add(self, path: str, mask: int = _MASK) -> int:
        """Watch a folder (or what ``mask`` says); its watch descriptor."""
        wd = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return int(wd)

    def remove(self, wd: int) -> None:
        """Stop watching (a watch the kernel already dropped is fine)."""
        self._rm(self.fd, wd)

    def events(self) -> list[tuple[int, int, int, str]]:
        """(wd, mask, cookie, name) of every event queued now; never blocks."""
        out: list[tuple[int, int, int, str]] = []
        if not self._queued.poll(0):
            return out
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                wd, mask, cookie, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + size].rstrip(b"\0")
                offset += size
                out.append((wd, mask, cookie, os.fsdecode(raw)))

    def close(self) -> None:
        """Release the descriptor."""
        self._queued.close()
        os.close(self.fd)


class InotifyFeed:
    """Changes of folders below ``root`` (a resolved disk path), from inotify; names for
    which ``hidden`` is true (the store's bookkeeping) are not changes.

    Nor is a file that a temporary file for which ``own`` is true (one this process
    wrote) was renamed to: the write that renamed it reports the change itself, with the
    new resource, so the caller need not look at the file again. The rename is known by
    its cookie, which pairs the two halves of one rename(2): any other event for that
    name (another process's write, an edit behind the server's back) still counts.
    """

    def __init__(
        self, root: str, hidden: Callable[[str], bool], own: Callable[[str], bool] | None = None
    ) -> None:
        self._root = root
        self._hidden = hidden
        self._own = own
        self._renames: set[int] = set()  # cookies of this process's renames under way
        self._inotify = Inotify()
        self._folders: dict[int, str] = {}  # wd -> folder
        self._watches: dict[str, int] = {}  # folder -> wd
        self._pending: dict[str, set[str]] = {}
        self._lost: set[str] = set()

    async def start(self, folder: str) -> None:
        """Watch the folder (added on a worker thread: the path is resolved on disk)."""
        self._collect()
        old = self._watches.pop(folder, None)
        if old is not None:
            self._folders.pop(old, None)
        path = os.path.join(self._root, *folder.split("/"))
        try:
            wd = await offload(self._inotify.add, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENOSPC, errno.EACCES):
                raise
            return  # no folder (yet), or no watches left: listed on every request
        self._folders[wd] = folder
        self._watches[folder] = wd
        self._pending[folder] = set()
        self._lost.discard(folder)

    async def changes(self, folder: str) -> set[str] | None:
        """Names of the folder's members that changed; None when it must be listed."""
        self._collect()
        if folder not in self._watches or folder in self._lost:
            return None
        names = self._pending.get(folder, set())
        self._pending[folder] = set()
        return names

    def _collect(self) -> None:
        """Sort the queued events by folder."""
        own = self._own
        for wd, mask, cookie, name in self._inotify.events():
            if mask & IN_Q_OVERFLOW:
                self._lost.update(self._watches)
                continue
            folder = self._folders.get(wd)
            if folder is None:
                continue
            if mask & GONE:
                self._drop(folder)
            elif mask & IN_MOVED_FROM and own is not None and own(name):
                if len(self._renames) >= _RENAMES_KEPT:  # halves that never came
                    self._renames.clear()
                self._renames.add(cookie)
            elif mask & IN_MOVED_TO and cookie in self._renames:
                self._renames.discard(cookie)
            elif name and not self._hidden(name):
                self._pending.setdefault(folder, set()).add(name)

    def _drop(self, folder: str) -> None:
        wd = self._watches.pop(folder, None)
        if wd is not None:
            self._folders.pop(wd, None)
            self._inotify.remove(wd)
        self._pending.pop(folder, None)

    def close(self) -> None:
        """Release the inotify descriptor."""
        self._inotify.close()
