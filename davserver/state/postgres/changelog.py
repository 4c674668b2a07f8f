"""The change sequence of every mount in PostgreSQL, shared by every process of every host.

The same table as the SQLite log (davserver/state/changelog.py). Numbers come from one
identity column, and each group of appends is one call of ``davserver_append`` (schema.py)
that takes a lock until it commits, so numbers commit in their order: a process that
read up to number n has missed no smaller number (catch-up and sync tokens rely on it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from davserver.backends.base import Changed
from davserver.state.changelog import KEEP, Group, GroupCommit, LoggedChange

from .database import Conn, PgDatabase

_FIELDS = "seq, path, kind, dest, etag, author, mount, origin, collection"


def _logged(row: Any) -> LoggedChange:
    seq, path, kind, to, etag, author, mount, origin, collection = row
    return LoggedChange(seq, path, kind, to, etag, author, mount, origin, collection)


class PgChangeLog:
    """A :class:`~davserver.state.changelog.ChangeLog` in the database ``db``; appends
    are committed in groups, as in SQLite."""

    def __init__(self, db: PgDatabase, keep: int = KEEP) -> None:
        self._db = db.attach()
        self.origin = secrets.token_hex(8)
        self._keep = keep
        self._epoch: str | None = None
        self._groups = GroupCommit(self._commit)

    async def append(self, mount: str, changes: Sequence[Changed]) -> list[int]:
        """Record changes; they are numbered in the order of the calls."""
        return await self._groups.append(mount, changes)

    def wait_for_company(self, busy: Callable[[], bool]) -> None:
        """See :meth:`~davserver.state.changelog.ChangeLog.wait_for_company`."""
        self._groups.busy = busy

    async def _commit(self, group: Group, prune: bool) -> list[list[int]]:
        flat = [(mount, ch) for mount, changes in group for ch in changes]
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT * FROM davserver_append($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [m for m, _ in flat],
                [ch.path for _, ch in flat],
                [ch.kind for _, ch in flat],
                [ch.to for _, ch in flat],
                [ch.new_etag for _, ch in flat],
                [ch.author for _, ch in flat],
                [ch.is_collection for _, ch in flat],
                time.time(),
                self.origin,
            )
            if prune:
                for mount in {m for m, _ in group}:
                    await self._prune(conn, mount)
        seqs = sorted(int(row[0]) for row in rows)  # allocated in the order given
        out: list[list[int]] = []
        for _, changes in group:
            out.append(seqs[: len(changes)])
            seqs = seqs[len(changes) :]
        return out

    async def _prune(self, conn: Conn, mount: str) -> None:
        """Drop all but the latest ``keep`` changes of ``mount``, noting the newest
        dropped."""
        async with conn.transaction():
            newest_dropped = await conn.fetchval(
                "SELECT seq FROM changes WHERE mount = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
                mount,
                self._keep,
            )
            if newest_dropped is None:
                return
            await conn.execute(
                "DELETE FROM changes WHERE mount = $1 AND seq <= $2", mount, newest_dropped
            )
            await conn.execute(
                "INSERT INTO meta VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                "pruned:" + mount,
                str(newest_dropped),
            )

    async def since(self, mount: str, seq: int, limit: int) -> list[LoggedChange]:
        """The changes after ``seq``, oldest first."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_FIELDS} FROM changes WHERE mount = $1 AND seq > $2"
                " ORDER BY seq LIMIT $3",
                mount,
                seq,
                limit,
            )
        return [_logged(row) for row in rows]

    async def since_all(self, seq: int, limit: int) -> list[LoggedChange]:
        """The changes of every mount after ``seq``, oldest first."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_FIELDS} FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
            )
        return [_logged(row) for row in rows]

    async def oldest(self, mount: str) -> int:
        """The number of the latest change of ``mount`` that was dropped (0: none)."""
        async with self._db.connection() as conn:
            value = await conn.fetchval("SELECT value FROM meta WHERE key = $1", "pruned:" + mount)
        return int(value) if value is not None else 0

    async def newest(self, mount: str) -> int:
        """The latest number of ``mount``."""
        async with self._db.connection() as conn:
            value = await conn.fetchval("SELECT MAX(seq) FROM changes WHERE mount = $1", mount)
        return int(value or 0)

    async def newest_all(self) -> int:
        """The latest number of any mount."""
        async with self._db.connection() as conn:
            value = await conn.fetchval("SELECT MAX(seq) FROM changes")
        return int(value or 0)

    async def epoch(self) -> str:
        """The log's random name (made with the schema)."""
        if self._epoch is None:
            async with self._db.connection() as conn:
                self._epoch = str(await conn.fetchval("SELECT value FROM meta WHERE key = 'epoch'"))
        return self._epoch

    async def close(self) -> None:
        """Commit what is pending, then let the database go."""
        await self._groups.drain()
        await self._db.close()
