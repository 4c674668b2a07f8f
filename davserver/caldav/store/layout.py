"""The URL space of a ``caldav`` mount (calendars, and address books beside them) over any
storage backend, with the index of their items kept current.

Paths (mount-relative) and where they live in the inner store::

    ""                                   the mount root         (virtual)
    principals/                          the principals         (virtual)
    principals/<user>/                   a principal            (virtual)
    principals/<user>/calendar-proxy-read/    the user's read delegates   (virtual)
    principals/<user>/calendar-proxy-write/   the user's write delegates  (virtual)
    principals/.groups/<group>/          a group's principal    (virtual)
    calendars/                           the calendar homes     ""
    calendars/<user>/                    a calendar home        "<user>"
    calendars/<user>/<calendar>/         a calendar             "<user>/<calendar>"
    calendars/<user>/<calendar>/<item>   a calendar object      "<user>/<calendar>/<item>"
    addressbooks/                        address-book homes     ".addressbooks"
    addressbooks/<user>/                 an address-book home   ".addressbooks/<user>"
    addressbooks/<user>/<book>/          an address book        ".addressbooks/<user>/<book>"
    addressbooks/<user>/<book>/<item>    a vCard                ".addressbooks/<user>/<book>/<item>"

so the inner store holds plain folders of ``.ics`` and ``.vcf`` files that other tools can
read. The calendars keep the place they had before address books existed (the users'
folders at the inner root); the address books live in the one reserved folder
``.addressbooks`` beside them, which is no user: no URL names it as one.

A user's home exists, with its default collections, from the start: until something is
written into it, it is virtual (nothing on disk), so that no read, and no request the
access rules refuse, creates anything. The first write into a home creates it, with the
default collections, in the same change as the write. The calendar home and the
address-book home of a user are made apart, each by the first write into it.

The store reports the inner store's changes to its own listener with their mount paths;
the index is brought up to date from those events (follow.py), and
:meth:`CalendarStore.refresh` reports the changes it finds made behind the server's back
the same way, so the index has one way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from davserver.backends.base import (
    AlreadyExists,
    Body,
    Change,
    Changed,
    ChangeListener,
    DeadProps,
    DeleteFailure,
    Feed,
    Forbidden,
    NotFound,
    Precondition,
    PropsUpdate,
    Resource,
    Storage,
    is_virtual,
    virtual_collection,
)
from davserver.runtime.threads import offload
from davserver.state.mutex import FileMutexes, Mutexes

from .cache import BodyCache
from .index import STALE, ItemIndex
from .items import BOOKS_DIR, CalendarItems, Item, ItemSummary, summarize_item

PRINCIPALS = "principals"
PROXY_GROUPS = ("calendar-proxy-read", "calendar-proxy-write")
"""The group principals under each user's principal whose members are the user's
delegates (read-only, read-write)."""
GROUPS = ".groups"
"""The folder of the groups' principals under ``principals/`` (no user name starts with a
dot: it cannot clash with one)."""
CALENDARS = "calendars"
ADDRESSBOOKS = "addressbooks"
SPACES = (CALENDARS, ADDRESSBOOKS)
"""The URL spaces of homes, each holding one kind of collection."""
COLLECTION_KINDS = {CALENDARS: "calendar", ADDRESSBOOKS: "addressbook"}
"""What the collections of each space are (a :class:`Place`'s kind)."""
READ_LIMIT = 16 << 20
SCAN_BATCH = 64
"""Items read and summarized together when a collection is scanned."""
REPORT_BATCH = 2048
"""Items found changed outside reported as one list of changes (memory stays bounded
however many a scan finds)."""
LISTING_BATCH = 512
OUTSIDE = "(outside)"
"""The author of changes made behind the server's back."""
MADE_WITH_HOME = "made with its home"
"""The note of the properties a default collection gets when its home is created: the
collection looked the same before, as a virtual one, so its ctag does not move."""

Homes = Mapping[str, Mapping[str, DeadProps]]
"""The spaces a store lays out (:data:`SPACES`), each with the collections every home of
it starts with (name → dead properties)."""


@dataclass(frozen=True, slots=True)
class Place:
    """What a mount-relative path names in the layout."""

    kind: str
    """root, principals, principal, proxy (a principal's group of delegates: ``name``),
    groups, group (``name``), homes, home, calendar, addressbook, item, other, none."""
    user: str | None = None
    collection: str | None = None
    """The inner path of the calendar or address book the path is (or lies in)."""
    name: str | None = None  # item name
    space: str | None = None
    """:data:`CALENDARS` or :data:`ADDRESSBOOKS` for homes and what lies in them."""

    @property
    def calendar(self) -> str | None:
        """The inner path of the calendar the path is or lies in (None outside calendars)."""
        return self.collection if self.space == CALENDARS else None

    @property
    def book(self) -> str | None:
        """The inner path of the address book the path is or lies in."""
        return self.collection if self.space == ADDRESSBOOKS else None

    @property
    def inner(self) -> str | None:
        """The inner storage path, for the kinds the inner store holds."""
        if self.kind == "homes":
            return "" if self.space == CALENDARS else BOOKS_DIR
        if self.kind == "home":
            return home_path(self.space or CALENDARS, self.user or "")
        if self.kind in ("calendar", "addressbook"):
            return self.collection
        if self.kind in ("item", "other"):
            return f"{self.collection}/{self.name}" if self.name else self.collection
        return None


def home_path(space: str, user: str) -> str:
    """The inner path of a user's home in ``space``."""
    return f"{BOOKS_DIR}/{user}" if space == ADDRESSBOOKS else user


@functools.lru_cache(maxsize=8192)
def place(path: str) -> Place:
    """Classify a mount-relative path (asked for each property of each resource a
    PROPFIND renders, hence remembered)."""
    if not path:
        return Place("root")
    parts = path.split("/")
    top = parts[0]
    if len(parts) > 1 and parts[1] == BOOKS_DIR:  # the reserved folder is nobody's
        return Place("none")
    if top == PRINCIPALS:
        if len(parts) == 1:
            return Place("principals")
        if parts[1] == GROUPS:
            if len(parts) == 2:
                return Place("groups")
            return Place("group", name=parts[2]) if len(parts) == 3 else Place("none")
        if len(parts) == 2:
            return Place("principal", user=parts[1])
        if len(parts) == 3 and parts[2] in PROXY_GROUPS:
            return Place("proxy", user=parts[1], name=parts[2])
        return Place("none")
    if top not in SPACES:
        return Place("none")
    if len(parts) == 1:
        return Place("homes", space=top)
    user = parts[1]
    if len(parts) == 2:
        return Place("home", user=user, space=top)
    collection = f"{home_path(top, user)}/{parts[2]}"
    if len(parts) == 3:
        return Place(COLLECTION_KINDS[top], user=user, collection=collection, space=top)
    if len(parts) == 4:
        return Place("item", user=user, collection=collection, name=parts[3], space=top)
    name = "/".join(parts[3:])
    return Place("other", user=user, collection=collection, name=name, space=top)


def owner(path: str) -> str | None:
    """The user whose principal or home ``path`` lies in (None: a shared place). What
    :func:`place` says of the user, without classifying the path: asked of every member
    a listing shows."""
    top, _, rest = path.partition("/")
    if top != PRINCIPALS and top not in SPACES:
        return None
    user = rest.partition("/")[0]
    if top == PRINCIPALS and user == GROUPS:
        return None  # the groups' principals: every user's to read
    return user if user and user != BOOKS_DIR else None


@functools.lru_cache(maxsize=4096)
def collection_path(inner: str) -> str:
    """The mount path of a collection's inner path (remembered: there are few)."""
    return outer_path(inner)


def outer_path(inner: str) -> str:
    """The mount path of an inner storage path."""
    if inner == BOOKS_DIR or inner.startswith(BOOKS_DIR + "/"):
        return ADDRESSBOOKS + inner[len(BOOKS_DIR) :]
    return f"{CALENDARS}/{inner}" if inner else CALENDARS


def item_of(res: Resource, summary: ItemSummary) -> Item:
    """The index entry of a stored resource."""
    ctype = res.content_type
    return Item(res.etag, summary, res.size, res.mtime, res.ctime, ctype and sys.intern(ctype))


class CalendarStore:
    """A :class:`~backends.base.Storage` laying the tree of a ``caldav`` mount over
    ``inner``: the spaces ``homes`` names (calendars, and address books when contacts are
    served), every home starting with that space's default collections; ``accounts``
    names the users who have a principal before they have a home."""

    def __init__(
        self,
        inner: Storage,
        index: ItemIndex,
        homes: Homes,
        accounts: Callable[[], Iterable[str]] = list,
        mutexes: Mutexes | None = None,
        fixed: Mapping[str, Iterable[str]] | None = None,
        groups: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.inner = inner
        self.groups = groups
        """Whether a group exists; given where users share and delegate (owner-only
        trees): the store then lays out the groups' principals and each principal's
        groups of delegates."""
        self.index = index
        self._mutexes = mutexes or FileMutexes(None)
        self.homes = {space: dict(defaults) for space, defaults in homes.items()}
        self.fixed = {space: frozenset(names) for space, names in (fixed or {}).items()}
        """The collections every home of a space has whatever else it holds (the
        scheduling inbox and outbox): virtual until something is written into them, and
        made by that write."""
        self._accounts = accounts
        self.reserved_names = inner.reserved_names
        self.reserved_prefixes = inner.reserved_prefixes
        self._started = time.time()
        self._locks: dict[str, asyncio.Lock] = {}
        self._feed: Feed | None = None
        self._stale: set[str] = set()
        self._unsettled: dict[str, set[str] | None] = {}
        """Per calendar, what a refresh found to differ from memory and settles under the
        collection's lock: some members, or (None) the whole listing."""
        self._listener: ChangeListener | None = None
        self.bodies = BodyCache()
        self._underway: dict[int, bytes] = {}
        inner.listen(self._relay)

    # -- the virtual part -------------------------------------------------------------

    def _virtual(self, path: str, props: DeadProps | None = None) -> Resource:
        res = virtual_collection(path, self._started)
        if props is not None:
            res.dead_props = dict(props)
        return res

    def _outer(self, res: Resource) -> Resource:
        return dataclasses.replace(res, path=outer_path(res.path))

    def served(self, where: Place) -> bool:
        """Whether the place lies in a space the store lays out (address books are
        served only when the mount has contacts)."""
        return where.space is None or where.space in self.homes

    async def users(self) -> list[str]:
        """Every user with a principal: those with a home, and every account."""
        found = set(self._accounts())
        for space in self.homes:
            with contextlib.suppress(NotFound):
                async for batch in self.inner.children(place(space).inner or ""):
                    found.update(r.name for r in batch if r.is_collection)
        found.discard(BOOKS_DIR)
        return sorted(found)

    async def _home_exists(self, space: str, user: str) -> bool:
        home = await self.inner.stat(home_path(space, user))
        return home is not None and home.is_collection

    # -- Storage ----------------------------------------------------------------------

    def listen(self, listener: ChangeListener) -> None:
        """Report changes (with their mount paths) to ``listener``."""
        self._listener = listener

    async def _relay(self, changes: Sequence[Changed]) -> None:
        outer = [
            dataclasses.replace(
                ch,
                path=outer_path(ch.path),
                to=outer_path(ch.to) if ch.to is not None else None,
                resource=self._outer(ch.resource) if ch.resource is not None else None,
            )
            for ch in changes
        ]
        if self._listener is not None:
            await self._listener(outer)

    def feed(self) -> Feed | None:
        """The inner store's feed (the store uses it itself)."""
        return self._feed

    async def open(self) -> None:
        """Open the inner store, its change feed and the lock file of the writes."""
        await self.inner.open()
        self._feed = self.inner.feed()
        await offload(self._mutexes.open)

    async def close(self) -> None:
        """Close the change feed, the inner store and the index."""
        if self._feed is not None:
            self._feed.close()
        await self.inner.close()
        await self.index.close()
        self._mutexes.close()

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path``: virtual ones synthesized, the rest from the inner store."""
        where = place(path)
        if where.kind in ("root", "principals", "principal"):
            return self._virtual(path)
        if where.kind in ("proxy", "groups", "group"):
            return await self._principal_group(path, where)
        inner = where.inner
        if inner is None or not self.served(where):
            return None
        res = await self.inner.stat(inner, dead_props=dead_props)
        if res is not None:
            return self._outer(res)
        return await self._virtual_in_home(path, where, dead_props)

    async def _principal_group(self, path: str, where: Place) -> Resource | None:
        """A principal's group of delegates, the groups' folder, a group's principal
        (None where the store lays out none, or the group does not exist)."""
        if self.groups is None:
            return None
        if where.kind == "group" and not await self.groups(where.name or ""):
            return None
        return self._virtual(path)

    def _default(self, where: Place) -> DeadProps | None:
        """The properties of the default collection ``where`` names (None: not one)."""
        if where.kind != COLLECTION_KINDS.get(where.space or "") or where.collection is None:
            return None
        return self.homes[where.space or ""].get(where.collection.rpartition("/")[2])

    def is_fixed(self, where: Place) -> bool:
        """Whether ``where`` is (or lies in) a collection every home has."""
        names = self.fixed.get(where.space or "", frozenset())
        return where.collection is not None and where.collection.rpartition("/")[2] in names

    async def _virtual_in_home(self, path: str, where: Place, dead_props: bool) -> Resource | None:
        """The homes of a space not made yet, a home not created yet, or one of its
        default collections; None for the rest."""
        if where.kind == "homes":
            return self._virtual(path, {} if dead_props else None)
        if where.kind == COLLECTION_KINDS.get(where.space or "") and self.is_fixed(where):
            return self._virtual(path, {} if dead_props else None)
        props = self._default(where)
        if where.kind != "home" and props is None:
            return None
        assert where.user is not None and where.space is not None
        if await self._home_exists(where.space, where.user):
            if props is None or where.inner is None:
                return None
            # A default collection missing from a home that exists: the home may be in
            # the making (by another worker); look again once it is made.
            async with self.making_home(where.space, where.user):
                res = await self.inner.stat(where.inner, dead_props=dead_props)
            return self._outer(res) if res is not None else None
        if props is None:
            return self._virtual(path, {} if dead_props else None)
        return self._virtual(path, props if dead_props else None)

    async def children(
        self, path: str, *, dead_props: bool = False
    ) -> AsyncIterator[list[Resource]]:
        """Members of a collection, virtual or stored."""
        where = place(path)
        if where.kind == "root":
            homes = [await self.stat(space, dead_props=dead_props) for space in self.homes]
            yield [self._virtual(PRINCIPALS)] + [h for h in homes if h is not None]
            return
        if where.kind == "principals":
            yield [self._virtual(f"{PRINCIPALS}/{u}") for u in await self.users()]
            return
        if where.kind == "principal" and self.groups is not None:
            yield [self._virtual(f"{path}/{name}") for name in PROXY_GROUPS]
            return
        inner = where.inner
        if inner is None or not self.served(where):
            return
        space = where.space or ""
        fixed = sorted(self.fixed.get(space, ())) if where.kind == "home" else []
        if where.kind == "home" and where.user and not await self._home_exists(space, where.user):
            yield [
                self._virtual(f"{path}/{name}", props if dead_props else None)
                for name, props in self.homes[space].items()
            ] + [self._virtual(f"{path}/{name}", {} if dead_props else None) for name in fixed]
            return
        if where.kind == COLLECTION_KINDS.get(space) and where.collection and not dead_props:
            async for batch in self._members(where.collection):
                yield batch
            return
        seen: set[str] = set()
        with contextlib.suppress(NotFound):
            async for batch in self.inner.children(inner, dead_props=dead_props):
                # The inner root holds the calendar homes and the address books' folder.
                seen.update(r.name for r in batch)
                yield [self._outer(r) for r in batch if inner or r.name != BOOKS_DIR]
        missing = [name for name in fixed if name not in seen]
        if missing:
            yield [self._virtual(f"{path}/{n}", {} if dead_props else None) for n in missing]

    async def _members(self, collection: str) -> AsyncIterator[list[Resource]]:
        """A collection's members from its index (brought up to date first): no disk
        access but for the rare folder inside it."""
        items = await self.refresh(collection)
        listed = list(items.items())
        for i in range(0, len(listed), LISTING_BATCH):
            batch = listed[i : i + LISTING_BATCH]
            yield [self.item_resource(collection, name, item) for name, item in batch]
        folders = [await self.stat(outer_path(f"{collection}/{n}")) for n in sorted(items.folders)]
        if any(folders):
            yield [f for f in folders if f is not None]

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """The bytes of a stored resource (virtual collections have none)."""
        where = place(path)
        if where.inner is not None and self.served(where):
            with contextlib.suppress(NotFound):
                body = await self.inner.read(where.inner, inline_limit=inline_limit)
                body.resource = self._outer(body.resource)
                return body
        res = await self.stat(path)
        if res is None or not res.is_collection:
            raise NotFound(path)
        return Body(resource=res)

    async def quota(self, path: str) -> tuple[int, int] | None:
        """The inner store's quota."""
        return await self.inner.quota("")

    @contextlib.asynccontextmanager
    async def change(self, *, author: str, message: str) -> AsyncIterator[CalendarChange]:
        """A change of the inner store in mount terms (homes created on first write)."""
        async with self.inner.change(author=author, message=message) as inner:
            yield CalendarChange(self, inner)

    # -- collections (calendars and address books, by inner path) ------------------------

    def writing(self, collection: str) -> AbstractAsyncContextManager[None]:
        """The lock that a write checking a collection's UIDs holds across its check and
        its write (so two items of one UID cannot both pass), in every process that
        shares the state."""
        return self._mutexes.hold(f"collection\0{collection}")

    def making_home(self, space: str, user: str) -> AbstractAsyncContextManager[None]:
        """The lock held while a home and its default collections are made (so that a
        default collection that is missing from a home being made is waited for, not
        taken for one its user deleted), in every process that shares the state."""
        return self._mutexes.hold(f"home\0{space}\0{user}")

    def mark_stale(self, calendar: str) -> None:
        """Have the next :meth:`refresh` of ``calendar`` list it in full (a change the
        index could not follow item by item: a copy or move into it)."""
        self._stale.add(calendar)

    async def refresh(self, calendar: str) -> CalendarItems:
        """Bring the index of ``calendar`` (inner path) in line with the stored items and
        return it: the items the change feed names are looked at again, or all of them
        when there is no feed, it cannot tell, or the calendar was marked stale. What
        changed behind the server's back is read, summarized and reported as changes.

        What differs from memory is settled under the collection's lock (the one writes
        checking UIDs hold, in every process): the index rows are read again first, so
        that an item another worker has just written and indexed is not taken for an
        outside change."""
        lock = self._locks.setdefault(calendar, asyncio.Lock())
        async with lock:
            items = await self.index.items(calendar)
            if calendar not in self._unsettled:
                names = await self._feed.changes(calendar) if self._feed is not None else None
                if names is None or calendar in self._stale:
                    self._stale.discard(calendar)
                    if self._feed is not None:
                        await self._feed.start(calendar)
                    self._unsettled[calendar] = None
                elif names:
                    differing = await self._differing(calendar, items, names)
                    if not differing:
                        return items
                    self._unsettled[calendar] = differing
                else:
                    return items
        async with self.writing(calendar), lock:
            if calendar not in self._unsettled:  # settled meanwhile by another request
                return await self.index.items(calendar)
            names = self._unsettled.pop(calendar)
            if names is None:
                return await self._rescan(calendar)
            self.index.uncache(calendar, names)
            items = await self.index.items(calendar)
            await self._recheck(calendar, items, names)
            return items

    async def _differing(self, calendar: str, items: CalendarItems, names: set[str]) -> set[str]:
        """Of the members the change feed named, those whose state differs from memory."""
        found = await asyncio.gather(*(self.inner.stat(f"{calendar}/{n}") for n in names))
        differing = set()
        for name, res in zip(names, found, strict=True):
            if res is not None and res.is_collection:
                if name not in items.folders:
                    differing.add(name)
            elif name in items.folders:
                differing.add(name)
            else:
                known = items.get(name)
                if (known is None) != (res is None) or (
                    known is not None and res is not None and known.etag != res.etag
                ):
                    differing.add(name)
        return differing

    async def _rescan(self, calendar: str) -> CalendarItems:
        """Compare the whole listing of a calendar with its index (the rows of the items
        that differ from memory read again first)."""
        current: dict[str, str] = {}  # name → ETag: a whole listing of resources weighs
        folders: set[str] = set()
        with contextlib.suppress(NotFound):
            async for batch in self.inner.children(calendar):
                current.update((r.name, r.etag) for r in batch if not r.is_collection)
                folders.update(r.name for r in batch if r.is_collection)
        items = await self.index.items(calendar)
        differing = {n for n in items if n not in current}
        differing.update(
            n for n, tag in current.items() if (known := items.get(n)) is None or known.etag != tag
        )
        if differing:
            # Many (a first scan): all rows read again, rather than a list of names kept.
            many = len(differing) > REPORT_BATCH
            self.index.uncache(calendar, None if many else differing)
            del differing
            items = await self.index.items(calendar)
        items.folders = folders
        removed = [name for name in items if name not in current]
        await self._reconcile(calendar, items, current, removed)
        return items

    async def _recheck(self, calendar: str, items: CalendarItems, names: set[str]) -> None:
        """Look again at the members the change feed named."""
        found = await asyncio.gather(*(self.inner.stat(f"{calendar}/{n}") for n in names))
        pairs = zip(names, found, strict=True)
        current = {n: r.etag for n, r in pairs if r is not None and not r.is_collection}
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
        current: dict[str, str],
        removed: list[str],
    ) -> None:
        """Summarize the members whose ETag differs from the index and report them, and
        the removed ones, as changes made outside; items an older index left unsummarized
        are summarized again without counting as changed."""
        names = [
            name
            for name, etag in current.items()
            if (known := items.get(name)) is None or known.etag != etag or known.summary is STALE
        ]
        quiet = {n for n in names if (k := items.get(n)) is not None and k.etag == current[n]}
        # Reported a few thousand at a time: a calendar found full of new items (100,000
        # copied in) never has them all in memory twice at once.
        for i in range(0, len(names), REPORT_BATCH):
            changed: dict[str, Item] = {}
            for j in range(i, min(i + REPORT_BATCH, len(names)), SCAN_BATCH):
                changed.update(await self._scan(calendar, names[j : j + SCAN_BATCH]))
            settled = {n: changed[n] for n in quiet if n in changed}
            if settled:
                await self.index.update(calendar, settled, [], quiet=frozenset(settled))
            outside = [
                Changed(
                    f"{calendar}/{name}",
                    "created" if items.get(name) is None else "modified",
                    False,
                    OUTSIDE,
                    items[name].etag if name in items else None,
                    item.etag,
                    note=item.summary,
                    outside=True,
                    resource=dataclasses.replace(
                        self.item_resource(calendar, name, item), path=f"{calendar}/{name}"
                    ),
                )
                for name, item in changed.items()
                if name not in quiet
            ]
            if outside:
                await self._relay(outside)
        for name in removed:
            self.bodies.drop(f"{calendar}/{name}")
        gone = [
            Changed(f"{calendar}/{name}", "deleted", False, OUTSIDE, items[name].etag, outside=True)
            for name in removed
        ]
        if gone:
            await self._relay(gone)

    async def _scan(self, calendar: str, names: list[str]) -> dict[str, Item]:
        """Read and summarize some items (gone ones are left out)."""
        bodies = await asyncio.gather(*(self._read_member(f"{calendar}/{name}") for name in names))
        found = [(n, b) for n, b in zip(names, bodies, strict=True) if b is not None]
        summaries = await offload(
            lambda: [summarize_item(f"{calendar}/{n}", b.data or b"") for n, b in found]
        )
        out: dict[str, Item] = {}
        for (name, body), summary in zip(found, summaries, strict=True):
            res = body.resource
            if body.data is not None:
                self.bodies.put(f"{calendar}/{name}", res.etag, body.data)
            out[name] = item_of(res, summary)
        return out

    async def _read_member(self, inner_path: str) -> Body | None:
        """The body of an item (None when it went away; too big ones come without data)."""
        try:
            body = await self.inner.read(inner_path, inline_limit=READ_LIMIT)
        except NotFound:
            return None
        if body.file is not None:  # far too big to be an item: index it as unknown
            await offload(body.file.close)
            body.file = None
        return body

    def underway(self, note: object) -> bytes | None:
        """The bytes of the write under way that carries ``note`` (its listeners hear of
        it before it returns, and before the bytes reach the cache), or None."""
        return self._underway.get(id(note)) if note is not None else None

    # -- items from the index -------------------------------------------------------------

    def item_resource(self, calendar: str, name: str, item: Item) -> Resource:
        """The (outer) resource of an indexed item, without asking the inner store."""
        return Resource(
            path=f"{collection_path(calendar)}/{name}",
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


class CalendarChange:
    """Writes in mount terms through the inner change; the first write into a home that
    is still virtual creates it, with its default collections."""

    def __init__(self, store: CalendarStore, inner: Change) -> None:
        self._store = store
        self._inner = inner
        self._homes: set[tuple[str, str]] = set()
        self._made: set[str] = set()

    def stored(self, collection: Resource) -> None:
        """This request found ``collection`` (a mount path) stored, not virtual: its home
        exists, and a write into it need not look for the home again."""
        where = place(collection.path)
        if where.user is not None and where.space is not None and not is_virtual(collection):
            self._homes.add((where.space, where.user))

    async def _target(self, path: str, *, making: bool = False) -> Place:
        """Where ``path`` lies; a virtual home it is in is created first, unless the
        write is ``making`` that very home."""
        where = place(path)
        if where.inner is None or where.kind == "homes" or not self._store.served(where):
            raise Forbidden(f"{path!r} is not writable")
        if where.user is not None and where.space is not None:
            home = (where.space, where.user)
            if home not in self._homes:
                if making and where.kind == "home":
                    await self._ensure_homes(where.space)
                else:
                    await self._ensure_home(where.space, where.user)
                self._homes.add(home)
            if where.collection is not None and self._store.is_fixed(where):
                await self._ensure_fixed(where.collection, making=making and where.kind != "item")
        return where

    async def _ensure_fixed(self, collection: str, *, making: bool) -> None:
        """Make a collection every home has (still virtual) before a write into it."""
        if collection in self._made or making:
            return
        if await self._store.inner.stat(collection) is None:
            with contextlib.suppress(AlreadyExists):  # made meanwhile by another request
                await self._inner.mkcol(collection)
        self._made.add(collection)

    async def _ensure_homes(self, space: str) -> None:
        """Create the folder of the address-book homes unless it exists (the calendar
        homes lie at the inner root)."""
        if space == ADDRESSBOOKS and await self._store.inner.stat(BOOKS_DIR) is None:
            with contextlib.suppress(AlreadyExists):  # made meanwhile by another request
                await self._inner.mkcol(BOOKS_DIR)

    async def _ensure_home(self, space: str, user: str) -> None:
        """Create ``user``'s home in ``space`` with its default collections unless it
        exists."""
        if await self._store._home_exists(space, user):
            return
        async with self._store.making_home(space, user):
            await self._ensure_homes(space)
            home = home_path(space, user)
            try:
                await self._inner.mkcol(home)
            except AlreadyExists:  # made meanwhile by another request
                return
            for name, props in self._store.homes[space].items():
                await self._inner.mkcol(f"{home}/{name}")
                await self._inner.set_props(f"{home}/{name}", props, note=MADE_WITH_HOME)

    async def write(
        self,
        path: str,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None = None,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> tuple[Resource, bool]:
        """Store an item; a summary given as ``note`` reaches the index with the change,
        and the bytes go to the cache."""
        where = await self._target(path)
        assert where.inner is not None
        known = note is not None and isinstance(body, bytes)
        if note is not None and isinstance(body, bytes):
            self._store._underway[id(note)] = body
        try:
            res, created = await self._inner.write(
                where.inner, body, expected_size, expect=expect, note=note
            )
        finally:
            if known:
                self._store._underway.pop(id(note), None)
        if where.kind == "item" and isinstance(body, bytes):
            self._store.bodies.put(where.inner, res.etag, body)
        return self._store._outer(res), created

    async def mkcol(self, path: str) -> None:
        """Create a collection (a home, a calendar or an address book)."""
        where = await self._target(path, making=True)
        assert where.inner is not None
        await self._inner.mkcol(where.inner)

    async def delete(self, path: str, *, expect: Precondition | None = None) -> list[DeleteFailure]:
        """Delete a stored resource."""
        where = await self._target(path)
        assert where.inner is not None
        return await self._inner.delete(where.inner, expect=expect)

    async def copy(
        self, src: str, dst: str, *, recursive: bool, expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:  # fmt: skip
        """Copy a stored resource."""
        s, d = await self._target(src), await self._target(dst)
        assert s.inner is not None and d.inner is not None
        await self._inner.copy(
            s.inner, d.inner, recursive=recursive, expect=expect, expect_dst=expect_dst
        )

    async def move(
        self, src: str, dst: str, *, expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:  # fmt: skip
        """Move a stored resource."""
        s, d = await self._target(src), await self._target(dst)
        assert s.inner is not None and d.inner is not None
        await self._inner.move(s.inner, d.inner, expect=expect, expect_dst=expect_dst)

    async def set_props(
        self,
        path: str,
        props: DeadProps | PropsUpdate,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> None:
        """Set dead properties (a collection's count as a change of it: its ctag moves)."""
        where = await self._target(path)
        assert where.inner is not None
        await self._inner.set_props(where.inner, props, expect=expect, note=note)
