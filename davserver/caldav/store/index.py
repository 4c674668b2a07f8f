"""What the CalDAV and CardDAV features need to know about the items of each calendar and
address book without reading them: their UID, ETag and resource facts; a calendar
object's component type and instance spans (davserver/ical/summary.py), a vCard's summary
(davserver/vcard/summary.py, as JSON); and a change log that sync tokens and ctags count in.

Kept in SQLite (one file per ``caldav`` mount, in the server's state folder; or in
PostgreSQL, pg_index.py) so sync tokens and summaries outlive restarts, and mirrored in
memory per collection once loaded (:class:`MirroredIndex`, items.py). The index is a
cache of the items: :meth:`CalendarStore.refresh` reconciles it with what is stored, so
items changed behind the server's back are seen.
A collection is named by its inner storage path (``user/calendar``,
``.addressbooks/user/book``).
"""

from __future__ import annotations

import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from pathlib import Path
from sys import intern
from typing import Any, Protocol

from davserver import vcard
from davserver.ical.summary import Summary
from davserver.runtime.sqlite import SQLiteThread, transaction

from .items import CalendarItems, Item

# synchronous=NORMAL: no fsync per change (with WAL, a crash loses at most the latest
# changes, never the database; the items themselves are not synced by the stores either).
_SCHEMA = """
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS items (
    calendar TEXT NOT NULL,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    uid TEXT,
    component TEXT,
    PRIMARY KEY (calendar, name)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    calendar TEXT NOT NULL,
    name TEXT NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_calendar ON changes (calendar, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added since the first version of the table; a row of an older index has them
# NULL and is summarized again (without counting as a change) when its calendar is read.
_ADDED = (
    ("size", "INTEGER"),
    ("mtime", "REAL"),
    ("ctime", "REAL"),
    ("ctype", "TEXT"),
    ("spans", "BLOB"),
    ("since", "REAL"),
    ("until", "REAL"),
    ("card", "TEXT"),
    ("format", "INTEGER"),
)
_COLUMNS = "name, etag, uid, component, " + ", ".join(name for name, _ in _ADDED)
_ROWS_PER_QUERY = 500
"""Names per ``IN`` list (SQLite allows 32,766 parameters; smaller lists plan better)."""
STALE = Summary(None, None, (), float("inf"), float("-inf"))
"""The summary of a row that an older version wrote: to be worked out again."""
FORMAT = 2
"""The version of what a calendar object's row holds: 2 keeps floating spans in wall
time, flagged (``ical.spans.FLOATING``), and puts an object's own VTIMEZONEs first; a
row of another version is summarized again (a vCard's summary is its own JSON)."""


def _row(calendar: str, name: str, item: Item) -> tuple[object, ...]:
    s = item.summary
    if isinstance(s, vcard.Summary):
        card: str | None = s.to_json()
        s = Summary(s.uid, None)
    else:
        card = None
    return (
        calendar, name, item.etag, s.uid, s.component, item.size, item.mtime, item.ctime,
        item.content_type, s.packed, s.since, s.until, card, FORMAT,
    )  # fmt: skip


def _item(row: tuple[Any, ...]) -> tuple[str, Item]:
    name, etag, uid, comp, size, mtime, ctime, ctype, spans, since, until, card, fmt = row
    if spans is None or (fmt != FORMAT and card is None):
        return name, Item(etag, STALE)
    summary: Summary | vcard.Summary = Summary(uid, comp, bytes(spans), since, until)
    if card is not None:
        try:
            summary = vcard.Summary.from_json(card)
        except ValueError:  # written by another version: summarized again
            return name, Item(etag, STALE)
    return name, Item(etag, summary, size, mtime, ctime, intern(ctype) if ctype else ctype)


def _migrate(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    for name, kind in _ADDED:
        if name not in have:
            db.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")


class MirroredIndex(ABC):
    """The memory mirror of an index, whatever keeps its rows: a collection's items are
    loaded whole when first asked for, then kept; another process's changes drop a
    collection (:meth:`uncache`) or mark some of its items, whose rows alone are read
    again at the next :meth:`items`. Subclasses read rows with :meth:`_load`."""

    def __init__(self) -> None:
        self._items: dict[str, CalendarItems] = {}
        self._reread: dict[str, set[str]] = {}
        """Per cached calendar, the names whose rows another process changed."""

    @abstractmethod
    async def _load(self, calendar: str, names: list[str] | None) -> list[tuple[str, Item]]:
        """The rows of a calendar's items (``names`` only, when given)."""

    def cached(self, calendar: str) -> CalendarItems | None:
        """The items of a calendar when they are in memory already."""
        return self._items.get(calendar)

    def uncache(self, calendar: str, names: Collection[str] | None = None) -> None:
        """Forget what memory holds of a calendar (another process changed it in the
        database), or of the items ``names`` only: they are read again when next asked for."""
        if names is None:
            self._items.pop(calendar, None)
            self._reread.pop(calendar, None)
        elif calendar in self._items:
            self._reread.setdefault(calendar, set()).update(names)

    def uncache_home(self, home: str) -> None:
        """Forget what memory holds of every collection in the home at inner path ``home``."""
        prefix = home + "/"
        for calendar in [c for c in self._items if c.startswith(prefix)]:
            self.uncache(calendar)

    async def items(self, calendar: str) -> CalendarItems:
        """The indexed items of a calendar (items an older version indexed have the
        summary :data:`STALE`)."""
        cached = self._items.get(calendar)
        if cached is None:
            rows = await self._load(calendar, None)
            cached = self._items.get(calendar)  # loaded meanwhile by another request
            if cached is None:
                cached = CalendarItems()
                cached.put_many(rows)
                self._items[calendar] = cached
        if calendar in self._reread:
            await self._read_again(calendar, cached)
        return cached

    async def _read_again(self, calendar: str, cached: CalendarItems) -> None:
        """Bring the items another process changed up to date in memory."""
        names = sorted(self._reread.pop(calendar))
        found = dict(await self._load(calendar, names))
        for name in names:
            item = found.get(name)
            if item is not None:
                cached.put(name, item)
            elif name in cached:
                cached.remove(name)

    @staticmethod
    def _remember(items: CalendarItems, changed: dict[str, Item], removed: list[str]) -> None:
        """Mirror a write that committed."""
        items.put_many(changed.items())
        for name in removed:
            items.remove(name)


class CalendarIndex(MirroredIndex):
    """Items and changes per collection (named by its inner storage path).

    The database is made by the first write: reads of an index that does not exist yet
    (collections nobody wrote to) find nothing and create nothing in the state folder.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._db = SQLiteThread(path, _SCHEMA, "calindex", self._opened)
        self._epoch: str | None = None
        self._new_epoch = secrets.token_hex(4)
        """The epoch the database gets when this process makes it."""

    def _opened(self, db: sqlite3.Connection) -> None:
        """A new connection: bring an older table up to date, and read the epoch again
        (a state folder made afresh holds a new database)."""
        _migrate(db)
        self._epoch = None

    async def epoch(self) -> str:
        """A random name of this index, made with it: sequence numbers count within one
        index only, so sync tokens and ctags carry it (a wiped state folder starts a new
        index, and the tokens of the old one must then fail rather than mislead). Before
        the database exists, the one it will get."""
        if self._epoch is None:
            announced = self._new_epoch  # what a database made meanwhile gets
            row = await self._db.read(
                lambda db: db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone(),
                None,
            )
            self._epoch = str(row[0]) if row is not None else announced
        return self._epoch

    def _write(self, db: sqlite3.Connection, rows: Callable[[sqlite3.Connection], None]) -> None:
        """A write, ``rows(db)``, in one transaction, which first gives a new database its
        epoch (the one announced before it existed; a database made after it gets
        another, once this one is committed)."""
        with transaction(db):
            made = db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (self._new_epoch,)
            ).rowcount
            rows(db)
        if made:
            self._new_epoch = secrets.token_hex(4)

    async def _load(self, calendar: str, names: list[str] | None) -> list[tuple[str, Item]]:
        """The rows, ``names`` by lists of at most :data:`_ROWS_PER_QUERY`."""

        def load(db: sqlite3.Connection) -> list[tuple[str, Item]]:
            query = f"SELECT {_COLUMNS} FROM items WHERE calendar = ?"
            if names is None:
                return [_item(row) for row in db.execute(query, (calendar,))]
            found: list[tuple[str, Item]] = []
            for i in range(0, len(names), _ROWS_PER_QUERY):
                part = names[i : i + _ROWS_PER_QUERY]
                some = f"{query} AND name IN ({', '.join('?' * len(part))})"
                found += [_item(row) for row in db.execute(some, (calendar, *part))]
            return found

        none: list[tuple[str, Item]] = []
        return await self._db.read(load, none)

    async def update(
        self,
        calendar: str,
        changed: dict[str, Item],
        removed: list[str],
        *,
        touched: bool = False,
        quiet: frozenset[str] = frozenset(),
    ) -> None:
        """Record new or changed items, removed ones, and (``touched``) a change of the
        calendar itself; each becomes one entry of the change log, except the items named
        in ``quiet`` (summarized again, not changed)."""
        if not changed and not removed and not touched:
            return
        items = await self.items(calendar)
        columns = ", ".join("?" * (5 + len(_ADDED)))

        def rows(db: sqlite3.Connection) -> None:
            db.executemany(
                f"INSERT OR REPLACE INTO items (calendar, {_COLUMNS}) VALUES ({columns})",
                [_row(calendar, n, i) for n, i in changed.items()],
            )
            db.executemany(
                "DELETE FROM items WHERE calendar = ? AND name = ?",
                [(calendar, n) for n in removed],
            )
            log = [(calendar, n, 0) for n in changed if n not in quiet]
            log += [(calendar, n, 1) for n in removed]
            if touched:
                log.append((calendar, "", 0))
            db.executemany("INSERT INTO changes (calendar, name, deleted) VALUES (?,?,?)", log)

        await self._db.run(lambda db: self._write(db, rows))
        self._remember(items, changed, removed)

    async def forget(self, calendar: str) -> None:
        """Drop a deleted calendar's items, logging each as deleted: a calendar made again
        at the same URL then has a new ctag, and a token of the old one learns that its
        items are gone."""
        await self._drop("calendar = ?", (calendar,), touched=calendar)
        self.uncache(calendar)

    async def forget_home(self, home: str) -> None:
        """Drop (and log as deleted) the items of every collection of a deleted home
        (its inner path)."""
        prefix = home + "/"
        await self._drop("substr(calendar, 1, ?) = ?", (len(prefix), prefix))
        self.uncache_home(home)

    async def _drop(self, where: str, args: tuple[object, ...], touched: str = "") -> None:
        def drop(db: sqlite3.Connection) -> None:
            gone = db.execute(f"SELECT calendar, name FROM items WHERE {where}", args)
            log = [(calendar, name, 1) for calendar, name in gone.fetchall()]
            if touched:
                log.append((touched, "", 0))
            db.executemany("INSERT INTO changes (calendar, name, deleted) VALUES (?,?,?)", log)
            db.execute(f"DELETE FROM items WHERE {where}", args)

        await self._db.run(lambda db: self._write(db, drop))

    async def token(self, calendar: str) -> int:
        """The sequence number of the calendar's latest change (0 when none)."""
        row = await self._db.read(
            lambda db: db.execute(
                "SELECT MAX(seq) FROM changes WHERE calendar = ?", (calendar,)
            ).fetchone(),
            None,
        )
        return int(row[0] or 0) if row is not None else 0

    async def newest(self) -> int:
        """The sequence number of the latest change in any calendar."""
        row = await self._db.read(
            lambda db: db.execute("SELECT MAX(seq) FROM changes").fetchone(), None
        )
        return int(row[0] or 0) if row is not None else 0

    async def changes_since(self, calendar: str, seq: int) -> list[tuple[int, str, bool]]:
        """(seq, name, deleted) of each member changed after ``seq``, its latest change
        only, oldest first."""
        none: list[tuple[int, str, int]] = []
        rows = await self._db.read(
            lambda db: db.execute(
                "SELECT MAX(seq), name, deleted FROM changes WHERE calendar = ? AND seq > ? "
                "AND name != '' GROUP BY name ORDER BY MAX(seq)",
                (calendar, seq),
            ).fetchall(),
            none,
        )
        return [(s, name, bool(deleted)) for s, name, deleted in rows]

    async def size(self) -> int:
        """How many items the index holds (for the metrics)."""
        row = await self._db.run(lambda db: db.execute("SELECT count(*) FROM items").fetchone())
        return int(row[0])

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()


class ItemIndex(Protocol):
    """What the calendar store asks of its index: :class:`CalendarIndex` (SQLite in the
    state folder) is one, ``PgCalendarIndex`` (pg_index.py, shared by several hosts)
    another; tests/contracts/test_index.py is what each must pass."""

    async def epoch(self) -> str:
        """A random name of the index, the same for as long as the index exists."""

    def cached(self, calendar: str) -> CalendarItems | None:
        """The items of a calendar when they are in memory already."""

    def uncache(self, calendar: str, names: Collection[str] | None = None) -> None:
        """Forget what memory holds of a calendar (another process changed it), or of
        its items ``names`` only."""

    def uncache_home(self, home: str) -> None:
        """Forget what memory holds of every collection in the home at inner path ``home``."""

    async def items(self, calendar: str) -> CalendarItems:
        """The indexed items of a calendar ({} for one never seen)."""

    async def update(
        self,
        calendar: str,
        changed: dict[str, Item],
        removed: list[str],
        *,
        touched: bool = False,
        quiet: frozenset[str] = frozenset(),
    ) -> None:
        """Record new or changed items, removed ones and (``touched``) a change of the
        calendar itself, each a change of the log but the items in ``quiet``."""

    async def forget(self, calendar: str) -> None:
        """Drop a deleted calendar, its items logged as deleted and its token moved."""

    async def forget_home(self, user: str) -> None:
        """Drop every calendar of ``user``'s deleted home, its items logged as deleted."""

    async def token(self, calendar: str) -> int:
        """The number of the calendar's latest change (0 when none)."""

    async def newest(self) -> int:
        """The number of the latest change of any calendar (0 when none)."""

    async def changes_since(self, calendar: str, seq: int) -> list[tuple[int, str, bool]]:
        """(number, name, deleted) of each item changed after ``seq``, its latest change
        only, oldest first."""

    async def size(self) -> int:
        """How many items the index holds."""

    async def close(self) -> None:
        """Release the index."""
