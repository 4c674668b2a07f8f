"""The default lock store: one SQLite file in the server's state folder."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from davserver.runtime.sqlite import SQLiteThread, transaction

from .manager import Conflicts, Lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    token TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    root TEXT NOT NULL,
    scope TEXT NOT NULL,
    depth TEXT NOT NULL,
    owner BLOB NOT NULL,
    timeout INTEGER NOT NULL,
    expires REAL NOT NULL,
    principal TEXT NOT NULL,
    collection INTEGER NOT NULL
);
"""
_COLUMNS = "token, namespace, root, scope, depth, owner, timeout, expires, principal, collection"
_INSERT = f"INSERT OR REPLACE INTO locks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"


def _values(lock: Lock) -> tuple[object, ...]:
    return (
        lock.token, lock.namespace, lock.root, lock.scope, lock.depth, lock.owner,
        lock.timeout, lock.expires, lock.principal, int(lock.collection),
    )  # fmt: skip


def _lock(row: tuple[Any, ...]) -> Lock:
    token, namespace, root, scope, depth, owner, timeout, expires, principal, collection = row
    return Lock(
        token, namespace, root, scope, depth, owner, timeout, expires, principal, bool(collection)
    )


class SQLiteLockStore:
    """Locks kept in the SQLite file ``path`` (created with its folder when missing)."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "lockstore")

    async def load(self) -> list[Lock]:
        """Every stored lock."""
        rows = await self._db.run(lambda db: db.execute(f"SELECT {_COLUMNS} FROM locks").fetchall())
        return [_lock(row) for row in rows]

    async def save(self, lock: Lock) -> None:
        """Insert or replace a lock."""
        values = _values(lock)
        await self._db.run(lambda db: db.execute(_INSERT, values))

    async def insert_unless(self, lock: Lock, conflicts: Conflicts, now: float) -> Lock | None:
        """Insert ``lock`` unless a live lock of its namespace conflicts, in one
        transaction that other processes wait for (BEGIN IMMEDIATE)."""

        def insert(db: sqlite3.Connection) -> Lock | None:
            with transaction(db):
                db.execute("DELETE FROM locks WHERE expires <= ?", (now,))
                live = [
                    _lock(row)
                    for row in db.execute(
                        f"SELECT {_COLUMNS} FROM locks WHERE namespace = ?", (lock.namespace,)
                    )
                ]
                other = conflicts(live)
                if other is None:
                    db.execute(_INSERT, _values(lock))
            return other

        return await self._db.run(insert)

    async def renew(self, token: str, timeout: int, expires: float, now: float) -> Lock | None:
        """Set the live lock's timeout and expiry in one statement; None when it is gone."""

        def renew(db: sqlite3.Connection) -> Lock | None:
            rows = db.execute(
                f"UPDATE locks SET timeout = ?, expires = ? WHERE token = ? AND expires > ?"
                f" RETURNING {_COLUMNS}",
                (timeout, expires, token, now),
            ).fetchall()
            return _lock(rows[0]) if rows else None

        return await self._db.run(renew)

    async def delete(self, tokens: Iterable[str]) -> None:
        """Forget locks."""
        rows = [(t,) for t in tokens]

        def delete(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany("DELETE FROM locks WHERE token = ?", rows)

        await self._db.run(delete)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
