"""What implicit scheduling remembers of each scheduling object resource: its owner, UID,
role (organizer's copy or attendee's copy) and the bytes it last had.

A change event names a path and tells nothing of what was there before: the version an
organizer's or attendee's change is compared with (who was added or removed, whose
participation changed), and the attendees a deleted meeting must be cancelled for, come
from here. Kept in SQLite in the state folder (one file per ``caldav`` mount), shared by
the worker processes of a host, or in the PostgreSQL database of ``[state] url``, shared
by several hosts (pg_records.py); a state made afresh only forgets what the next change
would be compared with.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from davserver.runtime.sqlite import SQLiteThread, transaction

_SCHEMA = """
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS objects (
    path TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    uid TEXT NOT NULL,
    role TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_uid ON objects (user, uid, role);
"""


@dataclass(frozen=True, slots=True)
class Record:
    """One scheduling object resource as last seen."""

    path: str
    user: str
    uid: str
    role: str
    """``organizer`` or ``attendee``."""
    data: bytes


class Records(Protocol):
    """Where the records live: :class:`SQLiteRecords` in the state folder, or
    :class:`~.pg_records.PgRecords` in the database several hosts share."""

    async def get(self, path: str) -> Record | None:
        """The record of the resource at ``path``."""

    async def find(self, user: str, uid: str, role: str) -> Record | None:
        """``user``'s copy of the meeting ``uid`` in ``role``."""

    async def under(self, prefix: str) -> list[Record]:
        """The records of the resources below the collection ``prefix``."""

    async def put(self, record: Record) -> None:
        """Record (or replace) a resource."""

    async def delete(self, paths: list[str]) -> None:
        """Forget resources."""

    async def move(self, src: str, dst: str) -> None:
        """The resource (or collection) at ``src`` is at ``dst`` now."""

    async def close(self) -> None:
        """Release the store."""


def _row(row: tuple[str, str, str, str, bytes] | None) -> Record | None:
    return Record(*row) if row is not None else None


_COLUMNS = "path, user, uid, role, data"


class SQLiteRecords:
    """:class:`Records` in a SQLite file (made by the first write)."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "schedrecords")

    async def get(self, path: str) -> Record | None:
        """The record of ``path``."""
        return await self._db.read(
            lambda db: _row(
                db.execute(f"SELECT {_COLUMNS} FROM objects WHERE path = ?", (path,)).fetchone()
            ),
            None,
        )

    async def find(self, user: str, uid: str, role: str) -> Record | None:
        """``user``'s copy of ``uid`` in ``role`` (the first by path when there are two)."""
        query = (
            f"SELECT {_COLUMNS} FROM objects WHERE user = ? AND uid = ? AND role = ? "
            "ORDER BY path LIMIT 1"
        )
        return await self._db.read(
            lambda db: _row(db.execute(query, (user, uid, role)).fetchone()), None
        )

    async def under(self, prefix: str) -> list[Record]:
        """The records below ``prefix``."""
        start = prefix + "/"
        query = f"SELECT {_COLUMNS} FROM objects WHERE substr(path, 1, ?) = ? ORDER BY path"

        def load(db: sqlite3.Connection) -> list[Record]:
            return [Record(*row) for row in db.execute(query, (len(start), start))]

        none: list[Record] = []
        return await self._db.read(load, none)

    async def put(self, record: Record) -> None:
        """Record a resource."""
        row = (record.path, record.user, record.uid, record.role, record.data)
        await self._db.run(
            lambda db: db.execute(
                f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES (?,?,?,?,?)", row
            )
        )

    async def delete(self, paths: list[str]) -> None:
        """Forget resources."""
        if paths:
            rows = [(p,) for p in paths]

            def delete(db: sqlite3.Connection) -> None:
                with transaction(db):
                    db.executemany("DELETE FROM objects WHERE path = ?", rows)

            await self._db.run(delete)

    async def move(self, src: str, dst: str) -> None:
        """Rename a resource's record, or those below a moved collection."""
        start = src + "/"

        def move(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.execute("DELETE FROM objects WHERE path = ?", (dst,))
                db.execute(
                    "DELETE FROM objects WHERE substr(path, 1, ?) = ?", (len(dst) + 1, dst + "/")
                )
                db.execute("UPDATE objects SET path = ? WHERE path = ?", (dst, src))
                db.execute(
                    "UPDATE objects SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?",
                    (dst + "/", len(start) + 1, len(start), start),
                )

        await self._db.run(move)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
