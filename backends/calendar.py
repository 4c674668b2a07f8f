"""The CalDAV URL space over any storage backend, with the calendar index kept current.

Paths (mount-relative) and where they live::

    ""                                   the mount root          (virtual)
    principals/                          the principals          (virtual)
    principals/<user>/                   a principal             (virtual)
    calendars/                           the calendar homes      -> inner ""
    calendars/<user>/                    a calendar home         -> inner "<user>"
    calendars/<user>/<calendar>/         a calendar collection   -> inner "<user>/<calendar>"
    calendars/<user>/<calendar>/<item>   a calendar object       -> inner "<user>/<calendar>/<item>"

so the inner store holds plain folders of ``.ics`` files that other tools can read. Every
write goes through :class:`CalendarChange`, which keeps the index of each calendar (UID,
component, ETag) and its change log current; :meth:`CalendarStore.refresh` catches up with
changes made behind the server's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from .base import (
    Body,
    Change,
    DeadProps,
    DeleteFailure,
    Forbidden,
    NotFound,
    Resource,
    Storage,
    virtual_collection,
)
from .calendar_cache import BodyCache
from .calendar_feed import Feed, feed_for
from .calendar_index import STALE, CalendarIndex
from .calendar_items import CalendarItems, Item
from .calendar_summary import Summary, summarize

PRINCIPALS = "principals"
CALENDARS = "calendars"
READ_LIMIT = 16 << 20
SCAN_BATCH = 64
LISTING_BATCH = 512
"""Items read and summarized together when a calendar is scanned."""


@dataclass(frozen=True, slots=True)
class Place:
    """What a mount-relative path names in the CalDAV layout."""

    kind: str  # root, principals, principal, homes, home, calendar, item, other
    user: str | None = None
    calendar: str | None = None  # inner path "<user>/<calendar>"
    name: str | None = None  # item name

    @property
    def inner(self) -> str | None:
        """The inner storage path, for the kinds the inner store holds."""
        if self.kind == "homes":
            return ""
        if self.kind == "home":
            return self.user
        if self.kind == "calendar":
            return self.calendar
        if self.kind in ("item", "other"):
            return f"{self.calendar}/{self.name}" if self.name else self.calendar
        return None


def place(path: str) -> Place:
    """Classify a mount-relative path."""
    if not path:
        return Place("root")
    parts = path.split("/")
    top = parts[0]
    if top == PRINCIPALS:
        if len(parts) == 1:
            return Place("principals")
        if len(parts) == 2:
            return Place("principal", user=parts[1])
        return Place("none")
    if top != CALENDARS:
        return Place("none")
    if len(parts) == 1:
        return Place("homes")
    if len(parts) == 2:
        return Place("home", user=parts[1])
    calendar = f"{parts[1]}/{parts[2]}"
    if len(parts) == 3:
        return Place("calendar", user=parts[1], calendar=calendar)
    if len(parts) == 4:
        return Place("item", user=parts[1], calendar=calendar, name=parts[3])
    return Place("other", user=parts[1], calendar=calendar, name="/".join(parts[3:]))


class CalendarStore:
    """A :class:`~backends.base.Storage` laying the CalDAV tree over ``inner``."""

    def __init__(self, inner: Storage, index: CalendarIndex) -> None:
        self.inner = inner
        self.index = index
        self.reserved_names = inner.reserved_names
        self.reserved_prefixes = inner.reserved_prefixes
        self._started = time.time()
        self._homes_ready: set[str] = set()
        self._home_lock = asyncio.Lock()
        self._locks: dict[str, asyncio.Lock] = {}
        self._feed: Feed | None = None
        self.bodies = BodyCache()

    # -- the virtual part -------------------------------------------------------------

    def _virtual(self, path: str) -> Resource:
        return virtual_collection(path, self._started)

    def _outer(self, res: Resource) -> Resource:
        prefix = f"{CALENDARS}/{res.path}" if res.path else CALENDARS
        return dataclasses.replace(res, path=prefix)

    async def _users(self) -> list[str]:
        return [r.name async for batch in self.inner.children("") for r in batch if r.is_collection]

    # -- Storage ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the inner store and its change feed."""
        await self.inner.open()
        self._feed = feed_for(self.inner)

    async def close(self) -> None:
        """Close the change feed, the inner store and the index."""
        if self._feed is not None:
            self._feed.close()
        await self.inner.close()
        await self.index.close()

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path``: virtual ones synthesized, the rest from the inner store."""
        where = place(path)
        if where.kind in ("root", "principals"):
            return self._virtual(path)
        if where.kind == "principal":
            assert where.user is not None
            home = await self.inner.stat(where.user)
            return self._virtual(path) if home is not None and home.is_collection else None
        inner = where.inner
        if inner is None:
            return None
        res = await self.inner.stat(inner, dead_props=dead_props)
        return self._outer(res) if res is not None else None

    async def children(
        self, path: str, *, dead_props: bool = False
    ) -> AsyncIterator[list[Resource]]:
        """Members of a collection, virtual or stored."""
        where = place(path)
        if where.kind == "root":
            homes = await self.stat(CALENDARS, dead_props=dead_props)
            yield [self._virtual(PRINCIPALS)] + ([homes] if homes is not None else [])
            return
        if where.kind == "principals":
            yield [self._virtual(f"{PRINCIPALS}/{u}") for u in await self._users()]
            return
        inner = where.inner
        if inner is None:
            return
        if where.kind == "calendar" and not dead_props and where.calendar:
            async for batch in self._members(where.calendar):
                yield batch
            return
        async for batch in self.inner.children(inner, dead_props=dead_props):
            yield [self._outer(r) for r in batch]

    async def _members(self, calendar: str) -> AsyncIterator[list[Resource]]:
        """A calendar's members from its index (brought up to date first): no disk access
        but for the rare folder inside a calendar."""
        items = await self.refresh(calendar)
        names = list(items)
        for i in range(0, len(names), LISTING_BATCH):
            batch = names[i : i + LISTING_BATCH]
            yield [self.item_resource(calendar, n, items[n]) for n in batch if n in items]
        folders = [await self.stat(f"{CALENDARS}/{calendar}/{n}") for n in sorted(items.folders)]
        if any(folders):
            yield [f for f in folders if f is not None]

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """The bytes of a stored resource (virtual collections have none)."""
        where = place(path)
        if where.inner is None:
            res = await self.stat(path)
            if res is None:
                raise NotFound(path)
            return Body(resource=res)
        body = await self.inner.read(where.inner, inline_limit=inline_limit)
        body.resource = self._outer(body.resource)
        return body

    async def quota(self, path: str) -> tuple[int, int] | None:
        """The inner store's quota."""
        return await self.inner.quota("")

    @contextlib.asynccontextmanager
    async def change(self, *, author: str, message: str) -> AsyncIterator[CalendarChange]:
        """A change of the inner store that keeps the index current."""
        async with self.inner.change(author=author, message=message) as inner:
            change = CalendarChange(self, inner)
            yield change
        await change.settle()

    # -- calendars ----------------------------------------------------------------------

    async def ensure_home(self, user: str, calendars: Mapping[str, DeadProps]) -> None:
        """Create ``user``'s calendar home with the given calendars, unless it exists."""
        if user in self._homes_ready:
            return
        async with self._home_lock:
            if await self.inner.stat(user) is None:
                message = f"Create the calendar home of {user}"
                async with self.inner.change(author=user, message=message) as change:
                    await change.mkcol(user)
                    for name, props in calendars.items():
                        await change.mkcol(f"{user}/{name}")
                        await change.set_props(f"{user}/{name}", props)
            self._homes_ready.add(user)

    async def refresh(self, calendar: str) -> CalendarItems:
        """Bring the index of ``calendar`` (inner path) in line with the stored items and
        return it: the items the change feed names are looked at again, or all of them
        when there is no feed or it cannot tell. Items changed behind the server's back
        are read and summarized again."""
        lock = self._locks.setdefault(calendar, asyncio.Lock())
        async with lock:
            items = await self.index.items(calendar)
            names = await self._feed.changes(calendar) if self._feed is not None else None
            if names is None:
                if self._feed is not None:
                    await self._feed.start(calendar)
                await self._rescan(calendar, items)
            elif names:
                await self._recheck(calendar, items, names)
            return items

    async def _rescan(self, calendar: str, items: CalendarItems) -> None:
        """Compare the whole listing of a calendar with its index."""
        current: dict[str, Resource] = {}
        folders: set[str] = set()
        with contextlib.suppress(NotFound):
            async for batch in self.inner.children(calendar):
                current.update((r.name, r) for r in batch if not r.is_collection)
                folders.update(r.name for r in batch if r.is_collection)
        items.folders = folders
        removed = [name for name in items if name not in current]
        await self._reconcile(calendar, items, current, removed)

    async def _recheck(self, calendar: str, items: CalendarItems, names: set[str]) -> None:
        """Look again at the members the change feed named."""
        found = await asyncio.gather(*(self.inner.stat(f"{calendar}/{n}") for n in names))
        current = {n: r for n, r in zip(names, found, strict=True) if r and not r.is_collection}
        for name, res in zip(names, found, strict=True):
            if res is not None and res.is_collection:
                items.folders.add(name)
            else:
                items.folders.discard(name)
        removed = [n for n in names if n not in current and n in items]
        await self._reconcile(calendar, items, current, removed)

    async def _reconcile(
        self,
        calendar: str,
        items: CalendarItems,
        current: dict[str, Resource],
        removed: list[str],
    ) -> None:
        """Summarize the members whose ETag differs from the index, record them and the
        removed ones (items an older index left unsummarized do not count as changed)."""
        stale = {
            name: res
            for name, res in current.items()
            if (known := items.get(name)) is None
            or known.etag != res.etag
            or known.summary is STALE
        }
        quiet = frozenset(
            n for n, r in stale.items() if (k := items.get(n)) is not None and k.etag == r.etag
        )
        changed: dict[str, Item] = {}
        names = list(stale)
        for i in range(0, len(names), SCAN_BATCH):
            batch = names[i : i + SCAN_BATCH]
            changed.update(await self._scan(calendar, batch))
        for name in removed:
            self.bodies.drop(f"{calendar}/{name}")
        await self.index.update(calendar, changed, removed, quiet=quiet)

    async def _scan(self, calendar: str, names: list[str]) -> dict[str, Item]:
        """Read and summarize some items (gone ones are left out)."""
        bodies = await asyncio.gather(*(self._read_member(f"{calendar}/{name}") for name in names))
        found = [(n, b) for n, b in zip(names, bodies, strict=True) if b is not None]
        loop = asyncio.get_running_loop()
        summaries = await loop.run_in_executor(
            None, lambda: [summarize(b.data or b"") for _, b in found]
        )
        out: dict[str, Item] = {}
        for (name, body), summary in zip(found, summaries, strict=True):
            res = body.resource
            if body.data is not None:
                self.bodies.put(f"{calendar}/{name}", res.etag, body.data)
            out[name] = _item_of(res, summary)
        return out

    async def _read_member(self, inner_path: str) -> Body | None:
        """The body of an item (None when it went away; too big ones come without data)."""
        try:
            body = await self.inner.read(inner_path, inline_limit=READ_LIMIT)
        except NotFound:
            return None
        if body.file is not None:  # far too big to be a calendar object: index it as unknown
            await asyncio.get_running_loop().run_in_executor(None, body.file.close)
            body.file = None
        return body

    # -- items from the index -------------------------------------------------------------

    def item_resource(self, calendar: str, name: str, item: Item) -> Resource:
        """The (outer) resource of an indexed item, without asking the inner store."""
        return Resource(
            path=f"{CALENDARS}/{calendar}/{name}",
            is_collection=False,
            size=item.size,
            mtime=item.mtime,
            ctime=item.ctime,
            etag=item.etag,
            content_type=item.content_type,
        )

    async def item_body(self, calendar: str, name: str) -> tuple[Resource, bytes] | None:
        """The resource and bytes of an item: from memory when its indexed ETag is cached,
        else read (None when it is gone)."""
        item = (await self.index.items(calendar)).get(name)
        if item is not None:
            data = self.bodies.get(f"{calendar}/{name}", item.etag)
            if data is not None:
                return self.item_resource(calendar, name, item), data
        body = await self._read_member(f"{calendar}/{name}")
        if body is None or body.data is None or body.resource.is_collection:
            return None
        self.bodies.put(f"{calendar}/{name}", body.resource.etag, body.data)
        return self._outer(body.resource), body.data


def _item_of(res: Resource, summary: Summary) -> Item:
    """The index entry of a stored resource."""
    return Item(res.etag, summary, res.size, res.mtime, res.ctime, res.content_type)


class CalendarChange:
    """Writes through the inner change, noting which calendars they touch."""

    def __init__(self, store: CalendarStore, inner: Change) -> None:
        self._store = store
        self._inner = inner
        self._recorded: dict[str, dict[str, Item]] = {}
        self._stale: set[str] = set()
        self._touched: set[str] = set()
        self._gone: set[str] = set()
        self._gone_homes: set[str] = set()

    def _target(self, path: str) -> Place:
        where = place(path)
        if where.inner is None or where.kind == "homes":
            raise Forbidden(f"{path!r} is not writable")
        return where

    async def write(
        self,
        path: str,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None = None,
        *,
        summary: Summary | None = None,
    ) -> tuple[Resource, bool]:
        """Store an item; its summary (given, or worked out here from the bytes) goes to
        the index when the change settles, and its bytes to the cache."""
        where = self._target(path)
        assert where.inner is not None
        res, created = await self._inner.write(where.inner, body, expected_size)
        if where.kind == "item" and where.calendar and isinstance(body, bytes):
            if summary is None:
                loop = asyncio.get_running_loop()
                summary = await loop.run_in_executor(None, summarize, body)
            self._recorded.setdefault(where.calendar, {})[where.name or ""] = _item_of(res, summary)
            self._store.bodies.put(where.inner, res.etag, body)
        elif where.calendar:
            self._stale.add(where.calendar)
        return self._store._outer(res), created

    async def mkcol(self, path: str) -> None:
        """Create a collection (a home or a calendar)."""
        where = self._target(path)
        assert where.inner is not None
        await self._inner.mkcol(where.inner)

    async def delete(self, path: str) -> list[DeleteFailure]:
        """Delete, then forget what the index knew of it."""
        where = self._target(path)
        assert where.inner is not None
        failures = await self._inner.delete(where.inner)
        self._forget(where)
        return failures

    def _forget(self, where: Place) -> None:
        if where.kind in ("item", "other") and where.calendar:
            self._stale.add(where.calendar)
        elif where.kind == "calendar" and where.calendar:
            self._gone.add(where.calendar)
        elif where.kind == "home" and where.user:
            self._gone_homes.add(where.user)

    async def copy(self, src: str, dst: str, *, recursive: bool) -> None:
        """Copy, then re-read the calendars involved."""
        s, d = self._target(src), self._target(dst)
        assert s.inner is not None and d.inner is not None
        await self._inner.copy(s.inner, d.inner, recursive=recursive)
        self._note_tree(d)

    async def move(self, src: str, dst: str) -> None:
        """Move, then re-read the calendars involved."""
        s, d = self._target(src), self._target(dst)
        assert s.inner is not None and d.inner is not None
        await self._inner.move(s.inner, d.inner)
        self._forget(s)
        self._note_tree(d)

    def _note_tree(self, where: Place) -> None:
        if where.calendar:
            self._stale.add(where.calendar)

    async def set_props(self, path: str, props: DeadProps) -> None:
        """Set dead properties; a calendar's count as a change of it (its ctag moves)."""
        where = self._target(path)
        assert where.inner is not None
        await self._inner.set_props(where.inner, props)
        if where.kind == "calendar" and where.calendar:
            self._touched.add(where.calendar)

    async def settle(self) -> None:
        """After the inner change committed: write what was learnt to the index."""
        index = self._store.index
        for user in self._gone_homes:
            await index.forget_home(user)
            self._store._homes_ready.discard(user)
        for calendar in self._gone:
            await index.forget(calendar)
        for calendar, items in self._recorded.items():
            await index.update(calendar, items, [], touched=calendar in self._touched)
            self._touched.discard(calendar)
        for calendar in self._stale - self._gone:
            await self._store.refresh(calendar)
        for calendar in self._touched:
            await index.update(calendar, {}, [], touched=True)
