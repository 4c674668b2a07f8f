"""The bytes of quota'd trees in PostgreSQL, shared by every process of every host: the
``quota`` table of schema.py, the same rows as the SQLite counters'
(davserver/state/quota.py). Each call is one statement: a reservation's check and
addition are one row update, which PostgreSQL serializes with any other on that row."""

from __future__ import annotations

from davserver.state.quota import Usage

from .database import PgDatabase


class PgQuota:
    """:class:`~davserver.state.quota.QuotaCounters` in the database ``db``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()

    async def get(self, mount: str, tree: str) -> Usage | None:
        """One row."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT used, counted FROM quota WHERE mount = $1 AND tree = $2", mount, tree
            )
        return Usage(int(row[0]), float(row[1])) if row is not None else None

    async def reserve(self, mount: str, tree: str, delta: int, limit: int) -> bool:
        """One conditional UPDATE (its condition is checked again on the row another
        update has just changed)."""
        async with self._db.connection() as conn:
            done = await conn.execute(
                "UPDATE quota SET used = used + $3 WHERE mount = $1 AND tree = $2"
                " AND ($3 <= 0 OR used + $3 <= $4)",
                mount,
                tree,
                delta,
                limit,
            )
        return done == "UPDATE 1"

    async def add(self, mount: str, tree: str, delta: int) -> None:
        """Unconditional, never below zero."""
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE quota SET used = GREATEST(0, used + $3) WHERE mount = $1 AND tree = $2",
                mount,
                tree,
                delta,
            )

    async def reset(
        self, mount: str, tree: str, used: int, counted: float, previous: float | None
    ) -> None:
        """Insert if absent, or update if the row is the one seen (compare and swap)."""
        async with self._db.connection() as conn:
            if previous is None:
                await conn.execute(
                    "INSERT INTO quota VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    mount,
                    tree,
                    used,
                    counted,
                )
            else:
                await conn.execute(
                    "UPDATE quota SET used = $3, counted = $4"
                    " WHERE mount = $1 AND tree = $2 AND counted = $5",
                    mount,
                    tree,
                    used,
                    counted,
                    previous,
                )

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
