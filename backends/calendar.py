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
)
from .calendar_index import CalendarIndex, Item, scan_item

PRINCIPALS = "principals"
CALENDARS = "calendars"
READ_LIMIT = 16 << 20


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

    # -- the virtual part -------------------------------------------------------------

    def _virtual(self, path: str) -> Resource:
        return Resource(
            path=path,
            is_collection=True,
            size=0,
            mtime=self._started,
            ctime=self._started,
            etag=f'"v-{int(self._started)}"',
            dead_props={},
        )

    def _outer(self, res: Resource) -> Resource:
        prefix = f"{CALENDARS}/{res.path}" if res.path else CALENDARS
        return dataclasses.replace(res, path=prefix)

    async def _users(self) -> list[str]:
        return [r.name async for batch in self.inner.children("") for r in batch if r.is_collection]

    # -- Storage ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the inner store."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the inner store and the index."""
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
        async for batch in self.inner.children(inner, dead_props=dead_props):
            yield [self._outer(r) for r in batch]

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

    async def refresh(self, calendar: str) -> dict[str, Item]:
        """Bring the index of ``calendar`` (inner path) in line with the stored items and
        return it; items changed behind the server's back are re-read."""
        known = await self.index.items(calendar)
        current: dict[str, str] = {}
        with contextlib.suppress(NotFound):
            async for batch in self.inner.children(calendar):
                current.update((r.name, r.etag) for r in batch if not r.is_collection)
        removed = [name for name in known if name not in current]
        changed: dict[str, Item] = {}
        for name, etag in current.items():
            item = known.get(name)
            if item is None or item.etag != etag:
                changed[name] = await self._scan(f"{calendar}/{name}")
        await self.index.update(calendar, changed, removed)
        return await self.index.items(calendar)

    async def _scan(self, inner_path: str) -> Item:
        body = await self.inner.read(inner_path, inline_limit=READ_LIMIT)
        if body.file is not None:  # far too big to be a calendar object: index it as unknown
            await asyncio.get_running_loop().run_in_executor(None, body.file.close)
            return Item(body.resource.etag, None, None)
        uid, component = scan_item(body.data or b"")
        return Item(body.resource.etag, uid, component)


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
        self, path: str, body: bytes | AsyncIterator[bytes], expected_size: int | None = None
    ) -> tuple[Resource, bool]:
        """Store an item; its UID and component go to the index at once."""
        where = self._target(path)
        assert where.inner is not None
        res, created = await self._inner.write(where.inner, body, expected_size)
        if where.kind == "item" and where.calendar and isinstance(body, bytes):
            uid, component = scan_item(body)
            self._recorded.setdefault(where.calendar, {})[where.name or ""] = Item(
                res.etag, uid, component
            )
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
