"""The calendar and address book index in PostgreSQL, shared by the processes of several
hosts: the same items and change log as the SQLite index (index.py) and the same memory
mirror (``MirroredIndex``), its rows made and read by that one's functions and its SQL
kept close to that one's. Every ``caldav`` mount is a ``store`` of the shared tables
(schema.py).

Writes to the collections of one home hold that home's lock until they commit, so the
numbers of one collection's changes commit in their order: a sync token (a number) never
skips a change that commits later with a smaller number.
"""

from __future__ import annotations

import secrets

from davserver.state.postgres.database import Conn, PgDatabase
from davserver.state.postgres.schema import INDEX_LOCK, key

from .index import _COLUMNS, MirroredIndex, _item, _row
from .items import Item

_NAMES = _COLUMNS.split(", ")
_UPSERT = (
    f"INSERT INTO calendar_items (store, calendar, {_COLUMNS})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(_NAMES) + 3))})"
    " ON CONFLICT (store, calendar, name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _NAMES if c != "name")
)
"""Insert or replace a row: the store, then the SQLite index's row (_row), column for column."""
_LOG = "INSERT INTO calendar_changes (store, calendar, name, deleted) VALUES ($1, $2, $3, $4)"


def _home(calendar: str) -> str:
    """The home (inner path) of a collection: ``user`` of ``user/calendar``,
    ``.addressbooks/user`` of ``.addressbooks/user/book``."""
    return calendar.rpartition("/")[0]


class PgCalendarIndex(MirroredIndex):
    """An :class:`~davserver.caldav.store.index.ItemIndex`: items and changes per calendar
    of the CalDAV mount ``store``, in the database ``db``."""

    def __init__(self, db: PgDatabase, store: str) -> None:
        super().__init__()
        self._db = db.attach()
        self._store = store
        self._epoch: str | None = None

    async def epoch(self) -> str:
        """A random name of this index, made with it (the first process to ask makes it)."""
        if self._epoch is None:
            name = "calendars:" + self._store
            async with self._db.connection() as conn:
                await conn.execute(
                    "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    name,
                    secrets.token_hex(4),
                )
                self._epoch = str(
                    await conn.fetchval("SELECT value FROM meta WHERE key = $1", name)
                )
        return self._epoch

    async def _load(self, calendar: str, names: list[str] | None) -> list[tuple[str, Item]]:
        """The rows, in one query."""
        query = f"SELECT {_COLUMNS} FROM calendar_items WHERE store = $1 AND calendar = $2"
        async with self._db.connection() as conn:
            if names is None:
                rows = await conn.fetch(query, self._store, calendar)
            else:
                some = f"{query} AND name = ANY($3::text[])"
                rows = await conn.fetch(some, self._store, calendar, names)
        return [_item(tuple(row)) for row in rows]

    async def _lock_home(self, conn: Conn, home: str) -> None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", INDEX_LOCK, key(f"{self._store}\0{home}")
        )

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
        store = self._store
        log = [(store, calendar, n, False) for n in changed if n not in quiet]
        log += [(store, calendar, n, True) for n in removed]
        if touched:
            log.append((store, calendar, "", False))
        async with self._db.transaction() as conn:
            await self._lock_home(conn, _home(calendar))
            if changed:
                await conn.executemany(
                    _UPSERT, [(store, *_row(calendar, n, i)) for n, i in changed.items()]
                )
            if removed:
                await conn.execute(
                    "DELETE FROM calendar_items WHERE store = $1 AND calendar = $2"
                    " AND name = ANY($3::text[])",
                    store,
                    calendar,
                    removed,
                )
            if log:
                await conn.executemany(_LOG, log)
        self._remember(items, changed, removed)

    async def forget(self, calendar: str) -> None:
        """Drop a deleted calendar's items, logging each as deleted: a calendar made again
        at the same URL then has a new ctag, and a token of the old one learns that its
        items are gone."""
        await self._drop(_home(calendar), "calendar = $2", calendar, touched=calendar)
        self.uncache(calendar)

    async def forget_home(self, home: str) -> None:
        """Drop (and log as deleted) the items of every collection of a deleted home
        (its inner path)."""
        await self._drop(home, "left(calendar, length($2)) = $2", home + "/")
        self.uncache_home(home)

    async def _drop(self, home: str, where: str, arg: str, touched: str = "") -> None:
        store = self._store
        async with self._db.transaction() as conn:
            await self._lock_home(conn, home)
            gone = await conn.fetch(
                f"DELETE FROM calendar_items WHERE store = $1 AND {where} RETURNING calendar, name",
                store,
                arg,
            )
            log = [(store, calendar, name, True) for calendar, name in gone]
            if touched:
                log.append((store, touched, "", False))
            if log:
                await conn.executemany(_LOG, log)

    async def token(self, calendar: str) -> int:
        """The sequence number of the calendar's latest change (0 when none)."""
        async with self._db.connection() as conn:
            value = await conn.fetchval(
                "SELECT MAX(seq) FROM calendar_changes WHERE store = $1 AND calendar = $2",
                self._store,
                calendar,
            )
        return int(value or 0)

    async def newest(self) -> int:
        """The sequence number of the latest change in any calendar."""
        async with self._db.connection() as conn:
            value = await conn.fetchval(
                "SELECT MAX(seq) FROM calendar_changes WHERE store = $1", self._store
            )
        return int(value or 0)

    async def changes_since(self, calendar: str, seq: int) -> list[tuple[int, str, bool]]:
        """(seq, name, deleted) of each member changed after ``seq``, its latest change
        only, oldest first."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT seq, name, deleted FROM ("
                " SELECT DISTINCT ON (name) seq, name, deleted FROM calendar_changes"
                " WHERE store = $1 AND calendar = $2 AND seq > $3 AND name != ''"
                " ORDER BY name, seq DESC) latest ORDER BY seq",
                self._store,
                calendar,
                seq,
            )
        return [(s, name, deleted) for s, name, deleted in rows]

    async def size(self) -> int:
        """How many items the index holds in this mount's calendars (for the metrics)."""
        async with self._db.connection() as conn:
            value = await conn.fetchval(
                "SELECT count(*) FROM calendar_items WHERE store = $1", self._store
            )
        return int(value or 0)

    async def close(self) -> None:
        """Let the database go."""
        await self._db.close()
