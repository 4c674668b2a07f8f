"""Change feeds: how the calendar store learns, without listing a calendar, which of its
items changed since it last looked, including changes made behind the server's back.

- :class:`InotifyFeed`, for a folder on disk: Linux inotify on each calendar folder (a
  small ctypes binding, no dependency). The descriptor is read without blocking at the
  start of each request, so every change the kernel saw before the request is known; the
  events name the files, and only those are looked at again.
- :class:`TreeFeed`, for a git branch: a calendar folder's ETag is its tree id, which
  moves when anything in it does; a moved tree means reading the listing again.

``changes()`` answers None when the feed cannot tell (a calendar not watched yet, events
lost to a queue overflow, a folder moved away): the store then lists the calendar.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from typing import Protocol

from .base import Storage
from .filesystem import FilesystemStorage
from .git import GitStorage

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_EXCL_UNLINK = 0x04000000
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_EXCL_UNLINK
)  # fmt: skip
_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_EVENT = struct.Struct("iIII")
_READ_SIZE = 1 << 16


class Feed(Protocol):
    """What the calendar store asks of a change feed."""

    async def start(self, calendar: str) -> None:
        """Watch a calendar from now on (called before it is listed in full)."""

    async def changes(self, calendar: str) -> set[str] | None:
        """The names changed since the calendar was last asked about or started; None
        when the feed cannot tell."""

    def close(self) -> None:
        """Stop watching."""


class _Inotify:
    """The three inotify calls, through libc."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the process already has
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd = fd

    def add(self, path: str) -> int:
        """Watch a folder; its watch descriptor."""
        wd = self._add(self.fd, os.fsencode(path), _MASK)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return int(wd)

    def remove(self, wd: int) -> None:
        """Stop watching (a watch the kernel already dropped is fine)."""
        self._rm(self.fd, wd)

    def events(self) -> list[tuple[int, int, str]]:
        """(wd, mask, name) of every event queued now; never blocks."""
        out: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + size].rstrip(b"\0")
                offset += size
                out.append((wd, mask, os.fsdecode(raw)))

    def close(self) -> None:
        """Release the descriptor."""
        os.close(self.fd)


class InotifyFeed:
    """Changes of calendar folders below a filesystem store's root, from inotify."""

    def __init__(self, storage: FilesystemStorage) -> None:
        self._storage = storage
        self._inotify = _Inotify()
        self._calendars: dict[int, str] = {}  # wd -> calendar
        self._watches: dict[str, int] = {}  # calendar -> wd
        self._pending: dict[str, set[str]] = {}
        self._lost: set[str] = set()

    def _hidden(self, name: str) -> bool:
        s = self._storage
        return name in s.reserved_names or name.startswith(s.reserved_prefixes)

    async def start(self, calendar: str) -> None:
        """Watch the calendar's folder (from a worker thread: the path is resolved on disk)."""
        self._collect()
        old = self._watches.pop(calendar, None)
        if old is not None:
            self._calendars.pop(old, None)
        path = os.path.join(self._storage.root, *calendar.split("/"))
        try:
            loop = asyncio.get_running_loop()
            wd = await loop.run_in_executor(None, self._inotify.add, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENOSPC, errno.EACCES):
                raise
            return  # no folder (yet), or no watches left: listed on every request
        self._calendars[wd] = calendar
        self._watches[calendar] = wd
        self._pending[calendar] = set()
        self._lost.discard(calendar)

    async def changes(self, calendar: str) -> set[str] | None:
        """Names of the calendar's members that changed; None when it must be listed."""
        self._collect()
        if calendar not in self._watches or calendar in self._lost:
            return None
        names = self._pending.get(calendar, set())
        self._pending[calendar] = set()
        return names

    def _collect(self) -> None:
        """Sort the queued events by calendar."""
        for wd, mask, name in self._inotify.events():
            if mask & _IN_Q_OVERFLOW:
                self._lost.update(self._watches)
                continue
            calendar = self._calendars.get(wd)
            if calendar is None:
                continue
            if mask & _GONE:
                self._drop(calendar)
            elif name and not self._hidden(name):
                self._pending.setdefault(calendar, set()).add(name)

    def _drop(self, calendar: str) -> None:
        wd = self._watches.pop(calendar, None)
        if wd is not None:
            self._calendars.pop(wd, None)
            self._inotify.remove(wd)
        self._pending.pop(calendar, None)

    def close(self) -> None:
        """Release the inotify descriptor."""
        self._inotify.close()


class TreeFeed:
    """Changes of calendars on a git branch, from the tree ids of their folders."""

    def __init__(self, storage: GitStorage) -> None:
        self._storage = storage
        self._trees: dict[str, str] = {}

    async def _tree(self, calendar: str) -> str | None:
        res = await self._storage.stat(calendar)
        return res.etag if res is not None else None

    async def start(self, calendar: str) -> None:
        """Note the calendar's tree as it is before it is listed."""
        tree = await self._tree(calendar)
        if tree is not None:
            self._trees[calendar] = tree

    async def changes(self, calendar: str) -> set[str] | None:
        """Nothing when the calendar's tree is the one last seen; else None."""
        known = self._trees.get(calendar)
        if known is not None and await self._tree(calendar) == known:
            return set()
        return None

    def close(self) -> None:
        """Nothing to release."""


def feed_for(storage: Storage) -> Feed | None:
    """The change feed of a storage backend, when it has one."""
    if isinstance(storage, FilesystemStorage):
        try:
            return InotifyFeed(storage)
        except (OSError, AttributeError):  # not Linux, or out of inotify instances
            return None
    if isinstance(storage, GitStorage):
        return TreeFeed(storage)
    return None
