"""Leaders across hosts: a session advisory lock per job, held on a connection of its own
by the one process (of every process of every host) that leads. When that process dies
or its connection breaks, the database lets the lock go, and another process takes it at
its next try.

The other processes do not hold a connection for this: a try first asks, on a
connection of the pool, whether anyone holds the lock (``pg_locks``), and only a process
that finds it free connects to take it (keeping the connection only if it won). So
leading costs one connection in the whole group, not one per process.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from davserver.state.errors import StateUnavailable

from .database import PgDatabase, drop, unavailable_as_state_errors
from .schema import LEADER_LOCK, key

log = logging.getLogger("davserver.state")

_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = $1::int8::oid AND objid = $2::int8::oid AND objsubid = 2)"
)


class PgLeaders:
    """:class:`~davserver.state.leaders.Leaders` over advisory locks of the database
    ``db``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()
        self._conn: asyncpg.Connection | None = None
        self._held: set[str] = set()
        self._using = asyncio.Lock()
        """One statement at a time on the connection (the mounts' pollers share it)."""

    async def take(self, name: str) -> bool:
        """Whether this process leads ``name``: a leader checks that its session is
        still there (one round trip); a free lock is taken. A database that cannot be
        reached makes nobody the leader here."""
        async with self._using:
            try:
                return await self._take(name)
            except StateUnavailable as exc:
                if self._held:
                    log.warning("leading %s ended: %s", ", ".join(sorted(self._held)), exc)
                self._lost()
                return False

    async def _take(self, name: str) -> bool:
        conn = self._conn
        if conn is not None and conn.is_closed():
            raise StateUnavailable("the connection that held the leaders' locks was lost")
        if name in self._held:
            assert conn is not None
            with unavailable_as_state_errors(conn):
                await conn.fetchval("SELECT 1")
            return True
        number = key(name)
        fresh = conn is None
        if conn is None:
            async with self._db.connection() as pooled:
                held = await pooled.fetchval(_HELD, LEADER_LOCK, number & 0xFFFFFFFF)
            if held:
                return False
            conn = await self._db.connect()
        try:
            with unavailable_as_state_errors(conn):
                won = bool(
                    await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LEADER_LOCK, number)
                )
        except BaseException:
            if fresh:
                drop(conn)
            raise
        if won:
            self._conn = conn
            self._held.add(name)
        elif fresh:
            await _close(conn)  # kept only by a leader
        return won

    def _lost(self) -> None:
        if self._conn is not None:
            drop(self._conn)
        self._conn = None
        self._held.clear()

    async def release(self, name: str) -> None:
        """Let go of ``name`` (and of the connection when it held nothing else)."""
        async with self._using:
            if name not in self._held:
                return
            self._held.discard(name)
            conn = self._conn
            if conn is None:
                return
            if not self._held:
                self._conn = None
                await _close(conn)  # the session's locks go with it
                return
            try:
                with unavailable_as_state_errors(conn):
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", LEADER_LOCK, key(name))
            except StateUnavailable:
                self._lost()

    async def close(self) -> None:
        """Let go of every lock, detach from the database."""
        async with self._using:
            self._lost()
        await self._db.close()


async def _close(conn: asyncpg.Connection) -> None:
    """End a session, politely when the database answers."""
    try:
        await conn.close(timeout=5)
    except Exception:
        drop(conn)
