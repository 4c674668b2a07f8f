"""SQLite off the event loop: one connection, used only from one dedicated thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

from .threads import WorkerPool

_T = TypeVar("_T")
BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another process's write to end."""
SETUP_ATTEMPTS = 20


@contextlib.contextmanager
def transaction(
    db: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE"
) -> Iterator[sqlite3.Connection]:
    """One transaction around the block: committed when it ends, rolled back when it
    raises (anything), the exception then raised again.

    The connections have no implicit transactions (``isolation_level=None``), so each
    statement outside this commits by itself, and ``with db:`` begins nothing. Every
    write of more than one statement (``executemany`` of several rows included) goes
    through here: it is then all or nothing, and one commit. ``IMMEDIATE`` takes the
    write lock at once, so what the block reads stays true until it commits (another
    process's write waits, up to :data:`BUSY_TIMEOUT`); ``DEFERRED`` is for reads that
    must see one snapshot. Transactions do not nest: SQLite refuses a ``BEGIN`` inside
    one (``sqlite3.OperationalError``), so a function writing inside a caller's
    transaction takes the connection from it and opens none of its own.
    """
    db.execute(f"BEGIN {mode}")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full disk)
            db.execute("ROLLBACK")
        raise


class SQLiteThread:
    """Runs functions of a connection to ``path`` on a thread of their own.

    The database (and its folder) is created on first use, with ``schema`` applied;
    :meth:`read` does not create it (a read of a database that does not exist yet has
    nothing to find). When the database cannot be used (its folder became read-only,
    vanished, or is a file now), the call raises ``sqlite3.Error``; the connection is
    then dropped, so a later call opens it afresh once the folder is usable again.

    Each call first checks that the file at ``path`` is still the one the connection
    opened (one ``stat``): a connection keeps writing to a database that was moved or
    removed, where nobody would find it again, so a folder moved aside, replaced or
    removed is noticed at the next call (and a removed one made again).
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        name: str,
        opened: Callable[[sqlite3.Connection], None] | None = None,
        private: bool = False,
    ) -> None:
        """``opened`` is called (on the database thread) with each new connection, after
        the schema: the database may be another one than before (made afresh). A
        ``private`` database is made readable by its owner only (SQLite gives its
        journal files the database's permissions)."""
        self._path = path
        self._private = private
        self._schema = schema
        self._opened = opened
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the open database
        self._thread = WorkerPool(1, name)

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None and self._identity() != self._file:
            self._reset()  # not the database at the path any more
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if self._private:
                flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
                os.close(os.open(self._path, flags, 0o600))  # made so, if it is new
            db = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
            try:
                self._prepare(db)
                if self._opened is not None:
                    self._opened(db)
            except BaseException:
                db.close()
                raise
            self._db, self._file = db, self._identity()
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
        except sqlite3.Error:
            self._reset()
            raise
        except OSError as exc:  # the folder cannot be made or entered
            self._reset()
            raise sqlite3.OperationalError(f"{self._path}: {exc}") from exc

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
