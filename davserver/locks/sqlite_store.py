"""The default lock store: one SQLite file in the server's state folder.

sqlite3 blocks, so every call runs on one dedicated thread (which also keeps the
connection to a single thread, as sqlite3 prefers).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .manager import Lock

_T = TypeVar("_T")
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
)
"""
_COLUMNS = "token, namespace, root, scope, depth, owner, timeout, expires, principal, collection"


class SQLiteLockStore:
    """Locks kept in ``path`` (created with its folder when missing)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lockstore")

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    async def load(self) -> list[Lock]:
        """Every stored lock."""

        def load() -> list[Lock]:
            rows = self._connect().execute(f"SELECT {_COLUMNS} FROM locks").fetchall()
            return [Lock(*row[:-1], collection=bool(row[-1])) for row in rows]

        return await self._run(load)

    async def save(self, lock: Lock) -> None:
        """Insert or replace a lock."""

        def save() -> None:
            self._connect().execute(
                f"INSERT OR REPLACE INTO locks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (lock.token, lock.namespace, lock.root, lock.scope, lock.depth, lock.owner,
                 lock.timeout, lock.expires, lock.principal, int(lock.collection)),
            )  # fmt: skip

        await self._run(save)

    async def delete(self, tokens: Iterable[str]) -> None:
        """Forget locks."""
        rows = [(t,) for t in tokens]

        def delete() -> None:
            self._connect().executemany("DELETE FROM locks WHERE token = ?", rows)

        await self._run(delete)

    async def close(self) -> None:
        """Close the database and its thread."""

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._thread.shutdown(wait=False)
