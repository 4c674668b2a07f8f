"""Named locks across hosts: PostgreSQL advisory locks.

Within a process an asyncio lock per name comes first (davserver/state/mutex.py's
:class:`ProcessMutexes`, re-entrant per task), so a process waits in the database with
one connection per name at most; then a session advisory lock on a
connection of the pool, held for the block and released after it. A task's locks share
one connection, in every space of the database (a lock taken inside another needs no
second one, so nesting cannot starve the pool). Should that connection break meanwhile,
the database releases the locks with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from davserver.state.mutex import After, ProcessMutexes

from .database import Conn, PgDatabase, drop, unavailable_as_state_errors
from .schema import NAMED_LOCK, key

WAIT = 60.0
"""Seconds a lock may be waited for before the request gives up (503)."""


class PgMutexes(ProcessMutexes):
    """A :class:`~davserver.state.mutex.Mutexes` over advisory locks of the database
    ``db``, named within ``space`` (a CalDAV mount's prefix)."""

    def __init__(self, db: PgDatabase, space: str, after: After | None = None) -> None:
        super().__init__(after)
        self._db = db
        self._space = space
        self._sessions = db.lock_sessions
        """The connection on which a task holds its named locks, shared by the spaces
        (scheduling's delivery to an attendee locks the meeting, then the attendee's
        calendar: a connection each, while the organizer's write holds one, would drain
        the pool with two attendees)."""

    def open(self) -> None:
        """Nothing to open: the database is the app's."""

    def close(self) -> None:
        """Nothing to close."""

    def _key(self, name: str) -> int:
        """The advisory lock's number: the name's within the space."""
        return key(f"{self._space}\0{name}")

    @contextlib.asynccontextmanager
    async def _across(self, number: int) -> AsyncIterator[None]:
        """The advisory lock ``number`` for the block, on the connection this task holds
        its named locks on (one held for the task's first lock: a lock taken inside
        another, a home made during a calendar write, waits for no second connection)."""
        task = asyncio.current_task()
        shared = self._sessions.get(task) if task is not None else None
        if shared is not None:
            async with self._advisory(shared, number):
                yield
            return
        async with self._db.held() as conn:
            if task is not None:
                self._sessions[task] = conn
            try:
                async with self._advisory(conn, number):
                    yield
            finally:
                if task is not None:
                    self._sessions.pop(task, None)

    @contextlib.asynccontextmanager
    async def _advisory(self, conn: Conn, number: int) -> AsyncIterator[None]:
        try:
            with unavailable_as_state_errors(conn):
                await conn.execute(
                    "SELECT pg_advisory_lock($1, $2)", NAMED_LOCK, number, timeout=WAIT
                )
        except BaseException:
            drop(conn)  # whether the lock was granted as the wait ended is unknown
            raise
        try:
            yield
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", NAMED_LOCK, number)
            except Exception:
                drop(conn)  # the database lets the lock go with the session
