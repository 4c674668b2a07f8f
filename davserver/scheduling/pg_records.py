"""The scheduling records in PostgreSQL, shared by the processes of several hosts: the
``scheduling_records`` table of the state's schema (davserver/state/postgres/schema.py),
the rows of the SQLite records (records.py) with a ``store`` column, one per ``caldav``
mount. A meeting organized through one host and changed or deleted through another is
compared with the record the first one made."""

from __future__ import annotations

from typing import Any

from davserver.state.postgres.database import PgDatabase

from .records import Record

_COLUMNS = "path, owner, uid, role, data"


def _record(row: Any) -> Record:
    path, owner, uid, role, data = row
    return Record(path, owner, uid, role, bytes(data))


class PgRecords:
    """:class:`~.records.Records` of the CalDAV mount ``store`` in the database ``db``."""

    def __init__(self, db: PgDatabase, store: str) -> None:
        self._db = db.attach()
        self._store = store

    async def get(self, path: str) -> Record | None:
        """The record of ``path``."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM scheduling_records WHERE store = $1 AND path = $2",
                self._store,
                path,
            )
        return _record(row) if row is not None else None

    async def find(self, user: str, uid: str, role: str) -> Record | None:
        """``user``'s copy of ``uid`` in ``role`` (the first by path when there are two)."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM scheduling_records WHERE store = $1 AND owner = $2"
                " AND uid = $3 AND role = $4 ORDER BY path LIMIT 1",
                self._store, user, uid, role,
            )  # fmt: skip
        return _record(row) if row is not None else None

    async def under(self, prefix: str) -> list[Record]:
        """The records below ``prefix`` (compared as text: no pattern, which a ``%`` or
        ``_`` of a name would be part of)."""
        start = prefix + "/"
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM scheduling_records WHERE store = $1"
                " AND substr(path, 1, $2) = $3 ORDER BY path",
                self._store, len(start), start,
            )  # fmt: skip
        return [_record(row) for row in rows]

    async def put(self, record: Record) -> None:
        """Record (or replace) a resource."""
        async with self._db.connection() as conn:
            await conn.execute(
                f"INSERT INTO scheduling_records (store, {_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (store, path) DO UPDATE SET"
                " owner = excluded.owner, uid = excluded.uid, role = excluded.role,"
                " data = excluded.data",
                self._store, record.path, record.user, record.uid, record.role, record.data,
            )  # fmt: skip

    async def delete(self, paths: list[str]) -> None:
        """Forget resources (one statement)."""
        if paths:
            async with self._db.connection() as conn:
                await conn.execute(
                    "DELETE FROM scheduling_records WHERE store = $1 AND path = ANY($2::text[])",
                    self._store,
                    paths,
                )

    async def move(self, src: str, dst: str) -> None:
        """Rename a resource's record, or those below a moved collection, in one
        transaction (what was at ``dst`` is forgotten)."""
        start, target = src + "/", dst + "/"
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM scheduling_records WHERE store = $1"
                " AND (path = $2 OR substr(path, 1, $3) = $4)",
                self._store, dst, len(target), target,
            )  # fmt: skip
            await conn.execute(
                "UPDATE scheduling_records SET path = $3 WHERE store = $1 AND path = $2",
                self._store,
                src,
                dst,
            )
            await conn.execute(
                "UPDATE scheduling_records SET path = $2 || substr(path, $3)"
                " WHERE store = $1 AND substr(path, 1, $4) = $5",
                self._store, target, len(start) + 1, len(start), start,
            )  # fmt: skip

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
