"""Named locks across hosts: PostgreSQL advisory locks.

Within a process an asyncio lock per name comes first, so a process waits in the
database with one connection per name at most; then a session advisory lock on a
connection of the pool, held for the block and released after it. Should that
connection break meanwhile, the database releases the lock with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from davserver.state.mutex import After

from .database import PgDatabase, drop, unavailable_as_state_errors
from .schema import NAMED_LOCK, key

WAIT = 60.0
"""Seconds a lock may be waited for before the request gives up (503)."""


class PgMutexes:
    """A :class:`~davserver.state.mutex.Mutexes` over advisory locks of the database
    ``db``, named within ``space`` (a CalDAV mount's prefix)."""

    def __init__(self, db: PgDatabase, space: str, after: After | None = None) -> None:
        self._db = db
        self._space = space
        self._after = after
        self._local: dict[int, asyncio.Lock] = {}

    def open(self) -> None:
        """Nothing to open: the database is the app's."""

    def close(self) -> None:
        """Nothing to close."""

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock named ``name`` for the block."""
        number = key(f"{self._space}\0{name}")
        local = self._local.setdefault(number, asyncio.Lock())
        async with local, self._db.held() as conn:
            try:
                with unavailable_as_state_errors(conn):
                    await conn.execute(
                        "SELECT pg_advisory_lock($1, $2)", NAMED_LOCK, number, timeout=WAIT
                    )
            except BaseException:
                drop(conn)  # whether the lock was granted as the wait ended is unknown
                raise
            try:
                if self._after is not None:
                    await self._after()
                yield
            finally:
                try:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", NAMED_LOCK, number)
                except Exception:
                    drop(conn)  # the database lets the lock go with the session
