"""The filesystem backend's read cache: small files' stat results, bytes and dead
properties in memory, kept coherent by inotify.

A GET or PROPFIND Depth 0 of a small file is mostly the hand-off of a few system calls to
a worker thread. This cache answers them on the event loop instead, with no thread and no
disk call, for as long as the file is known to be unchanged:

- Before every lookup the cache reads its inotify descriptor without blocking and applies
  what it holds. The kernel queues an event within the system call that makes a change,
  so every change completed before a request arrived is known when it is answered,
  whoever made it: this process, another worker, any other program on the host.
- An entry for ``D/n`` exists only while the root and every folder down to ``D`` are
  watched (names created, removed, renamed, changed in them), ``D/.davprops`` too when
  it holds the dead properties read, and the file itself: a change through a hard link
  made elsewhere reaches no folder watch, only the file's own.
- A fill (a miss) runs on a worker thread: it places the watches it needs first, then
  reads as the storage always does, so any later change has an event. Its result is kept
  only if no event touched the path, or a folder above it, while it ran, and none came
  for a watch it placed before the event loop knew that watch (``_settle``).
- Only regular files on the root's own filesystem, reached without a symlink; bytes up
  to ``content_limit``; at most ``budget`` bytes and one watch per 4 KiB of it, the
  least recently used dropped first. A file written through a shared mapping (mmap)
  changes without an event: such writes are not seen.
- A folder's stat is kept too (a REPORT or PROPFIND of a collection stats it on every
  request, and its hand-off to a thread cost more than the stat: about 100 µs of server
  CPU of a PROPFIND Depth 0 of a calendar, measured). Its own watch reports what changes
  that stat: a name created, removed or renamed in it (its mtime and size), its
  attributes, its dead properties (its ``.davprops`` folder watched too when they were
  read). A folder entry lives only while that watch is registered; a folder whose
  watches are all in place is refilled by its stat alone (``_refill``).

What a hit returns is what the storage's own read returned when the entry was filled
(the same Resource, bytes and properties).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .base import Body, Resource
from .disk import PROPS_DIR, SELF_PROPS, etag_of
from .inotify import (
    GONE,
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_ISDIR,
    IN_MASK_ADD,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)
from .temps import TEMP_PREFIX

_T = TypeVar("_T")

LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "f2fs", "zfs", "bcachefs",
     "jfs", "reiserfs"}
)  # fmt: skip
"""Where every change is made by this host's kernel, so inotify sees it (not so on NFS,
SMB, FUSE, or an overlay whose lower layers may change underneath)."""

CONTENT_LIMIT = 64 << 10
"""The largest file whose bytes are kept (the DAV mounts' inline limit)."""

_NAMES = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
_FOLDER_MASK = (
    IN_MODIFY | IN_ATTRIB | _NAMES | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
    | IN_EXCL_UNLINK | IN_DONT_FOLLOW | IN_MASK_ADD  # never narrow another path's watch
)  # fmt: skip
_FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_MASK_ADD
_FOLDER, _PROPS, _FILE = 0, 1, 2
_ENTRY_COST = 512  # bytes an entry holds besides its data (Resource, strings, indexes)
_TOUCHED_KEPT = 4096
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _chain(path: str) -> list[str]:
    """The folders above ``path``, the root ("") first."""
    folder = path.rpartition("/")[0]
    if not folder:
        return [""]
    parts = folder.split("/")
    return ["", *("/".join(parts[: i + 1]) for i in range(len(parts)))]


def filesystem_type(path: str, mountinfo: str) -> str | None:
    """The type of the filesystem that holds the resolved ``path``, from the text of
    ``/proc/self/mountinfo``: the mount with the longest mount point above it (the last
    one listed when several are stacked there)."""
    found, longest = None, -1
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = _ESCAPE.sub(lambda m: chr(int(m[1], 8)), fields[4])
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= longest:
            found, longest = tail.split()[0], len(point)
    return found


def is_local(path: str) -> bool:
    """Whether the folder ``path`` (resolved) is on a filesystem of LOCAL_FILESYSTEMS
    (reads /proc: call it on a worker thread)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return filesystem_type(path, f.read()) in LOCAL_FILESYSTEMS
    except OSError:
        return False


@dataclass(slots=True)
class _Entry:
    res: Resource  # without dead properties
    wd: int  # the file's own watch, or the folder's (shared with the entries below it)
    cost: int
    data: bytes | None = None
    with_props: Resource | None = None  # res with its dead properties, once read


@dataclass(slots=True)
class _Plan:
    """What a fill needs, worked out on the event loop."""

    path: str
    folder: str  # the folder that holds path
    keys: tuple[str, ...]  # the path and every folder above it, and the path's names
    missing: list[str]  # folders to watch yet, the root first
    props: bool  # the folder's .davprops to watch yet
    own_props: bool  # the path's own .davprops to watch yet, should it be a folder
    start: int  # the event sequence number when the fill began
    folder_ok: bool  # a stat: a folder found at path is kept too


@dataclass(slots=True)
class _Filled:
    """What a fill found, on the worker thread."""

    folders: list[tuple[str, int]] = field(default_factory=list)
    props_wd: int | None = None
    file_wd: int | None = None
    own_wd: int | None = None  # the watch of the path itself, a folder
    own_props_wd: int | None = None  # and of its .davprops
    etag: str | None = None  # the file's or folder's, when every watch is in place
    result: Any = None
    error: BaseException | None = None


class ReadCache:
    """See the module docstring. ``run`` hands a call to the storage's worker threads;
    ``device`` is the root's st_dev (files elsewhere, on a mount below it, are left out)."""

    def __init__(
        self,
        root: str,
        device: int,
        budget: int,
        run: Callable[..., Awaitable[Any]],
        content_limit: int = CONTENT_LIMIT,
    ) -> None:
        self._root = root
        self._device = device
        self._budget = budget
        self._max_entries = max(64, budget // 4096)
        self._run = run
        self._content_limit = content_limit
        self._inotify = Inotify()
        self._closed = False
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._members: dict[str, set[str]] = {}  # folder -> paths of its entries
        self._watched: dict[int, tuple[int, str]] = {}  # wd -> (kind, path)
        self._folders: dict[str, int] = {}  # folder -> wd
        self._props: dict[str, int] = {}  # folder -> wd of its .davprops
        # For the fills under way: when events touched which paths, the watch
        # descriptors events came for before they were known, and the sequence number
        # below which every fill is void (a clear).
        self._seq = 0
        self._floor = 0
        self._inflight = 0
        self._touched: dict[str, int] = {}
        self._orphans: set[int] = set()

    # -- lookups (on the event loop) ------------------------------------------------------

    def body(self, path: str, inline_limit: int) -> Body | None:
        """The bytes of ``path`` from memory, or None (not cached, or too large)."""
        self._drain()
        entry = self._entries.get(path)
        if entry is None or entry.data is None or len(entry.data) > inline_limit:
            return None
        self._entries.move_to_end(path)
        return Body(resource=entry.res, data=entry.data)

    def resource(self, path: str, dead_props: bool) -> Resource | None:
        """The resource at ``path`` from memory, or None (not cached)."""
        self._drain()
        entry = self._entries.get(path)
        if entry is None:
            return None
        found = entry.with_props if dead_props else entry.res
        if found is not None:
            self._entries.move_to_end(path)
        return found

    # -- fills ------------------------------------------------------------------------------

    async def read(self, path: str, inline_limit: int, op: Callable[[str, int], Body]) -> Body:
        """``op(path, inline_limit)`` (the storage's read), keeping what it finds."""
        entry = self._entries.get(path)
        body: Body
        if entry is not None and (entry.data is not None or entry.res.size > self._content_limit):
            body = await self._run(op, path, inline_limit)  # nothing more to learn
        else:
            body = await self._fill(path, False, False, op, path, inline_limit)
        return body

    async def stat(
        self, path: str, dead_props: bool, op: Callable[[str, bool], Resource | None]
    ) -> Resource | None:
        """``op(path, dead_props)`` (the storage's stat), keeping what it finds."""
        chain = _chain(path)
        if (
            path in self._folders
            and (not dead_props or path in self._props)
            and all(f in self._folders for f in chain)
        ):
            res: Resource | None = await self._refill(path, dead_props, chain, op)
        else:
            res = await self._fill(path, dead_props, True, op, path, dead_props)
        return res

    async def _refill(
        self, path: str, dead_props: bool, chain: list[str],
        op: Callable[[str, bool], Resource | None],
    ) -> Resource | None:  # fmt: skip
        """The stat of a watched folder (its watches, those above it and, for its dead
        properties, its ``.davprops``'s all in place): the storage's own call on a worker,
        kept if no event touched the folder, its names or a folder above meanwhile. A
        folder written to keeps being stated (each write drops its entry) at the cost of
        that call alone: nothing to place, nothing to settle if the request goes."""
        plan = _Plan(
            path, path.rpartition("/")[0], (*chain, path, path + "/"), missing=[],
            props=False, own_props=False, start=self._seq, folder_ok=True,
        )  # fmt: skip
        self._inflight += 1
        try:
            res: Resource | None = await self._run(op, path, dead_props)
            self._drain()
            wd = self._folders.get(path)
            if (
                res is not None and res.is_collection and wd is not None
                and (not dead_props or path in self._props)
                and plan.start >= self._floor
                and all(self._touched.get(key, -1) <= plan.start for key in plan.keys)
            ):  # fmt: skip
                self._keep(plan, _Filled(etag=res.etag, result=res), wd, folder=True)
        finally:
            self._end_fill()
        return res

    async def _fill(
        self, path: str, dead_props: bool, folder_ok: bool, op: Callable[..., Any], *args: Any
    ) -> Any:
        folder = path.rpartition("/")[0]
        chain = _chain(path)
        missing = [f for f in chain if f not in self._folders]
        if len(self._watched) + len(missing) + 2 > 2 * self._max_entries + 64:
            self.clear()  # folder watches left over from entries gone: start afresh
            missing = chain
        plan = _Plan(
            path, folder, (*chain, path, path + "/"), missing,
            dead_props and folder not in self._props, dead_props and path not in self._props,
            self._seq, folder_ok,
        )  # fmt: skip
        self._inflight += 1
        job = self._run(self._fill_sync, plan, op, args)
        fut = asyncio.ensure_future(job)
        # Settled whatever becomes of the request (a cancelled one included): the
        # watches the thread placed must be registered or removed.
        fut.add_done_callback(functools.partial(self._settle, plan))
        filled: _Filled = await asyncio.shield(fut)
        if filled.error is not None:
            raise filled.error
        return filled.result

    def _fill_sync(self, plan: _Plan, op: Callable[..., Any], args: tuple[Any, ...]) -> _Filled:
        """On a worker thread: the watches a cached answer needs, then the storage's own
        call, whose outcome (an error included) goes back to the loop."""
        filled = _Filled()
        # No watch left (ENOSPC), a folder gone or not one: no etag, no entry.
        with contextlib.suppress(OSError):
            self._watch_sync(plan, filled)
        try:
            filled.result = op(*args)
        except Exception as exc:  # raised to the caller on the loop
            filled.error = exc
        return filled

    def _watch_sync(self, plan: _Plan, filled: _Filled) -> None:
        full = os.path.join(self._root, plan.path)
        try:
            st = os.lstat(full)
        except OSError:
            return
        folder = plan.folder_ok and stat.S_ISDIR(st.st_mode)
        if not (stat.S_ISREG(st.st_mode) or folder) or st.st_dev != self._device:
            return  # a symlink, another filesystem, a folder read: never cached
        add = self._inotify.add
        for above in plan.missing:
            # IN_DONT_FOLLOW | IN_ONLYDIR: a symlink on the way is refused (ENOTDIR).
            filled.folders.append((above, add(os.path.join(self._root, above), _FOLDER_MASK)))
        if folder:  # its watch first: a .davprops made after the try below is an event
            filled.own_wd = add(full, _FOLDER_MASK)
            if plan.own_props:
                filled.own_props_wd = self._add_props(full)
        else:
            if plan.props:
                filled.props_wd = self._add_props(os.path.join(self._root, plan.folder))
            filled.file_wd = add(full, _FILE_MASK)
        filled.etag = etag_of(st)

    def _add_props(self, folder: str) -> int | None:
        """A watch of the ``.davprops`` of the folder at disk path ``folder`` (None when
        there is none: its creation is an event in the folder)."""
        try:
            return self._inotify.add(os.path.join(folder, PROPS_DIR), _FOLDER_MASK)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            return None

    def _settle(self, plan: _Plan, fut: asyncio.Future[_Filled]) -> None:
        """Back on the loop: keep the fill's watches and entry if nothing it relied on
        changed while it ran, else remove the watches no one else knows."""
        try:
            if self._closed or fut.cancelled() or fut.exception() is not None:
                return
            filled = fut.result()
            self._drain()
            wanted = [(_FOLDER, f, wd) for f, wd in filled.folders]
            if filled.props_wd is not None:
                wanted.append((_PROPS, plan.folder, filled.props_wd))
            if filled.own_props_wd is not None:
                wanted.append((_PROPS, plan.path, filled.own_props_wd))
            if filled.own_wd is not None:
                wanted.append((_FOLDER, plan.path, filled.own_wd))
            if filled.file_wd is not None:
                wanted.append((_FILE, plan.path, filled.file_wd))
            valid = (
                plan.start >= self._floor
                and all(self._touched.get(key, -1) <= plan.start for key in plan.keys)
                and all(self._fits(kind, where, wd) for kind, where, wd in wanted)
            )
            if not valid:
                for _, _, wd in wanted:
                    if wd not in self._watched:
                        self._inotify.remove(wd)
                return
            for kind, where, wd in wanted:
                if kind != _FILE:
                    self._watched[wd] = (kind, where)
                    self._index(kind)[where] = wd
            if filled.file_wd is not None:
                self._keep(plan, filled, filled.file_wd)
            elif filled.own_wd is not None:
                self._keep(plan, filled, filled.own_wd, folder=True)
        finally:
            self._end_fill()

    def _end_fill(self) -> None:
        """A fill is over: with none left, what was noted for them is forgotten."""
        self._inflight -= 1
        if not self._inflight:
            self._touched.clear()
            self._orphans.clear()

    def _keep(self, plan: _Plan, filled: _Filled, wd: int, folder: bool = False) -> None:
        """Enter what the fill found (watches all in place and registered; ``wd``: the
        file's own watch, or with ``folder`` the folder's)."""
        result = filled.result
        data = None
        if isinstance(result, Body):
            res, data = result.resource, result.data
            props = None
        else:
            res, props = result, None
            if res is not None and res.dead_props is not None:
                props, res = res, dataclasses.replace(res, dead_props=None)
        path = plan.path
        cacheable = (
            filled.error is None
            and res is not None
            and res.is_collection == folder
            and res.etag == filled.etag
        )
        if data is not None and len(data) > self._content_limit:
            data = None
        entry = self._entries.get(path)
        if not cacheable or res is None:
            if self._watched.get(wd) is None:
                self._inotify.remove(wd)
            return
        if entry is not None and entry.res.etag == res.etag and entry.wd == wd:
            res = entry.res
            data = data if data is not None else entry.data
            props = props if props is not None else entry.with_props
            self._forget(path, keep_wd=True)
        elif entry is not None:
            self._forget(path)
        cost = _ENTRY_COST + len(res.path) + (len(data) if data is not None else 0)
        if props is not None and props.dead_props:
            cost += sum(len(k) + len(v) for k, v in props.dead_props.items())
        if cost > self._budget:
            if self._watched.get(wd) is None:
                self._inotify.remove(wd)
            return
        self._entries[path] = _Entry(res, wd, cost, data, props)
        if not folder:
            self._watched[wd] = (_FILE, path)
        self._members.setdefault(plan.folder, set()).add(path)
        self._bytes += cost
        while self._bytes > self._budget or len(self._entries) > self._max_entries:
            self._drop(next(iter(self._entries)))

    def _fits(self, kind: int, where: str, wd: int) -> bool:
        """Whether a watch a fill placed can be registered: no event came for it while it
        was unknown, and it is not the watch of another path (the same inode)."""
        if wd in self._orphans:
            return False
        known = self._watched.get(wd)
        if known is not None and known != (kind, where):
            return False
        return kind == _FILE or self._index(kind).get(where, wd) == wd

    def _index(self, kind: int) -> dict[str, int]:
        return self._folders if kind == _FOLDER else self._props

    # -- events -------------------------------------------------------------------------

    def _drain(self) -> None:
        """Apply every event queued now (never blocks)."""
        events = self._inotify.events()
        if not events:
            return
        self._seq += 1
        for wd, mask, _, name in events:
            if mask & IN_Q_OVERFLOW:
                self.clear()
                continue
            known = self._watched.get(wd)
            if known is None:
                if self._inflight:  # perhaps a fill's new watch: that fill is void
                    self._orphans.add(wd)
                    if len(self._orphans) > _TOUCHED_KEPT:  # void them all instead
                        self._orphans.clear()
                        self._floor = self._seq
                continue
            kind, where = known
            if kind == _FILE:
                self._drop(where)
            elif kind == _PROPS:
                if mask & GONE:
                    self._unwatch(wd)
                    self._drop_members(where)
                    self._drop(where)  # the folder's own properties
                elif name == SELF_PROPS:
                    self._drop(where)
                elif name.startswith("m."):
                    self._drop(f"{where}/{name[2:]}" if where else name[2:])
                elif not name.startswith(TEMP_PREFIX):
                    self._drop_members(where)  # h.<hash>: whose, the name does not say
            elif not name:  # the folder itself: gone, moved, or its permissions
                self._drop_below(where, watches=bool(mask & GONE))
                self._drop(where)
            else:
                if mask & _NAMES and where:  # its mtime and size, whatever the name
                    self._touch(where + "/")
                    self._forget(where)
                self._member_event(where, mask, name)

    def _member_event(self, where: str, mask: int, name: str) -> None:
        """An event of the watched folder ``where`` about its member ``name``."""
        if name == PROPS_DIR:
            self._drop_members(where)
        elif not name.startswith(TEMP_PREFIX):
            child = f"{where}/{name}" if where else name
            if mask & IN_ISDIR:
                self._drop_below(child, watches=bool(mask & _NAMES))
            self._drop(child)

    def _touch(self, key: str) -> None:
        if self._inflight:
            self._touched[key] = self._seq
            if len(self._touched) > _TOUCHED_KEPT:
                self._touched.clear()
                self._floor = self._seq

    def _drop(self, path: str) -> None:
        """Forget the entry of ``path`` (if any) and void the fills of it under way."""
        self._touch(path)
        self._forget(path)

    def _forget(self, path: str, keep_wd: bool = False) -> None:
        entry = self._entries.pop(path, None)
        if entry is None:
            return
        self._bytes -= entry.cost
        folder = path.rpartition("/")[0]
        members = self._members.get(folder)
        if members is not None:
            members.discard(path)
            if not members:
                del self._members[folder]
        if not keep_wd and not entry.res.is_collection:  # a folder's watch serves others
            self._unwatch(entry.wd)

    def _drop_members(self, folder: str) -> None:
        """Forget the entries of the files in ``folder``."""
        self._touch(folder)
        for path in list(self._members.get(folder, ())):
            self._forget(path)

    def _drop_below(self, folder: str, watches: bool) -> None:
        """Forget every entry below ``folder`` and, with ``watches``, the watches of the
        folders there (the paths they were placed by no longer lead to them)."""
        if not folder:
            if watches:
                self.clear()
            else:
                self._touch("")
                for path in list(self._entries):
                    self._forget(path)
            return
        self._touch(folder)
        prefix = folder + "/"
        for held in list(self._members):
            if held == folder or held.startswith(prefix):
                for path in list(self._members.get(held, ())):
                    self._forget(path)
        if watches:
            for index in (self._folders, self._props):
                for held, wd in list(index.items()):
                    if held == folder or held.startswith(prefix):
                        self._unwatch(wd)

    def _unwatch(self, wd: int) -> None:
        known = self._watched.pop(wd, None)
        if known is None:
            return
        kind, where = known
        if kind != _FILE:
            self._index(kind).pop(where, None)
        if kind == _FOLDER:  # a folder's entry lives only while its own watch does
            entry = self._entries.get(where)
            if entry is not None and entry.res.is_collection:
                self._drop(where)
        self._inotify.remove(wd)

    def clear(self) -> None:
        """Forget everything and remove every watch (a queue overflow: events were lost)."""
        for wd in self._watched:
            self._inotify.remove(wd)
        self._watched.clear()
        self._folders.clear()
        self._props.clear()
        self._entries.clear()
        self._members.clear()
        self._bytes = 0
        self._seq += 1
        self._floor = self._seq
        self._touched.clear()

    def close(self) -> None:
        """Release the inotify descriptor (its watches go with it)."""
        if not self._closed:
            self._closed = True
            self._inotify.close()
