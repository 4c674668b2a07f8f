"""The lock store shared by several hosts: the ``locks`` table of the state database
(davserver/state/postgres/schema.py), the same columns as the SQLite store's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.schema import LOCKS_LOCK, key

from .manager import Conflicts, Lock

_COLUMNS = "token, namespace, root, scope, depth, owner, timeout, expires, principal, collection"
_INSERT = (
    f"INSERT INTO locks ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (token) DO UPDATE SET namespace = excluded.namespace,"
    " root = excluded.root, scope = excluded.scope, depth = excluded.depth,"
    " owner = excluded.owner, timeout = excluded.timeout, expires = excluded.expires,"
    " principal = excluded.principal, collection = excluded.collection"
)


def _values(lock: Lock) -> tuple[object, ...]:
    return (
        lock.token, lock.namespace, lock.root, lock.scope, lock.depth, lock.owner,
        lock.timeout, lock.expires, lock.principal, lock.collection,
    )  # fmt: skip


def _lock(row: Any) -> Lock:
    token, namespace, root, scope, depth, owner, timeout, expires, principal, collection = row
    return Lock(
        token, namespace, root, scope, depth, bytes(owner), timeout, expires, principal, collection
    )


class PgLockStore:
    """Locks kept in the database ``db``, shared by every process of every host."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()

    async def load(self) -> list[Lock]:
        """Every stored lock."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM locks")
        return [_lock(row) for row in rows]

    async def save(self, lock: Lock) -> None:
        """Insert or replace a lock."""
        async with self._db.connection() as conn:
            await conn.execute(_INSERT, *_values(lock))

    async def insert_unless(self, lock: Lock, conflicts: Conflicts, now: float) -> Lock | None:
        """Insert ``lock`` unless a live lock of its namespace conflicts, in one
        transaction that holds the namespace's lock: another one inserting into the same
        namespace waits, and then sees this one's lock."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", LOCKS_LOCK, key(lock.namespace)
            )
            await conn.execute("DELETE FROM locks WHERE expires <= $1", now)
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM locks WHERE namespace = $1", lock.namespace
            )
            other = conflicts([_lock(row) for row in rows])
            if other is None:
                await conn.execute(_INSERT, *_values(lock))
        return other

    async def renew(self, token: str, timeout: int, expires: float, now: float) -> Lock | None:
        """Set the live lock's timeout and expiry in one statement; None when it is gone."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                f"UPDATE locks SET timeout = $1, expires = $2 WHERE token = $3 AND expires > $4"
                f" RETURNING {_COLUMNS}",
                timeout,
                expires,
                token,
                now,
            )
        return _lock(row) if row is not None else None

    async def delete(self, tokens: Iterable[str]) -> None:
        """Forget locks."""
        gone = list(tokens)
        if gone:
            async with self._db.connection() as conn:
                await conn.execute("DELETE FROM locks WHERE token = ANY($1::text[])", gone)

    async def close(self) -> None:
        """Let the database go."""
        await self._db.close()
