"""A folder on disk as a DAV store: reading it (writes are in filesystem_change.py).

Every disk call runs on the storage's worker threads (davserver.runtime.threads); small
files unchanged since they were last read are answered from memory (readcache.py). Writes
go to a hidden temporary file in the target's folder and are renamed into place, so a
reader or a crash sees the old bytes or the new ones, never half of them; a collection
copied is built under a temporary name the same way. What a process killed during a long
write leaves of those is swept when the store opens next (see temps.py). Dead properties
live in a hidden ``.davprops`` folder beside the resources they describe (``m.<name>``
for a member, ``self`` for the folder itself), so they move, copy and vanish with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from davserver.runtime import tempstock
from davserver.runtime.threads import WorkerPool, default_threads, offload

from .base import Body, Changed, ChangeListener, Feed, Forbidden, NotFound, PropsCodec, Resource
from .disk import (
    MISSING,
    PROPS_DIR,
    READ,
    READ_NOFOLLOW,
    SELF_PROPS,
    member_props_name,
    read_whole,
    resource_of,
)
from .filesystem_change import FilesystemChange
from .inotify import InotifyFeed
from .pathlocks import PathLocks
from .readcache import ReadCache, is_local
from .temps import STOCK_DIR, TEMP_PREFIX, Registry, own_temp

log = logging.getLogger(__name__)

LISTING_BATCH = 512

_T = TypeVar("_T")


@dataclass(slots=True)
class _Listing:
    """A folder being read by :meth:`FilesystemStorage.children`."""

    path: str
    full: str
    dir_fd: int  # the folder, open: members are stat'ed relative to it (short lookups)
    entries: Any  # the iterator os.scandir returns (it has close())
    side_names: set[str]
    dead_props: bool
    done: bool = False

    def close(self) -> None:
        """Release the folder (once)."""
        if not self.done:
            self.done = True
            self.entries.close()
            os.close(self.dir_fd)


class FilesystemStorage:
    """Serves the files below ``root``; see the module docstring for the layout."""

    reserved_names = frozenset({PROPS_DIR})
    reserved_prefixes: tuple[str, ...] = (TEMP_PREFIX,)

    def __init__(
        self,
        root: str | os.PathLike[str],
        codec: PropsCodec,
        lock_file: str | None = None,
        read_cache: int = 16 << 20,
    ) -> None:
        """``lock_file``: where writes to one path are serialized with other processes
        serving the same folder (pathlocks.py; None: within this process only).
        ``read_cache``: bytes of small files kept in memory (readcache.py; 0: none)."""
        self._configured_root = root
        self._read_cache = read_cache
        self._cache: ReadCache | None = None
        self._lock_file = lock_file
        self.root = ""
        self.codec = codec
        self._pool: WorkerPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.temps = Registry()
        self.stock: str | None = None
        """The stock folder of files made ahead (temps.STOCK_DIR), when a helper makes them."""
        self.locks = PathLocks()
        self._listener: ChangeListener | None = None

    async def open(self) -> None:
        """Start the worker threads; create the root folder when missing and resolve it;
        sweep what processes that died in the middle of long writes left (temps.py)."""

        def prepare() -> tuple[str, ReadCache | None]:
            os.makedirs(self._configured_root, exist_ok=True)
            root = self.temps.root = os.path.realpath(self._configured_root)
            self.temps.sweep()
            if tempstock.active():
                stock = os.path.join(root, STOCK_DIR)
                try:
                    os.makedirs(stock, 0o700, exist_ok=True)
                except OSError as exc:
                    log.warning("no files made ahead for %s: %s", root, exc)
                else:
                    self.stock = stock
            if self._lock_file is not None:
                os.makedirs(os.path.dirname(self._lock_file), exist_ok=True)
                self.locks.open(self._lock_file)
            cache = None
            if self._read_cache > 0 and self._cache is None and is_local(root):
                # Not Linux, or out of inotify instances: no cache.
                with contextlib.suppress(OSError, AttributeError):
                    cache = ReadCache(root, os.stat(root).st_dev, self._read_cache, self.run)
            return root, cache

        if self._pool is None:
            self._pool = WorkerPool(default_threads(), "filesystem")
            self._loop = asyncio.get_running_loop()
        self.root, cache = await self.run(prepare)
        self._cache = self._cache or cache

    def listen(self, listener: ChangeListener) -> None:
        """Report committed changes to ``listener``."""
        self._listener = listener

    async def emit(self, changes: Sequence[Changed]) -> None:
        """Hand committed changes to the listener (a write calls this once it is done)."""
        if self._listener is not None and changes:
            await self._listener(changes)

    def feed(self) -> Feed | None:
        """Linux inotify on the folders asked about (None where inotify is missing). A
        file this process's own write renamed into place is not reported: the write
        reports it (see :class:`InotifyFeed`)."""
        try:
            return InotifyFeed(self.root, self._hidden, own_temp)
        except (OSError, AttributeError):  # not Linux, or out of inotify instances
            return None

    def _hidden(self, name: str) -> bool:
        return name in self.reserved_names or name.startswith(TEMP_PREFIX)

    # -- helpers (run on the worker threads) --------------------------------------------

    def run(self, fn: Callable[..., _T], *args: Any) -> Awaitable[_T]:
        """``fn(*args)`` on a worker thread, to be awaited on the event loop that opened
        the storage. (Not asyncio.get_running_loop() each time: on Python 3.11 that is a
        getpid() system call.)"""
        pool, loop = self._pool, self._loop
        if pool is None or loop is None:  # not opened, or closed
            return offload(fn, *args)
        return pool.submit(loop, fn, *args)

    def full_path(self, path: str, *, check_last: bool = True) -> str:
        """The disk path of ``path``; refuses one that a symlink leads out of the root.

        Only the components below the (already resolved) root are checked, and only a
        component that is a symlink gets resolved, which keeps the common case to one
        lstat per path segment. ``check_last=False`` leaves the last segment unchecked,
        for a caller that makes sure itself not to follow it (O_NOFOLLOW, lstat).
        """
        if not path:
            return self.root
        full = self.root
        segments = path.split("/")
        last = None if check_last else segments.pop()
        for seg in segments:
            full = full + os.sep + seg
            try:
                mode = os.lstat(full).st_mode
            except OSError as exc:
                if exc.errno not in MISSING:
                    raise
                return os.path.join(self.root, path)
            if stat.S_ISLNK(mode):
                real = os.path.realpath(full)
                if real != self.root and not real.startswith(self.root + os.sep):
                    raise Forbidden(f"{path!r} leads outside the store")
        return full if last is None else full + os.sep + last

    def props_file(self, path: str, is_collection: bool, full: str | None = None) -> str:
        """Where the dead properties of ``path`` live (``full``: its disk path, if known)."""
        if full is None:
            full = self.full_path(path)
        if is_collection:
            return os.path.join(full, PROPS_DIR, SELF_PROPS)
        parent, _, name = full.rpartition(os.sep)
        return os.path.join(parent, PROPS_DIR, member_props_name(name))

    def read_props_file(self, file: str) -> dict[str, bytes]:
        try:
            with open(file, "rb") as f:
                return self.codec.decode(f.read())
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def stat_sync(self, path: str, dead_props: bool) -> Resource | None:
        try:
            # lstat: the last segment's own check and the answer in one call.
            full = self.full_path(path, check_last=False)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                st = os.stat(self.full_path(path))
        except OSError as exc:
            if exc.errno in MISSING:
                return None
            raise
        props = None
        if dead_props:
            props = self.read_props_file(self.props_file(path, stat.S_ISDIR(st.st_mode), full))
        return resource_of(path, st, props)

    def _open_listing(self, path: str, dead_props: bool) -> tuple[_Listing, list[Resource]]:
        """Open the folder and read the first batch (one trip to a worker for most)."""
        full = self.full_path(path)
        dir_fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            side_names: set[str] = set()
            if dead_props:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    side_names = set(os.listdir(os.path.join(full, PROPS_DIR)))
            listing = _Listing(path, full, dir_fd, os.scandir(dir_fd), side_names, dead_props)
        except BaseException:
            os.close(dir_fd)
            raise
        return listing, self._next_batch(listing)

    def _next_batch(self, listing: _Listing) -> list[Resource]:
        """Up to LISTING_BATCH visible members; closes the listing once it is exhausted."""
        out: list[Resource] = []
        prefix = listing.path + "/" if listing.path else ""
        full = listing.full
        reserved = self.reserved_names
        dead_props = listing.dead_props
        side_names = listing.side_names
        resource = resource_of
        try:
            for entry in listing.entries:
                name = entry.name
                if name in reserved or name.startswith(TEMP_PREFIX):  # see _hidden
                    continue
                member = prefix + name
                try:
                    if entry.is_symlink():
                        self.full_path(member)
                    st = entry.stat()  # relative to listing.dir_fd
                except (Forbidden, OSError):
                    continue
                props = None
                if dead_props:
                    if stat.S_ISDIR(st.st_mode):
                        props = self.read_props_file(
                            os.path.join(full, name, PROPS_DIR, SELF_PROPS)
                        )
                    elif not side_names:  # no property files here: no name to work out
                        props = {}
                    else:
                        side = member_props_name(name)
                        props = (
                            self.read_props_file(os.path.join(full, PROPS_DIR, side))
                            if side in side_names
                            else {}
                        )
                out.append(resource(member, st, props))
                if len(out) >= LISTING_BATCH:
                    return out
        except BaseException:
            listing.close()
            raise
        listing.close()
        return out

    def _open_read(self, path: str) -> int:
        """A descriptor of ``path`` open for reading, with the containment rule of full_path.

        O_NOFOLLOW spares the lstat of the last segment: when that is a symlink the
        open fails (ELOOP) instead of following it, and full_path checks where it leads.
        """
        try:
            return os.open(self.full_path(path, check_last=False), READ_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        return os.open(self.full_path(path), READ)

    def _read_sync(self, path: str, inline_limit: int) -> Body:
        try:
            fd = self._open_read(path)
        except OSError as exc:
            if exc.errno in MISSING:
                raise NotFound(path) from exc
            raise
        handed_over = False
        try:
            st = os.fstat(fd)
            resource = resource_of(path, st, None)
            if stat.S_ISDIR(st.st_mode):
                return Body(resource=resource)
            if st.st_size <= inline_limit:
                return Body(resource=resource, data=read_whole(fd, st.st_size))
            file = open(fd, "rb")  # noqa: SIM115 - handed to the caller, who closes it
            handed_over = True
            return Body(resource=resource, file=file)
        finally:
            if not handed_over:
                os.close(fd)

    # -- reading ----------------------------------------------------------------------

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path``, or None."""
        cache = self._cache
        if cache is not None and path:  # the root is a folder: never cached
            return cache.resource(path, dead_props) or await cache.stat(
                path, dead_props, self.stat_sync
            )
        return await self.run(self.stat_sync, path, dead_props)

    async def children(
        self, path: str, *, dead_props: bool = False
    ) -> AsyncIterator[list[Resource]]:
        """The members of the collection at ``path``, in directory order, batch by batch
        as the folder is read (a huge folder is never listed whole in memory)."""
        try:
            listing, batch = await self.run(self._open_listing, path, dead_props)
        except OSError as exc:
            if exc.errno in MISSING:
                raise NotFound(path) from exc
            raise
        try:
            while True:
                if batch:
                    yield batch
                if listing.done:
                    return
                batch = await self.run(self._next_batch, listing)
        finally:
            if not listing.done:  # the caller stopped early
                await self.run(listing.close)

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """Open ``path`` for sending."""
        cache = self._cache
        if cache is not None and path:
            return cache.body(path, inline_limit) or await cache.read(
                path, inline_limit, self._read_sync
            )
        return await self.run(self._read_sync, path, inline_limit)

    async def quota(self, path: str) -> tuple[int, int] | None:
        """Bytes used and available on the filesystem that holds the root."""

        def statvfs() -> tuple[int, int]:
            st = os.statvfs(self.root)
            return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize

        return await self.run(statvfs)

    async def usage(self, path: str) -> int:
        """The bytes of the files at or below ``path`` (a walk of the tree, bookkeeping
        and temporary files left out; symlinks not followed)."""

        def walk() -> int:
            full = self.full_path(path)
            try:
                st = os.lstat(full)
            except OSError as exc:
                if exc.errno in MISSING:
                    raise NotFound(path) from exc
                raise
            if not stat.S_ISDIR(st.st_mode):
                return st.st_size if stat.S_ISREG(st.st_mode) else 0
            total = 0
            for folder, dirs, files in os.walk(full):
                dirs[:] = [d for d in dirs if not self._hidden(d)]
                for name in files:
                    if self._hidden(name):
                        continue
                    with contextlib.suppress(OSError):
                        st = os.lstat(os.path.join(folder, name))
                        if stat.S_ISREG(st.st_mode):
                            total += st.st_size
            return total

        return await self.run(walk)

    def change(self, *, author: str, message: str) -> FilesystemChange:
        """Writes on a folder apply as they go; each one is atomic on its own."""
        return FilesystemChange(self, author)

    async def close(self) -> None:
        """Stop the worker threads once they have finished what is queued."""
        pool, self._pool = self._pool, None
        cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()
        if pool is not None:
            await pool.submit(asyncio.get_running_loop(), self.locks.close)
            pool.close()
