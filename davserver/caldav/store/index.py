"""What CalDAV needs to know about the items of each calendar without reading them: their
UID, component type, ETag, resource facts and instance spans (see calendar_summary.py),
and a change log that sync tokens count in.

Kept in SQLite (one file per CalDAV mount, in the server's state folder) so sync tokens
and summaries outlive restarts, and mirrored in memory per calendar once loaded (see
calendar_items.py). The index is a cache of the items: :meth:`CalendarStore.refresh`
reconciles it with what is stored, so items changed behind the server's back are seen.
"""

from __future__ import annotations

import sqlite3
from array import array
from pathlib import Path
from typing import Any, Protocol

from davserver.ical.spans import Span
from davserver.ical.summary import Summary
from davserver.runtime.sqlite import SQLiteThread

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
INSERT OR IGNORE INTO meta VALUES ('epoch', lower(hex(randomblob(4))));
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
)
_COLUMNS = "name, etag, uid, component, " + ", ".join(name for name, _ in _ADDED)
STALE = Summary(None, None, (), float("inf"), float("-inf"))
"""The summary of a row that an older version wrote: to be worked out again."""


def _encode(spans: tuple[Span, ...]) -> bytes:
    return array("d", [x for span in spans for x in span]).tobytes()


def _decode(blob: bytes) -> tuple[Span, ...]:
    v = array("d", blob)
    return tuple(Span(v[i], v[i + 1], int(v[i + 2]), int(v[i + 3])) for i in range(0, len(v), 4))


def _row(calendar: str, name: str, item: Item) -> tuple[object, ...]:
    s = item.summary
    return (
        calendar, name, item.etag, s.uid, s.component, item.size, item.mtime, item.ctime,
        item.content_type, _encode(s.spans), s.since, s.until,
    )  # fmt: skip


def _item(row: tuple[Any, ...]) -> tuple[str, Item]:
    name, etag, uid, comp, size, mtime, ctime, ctype, spans, since, until = row
    if spans is None:
        return name, Item(etag, STALE)
    summary = Summary(uid, comp, _decode(spans), since, until)
    return name, Item(etag, summary, size, mtime, ctime, ctype)


def _migrate(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    for name, kind in _ADDED:
        if name not in have:
            db.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")


class CalendarIndex:
    """Items and changes per calendar (a calendar is named by its storage path)."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "calindex")
        self._items: dict[str, CalendarItems] = {}
        self._migrated = False
        self._epoch: str | None = None

    async def epoch(self) -> str:
        """A random name of this index, made with it: sequence numbers count within one
        index only, so sync tokens and ctags carry it (a wiped state folder starts a new
        index, and the tokens of the old one must then fail rather than mislead)."""
        if self._epoch is None:
            row = await self._db.run(
                lambda db: db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            )
            self._epoch = str(row[0])
        return self._epoch

    def cached(self, calendar: str) -> CalendarItems | None:
        """The items of a calendar when they are in memory already."""
        return self._items.get(calendar)

    def uncache(self, calendar: str) -> None:
        """Forget what memory holds of a calendar (another process changed it in the
        database): it is read again when next asked for."""
        self._items.pop(calendar, None)

    def uncache_home(self, user: str) -> None:
        """Forget what memory holds of every calendar of ``user``."""
        prefix = user + "/"
        for calendar in [c for c in self._items if c.startswith(prefix)]:
            del self._items[calendar]

    async def items(self, calendar: str) -> CalendarItems:
        """The indexed items of a calendar (items an older version indexed have the
        summary :data:`STALE`)."""
        cached = self._items.get(calendar)
        if cached is None:

            def load(db: sqlite3.Connection) -> list[tuple[str, Item]]:
                if not self._migrated:
                    _migrate(db)
                    self._migrated = True
                query = f"SELECT {_COLUMNS} FROM items WHERE calendar = ?"
                return [_item(row) for row in db.execute(query, (calendar,))]

            rows = await self._db.run(load)
            cached = self._items.get(calendar)  # loaded meanwhile by another request
            if cached is None:
                cached = CalendarItems()
                for name, item in rows:
                    cached.put(name, item)
                self._items[calendar] = cached
        return cached

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

        def write(db: sqlite3.Connection) -> None:
            with db:
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

        await self._db.run(write)
        for name, item in changed.items():
            items.put(name, item)
        for name in removed:
            items.remove(name)

    async def forget(self, calendar: str) -> None:
        """Drop a deleted calendar's items, logging each as deleted: a calendar made again
        at the same URL then has a new ctag, and a token of the old one learns that its
        items are gone."""
        await self._drop("calendar = ?", (calendar,), touched=calendar)
        self._items.pop(calendar, None)

    async def forget_home(self, user: str) -> None:
        """Drop (and log as deleted) the items of every calendar of a deleted home."""
        prefix = user + "/"
        await self._drop("substr(calendar, 1, ?) = ?", (len(prefix), prefix))
        for calendar in [c for c in self._items if c.startswith(prefix)]:
            del self._items[calendar]

    async def _drop(self, where: str, args: tuple[object, ...], touched: str = "") -> None:
        def drop(db: sqlite3.Connection) -> None:
            with db:
                gone = db.execute(f"SELECT calendar, name FROM items WHERE {where}", args)
                log = [(calendar, name, 1) for calendar, name in gone.fetchall()]
                if touched:
                    log.append((touched, "", 0))
                db.executemany("INSERT INTO changes (calendar, name, deleted) VALUES (?,?,?)", log)
                db.execute(f"DELETE FROM items WHERE {where}", args)

        await self._db.run(drop)

    async def token(self, calendar: str) -> int:
        """The sequence number of the calendar's latest change (0 when none)."""
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT MAX(seq) FROM changes WHERE calendar = ?", (calendar,)
            ).fetchone()
        )
        return int(row[0] or 0)

    async def newest(self) -> int:
        """The sequence number of the latest change in any calendar."""
        row = await self._db.run(lambda db: db.execute("SELECT MAX(seq) FROM changes").fetchone())
        return int(row[0] or 0)

    async def changes_since(self, calendar: str, seq: int) -> list[tuple[int, str, bool]]:
        """(seq, name, deleted) of each member changed after ``seq``, its latest change
        only, oldest first."""
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT MAX(seq), name, deleted FROM changes WHERE calendar = ? AND seq > ? "
                "AND name != '' GROUP BY name ORDER BY MAX(seq)",
                (calendar, seq),
            ).fetchall()
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
    state folder) is one; an index shared by several workers would be another, and
    tests/contracts/test_index.py is what it must pass."""

    async def epoch(self) -> str:
        """A random name of the index, the same for as long as the index exists."""

    def cached(self, calendar: str) -> CalendarItems | None:
        """The items of a calendar when they are in memory already."""

    def uncache(self, calendar: str) -> None:
        """Forget what memory holds of a calendar (another process changed it)."""

    def uncache_home(self, user: str) -> None:
        """Forget what memory holds of every calendar of ``user``."""

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

    async def close(self) -> None:
        """Release the index."""
