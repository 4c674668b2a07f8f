"""What CalDAV needs to know about the items of each calendar without reading them: their
UID, component type and ETag, and a change log that sync tokens count in.

Kept in SQLite (one file per CalDAV mount, in the server's state folder) so sync tokens
outlive restarts, and mirrored in memory per calendar once loaded. The index is a cache
of the items: :meth:`CalendarStore.refresh` reconciles it with what is stored, so items
changed behind the server's back are seen.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from davserver.sqlite_thread import SQLiteThread

_SCHEMA = """
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
"""
_UNFOLD = re.compile(rb"\r?\n[ \t]")
_MAIN = {b"VEVENT", b"VTODO", b"VJOURNAL", b"VFREEBUSY"}


@dataclass(frozen=True, slots=True)
class Item:
    """One calendar object resource as the index knows it."""

    etag: str
    uid: str | None
    component: str | None


def scan_item(data: bytes) -> tuple[str | None, str | None]:
    """The UID and main component type of an iCalendar object, read without parsing it
    (the first VEVENT, VTODO, VJOURNAL or VFREEBUSY and the UID directly inside it)."""
    component: bytes | None = None
    depth = 0
    for line in _UNFOLD.sub(b"", data).splitlines():
        name, _, value = line.partition(b":")
        key = name.partition(b";")[0].strip().upper()
        if key == b"BEGIN":
            depth += 1
            if depth == 2 and component is None and value.strip().upper() in _MAIN:
                component = value.strip().upper()
        elif key == b"END":
            depth -= 1
        elif key == b"UID" and depth == 2 and component is not None:
            return value.strip().decode("utf-8", "replace"), component.decode()
    return None, component.decode() if component else None


class CalendarIndex:
    """Items and changes per calendar (a calendar is named by its storage path)."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "calindex")
        self._items: dict[str, dict[str, Item]] = {}

    async def items(self, calendar: str) -> dict[str, Item]:
        """The indexed items of a calendar, by resource name."""
        cached = self._items.get(calendar)
        if cached is None:
            rows = await self._db.run(
                lambda db: db.execute(
                    "SELECT name, etag, uid, component FROM items WHERE calendar = ?", (calendar,)
                ).fetchall()
            )
            cached = {name: Item(etag, uid, comp) for name, etag, uid, comp in rows}
            self._items[calendar] = cached
        return cached

    async def update(
        self, calendar: str, changed: dict[str, Item], removed: list[str], *, touched: bool = False
    ) -> None:
        """Record new or changed items, removed ones, and (``touched``) a change of the
        calendar itself; each becomes one entry of the change log."""
        if not changed and not removed and not touched:
            return
        items = await self.items(calendar)

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?)",
                    [(calendar, n, i.etag, i.uid, i.component) for n, i in changed.items()],
                )
                db.executemany(
                    "DELETE FROM items WHERE calendar = ? AND name = ?",
                    [(calendar, n) for n in removed],
                )
                log = [(calendar, n, 0) for n in changed] + [(calendar, n, 1) for n in removed]
                if touched:
                    log.append((calendar, "", 0))
                db.executemany("INSERT INTO changes (calendar, name, deleted) VALUES (?,?,?)", log)

        await self._db.run(write)
        items.update(changed)
        for name in removed:
            items.pop(name, None)

    async def forget(self, calendar: str) -> None:
        """Drop a deleted calendar's items (its change log stays, so old tokens fail)."""
        await self._db.run(
            lambda db: db.execute("DELETE FROM items WHERE calendar = ?", (calendar,))
        )
        self._items.pop(calendar, None)

    async def forget_home(self, user: str) -> None:
        """Drop the items of every calendar of a deleted calendar home."""
        prefix = user + "/"
        await self._db.run(
            lambda db: db.execute(
                "DELETE FROM items WHERE substr(calendar, 1, ?) = ?", (len(prefix), prefix)
            )
        )
        for calendar in [c for c in self._items if c.startswith(prefix)]:
            del self._items[calendar]

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

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
