"""SQLite off the event loop: one connection, used only from one dedicated thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .threads import WorkerPool

_T = TypeVar("_T")
BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another process's write to end."""
SETUP_ATTEMPTS = 20


class SQLiteThread:
    """Runs functions of a connection to ``path`` on a thread of their own.

    The database (and its folder) is created on first use, with ``schema`` applied;
    :meth:`read` does not create it (a read of a database that does not exist yet has
    nothing to find). When the database cannot be used (its folder became read-only or
    vanished), the call raises ``sqlite3.Error``; the connection is then dropped, so a
    later call opens it afresh once the folder is usable again.
    """

    def __init__(self, path: Path, schema: str, name: str) -> None:
        self._path = path
        self._schema = schema
        self._db: sqlite3.Connection | None = None
        self._thread = WorkerPool(1, name)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """WAL and the schema. Several processes opening one database at once (the
        workers starting) may find it busy while another sets it up: switching to WAL
        does not wait for the busy timeout, so it is tried again a few times."""
        for attempt in range(SETUP_ATTEMPTS):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(self._schema)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == SETUP_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))  # on the database's own thread

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return fn(self._connection())
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError):
            self._reset()
            raise

    def _read(self, fn: Callable[[sqlite3.Connection], _T], absent: _T) -> _T:
        if self._db is None and self._path.parent.is_dir() and not self._path.exists():
            return absent
        return self._call(fn)

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(connection)`` on the database thread."""
        return await self._thread.submit(asyncio.get_running_loop(), self._call, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], _T], absent: _T) -> _T:
        """``fn(connection)`` on the database thread, or ``absent`` when the database does
        not exist yet (in a usable folder: an unusable one raises as :meth:`run` does)."""
        return await self._thread.submit(asyncio.get_running_loop(), self._read, fn, absent)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        await self._thread.submit(asyncio.get_running_loop(), self._reset)
        self._thread.close()
