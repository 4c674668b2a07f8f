"""Generations over PostgreSQL: how the processes of several hosts tell each other that
the locks or the change sequence changed.

Each process keeps one connection of its own that LISTENs on a channel; a process that
changed something NOTIFYs it (topic and its own origin). The notifications arrive on that
connection and set local flags, which :meth:`PgGenerations.changed` reads without I/O.

A notification is delivered a moment after it was sent; a write must not act on a lock
table that misses a lock granted elsewhere a moment ago. :meth:`PgGenerations.settle`
makes a round trip on the listening connection: PostgreSQL sends a connection the
notifications committed before a statement ahead of that statement's answer, so once it
returns, every notification sent before the call has set its flag. Concurrent callers
share round trips (each waits for one that started after it asked).

While the listening connection is lost, nothing is heard: it is connected again in the
background, and every topic then counts as changed (what was said meanwhile is unknown).
A write meanwhile answers 503: its settle cannot be done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import asyncpg

from davserver.state.errors import StateUnavailable
from davserver.state.generations import TOPICS

from .database import PgDatabase, drop, unavailable_as_state_errors

log = logging.getLogger("davserver.state")

CHANNEL = "davserver"
RECONNECT = 0.5
"""Seconds between attempts to listen again after the connection was lost."""


class PgGenerations:
    """A :class:`~davserver.state.generations.Generations` over LISTEN/NOTIFY."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()
        self._origin = secrets.token_hex(8)
        self._dirty: set[str] = set()
        self._unsent: set[str] = set()
        self._conn: asyncpg.Connection | None = None
        self._connecting = asyncio.Lock()
        self._next: asyncio.Future[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self._bump_next: asyncio.Future[None] | None = None
        self._bumper: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        """Listen (:class:`StateUnavailable` when the database cannot be reached)."""
        await self._listening()

    async def _listening(self) -> asyncpg.Connection:
        """The listening connection, connected (again) when needed."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        async with self._connecting:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._closed:
                raise StateUnavailable("the state is closed")
            conn = await self._db.connect()
            try:
                with unavailable_as_state_errors(conn):
                    await conn.add_listener(CHANNEL, self._notified)
            except BaseException:
                conn.terminate()
                raise
            conn.add_termination_listener(self._lost)
            self._conn = conn
            self._dirty.update(TOPICS)  # what was said while nobody listened is unknown
            return conn

    def _notified(
        self, _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, _pid: int,
        _channel: str, payload: object,
    ) -> None:  # fmt: skip
        topics, _, origin = str(payload).partition(" ")
        if origin != self._origin:
            self._dirty.update(topics.split(","))

    def _lost(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> None:
        if conn is not self._conn or self._closed:
            return
        log.warning("the state database's notifications were lost: listening again")
        self._conn = None
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed:
            try:
                await self._listening()
            except StateUnavailable:
                await asyncio.sleep(RECONNECT)
                continue
            log.info("the state database's notifications are heard again")
            return

    def changed(self, topic: str) -> bool:
        """Whether another process said ``topic`` changed since this one last asked."""
        if topic in self._dirty:
            self._dirty.discard(topic)
            return True
        return False

    async def settle(self) -> None:
        """Return once a round trip that began after this call is done on the listening
        connection (what was notified before it has then been heard)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._settler is None or self._settler.done():
            self._settler = asyncio.get_running_loop().create_task(self._settle())
        await asyncio.shield(waiting)

    async def _settle(self) -> None:
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                conn = await self._listening()
                with unavailable_as_state_errors(conn):
                    await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                batch.cancel()  # closing
                raise
            except Exception as exc:
                lost = self._conn
                if lost is not None:
                    drop(lost)  # answers no more: listen afresh
                    self._lost(lost)
                if not isinstance(exc, StateUnavailable):
                    exc = StateUnavailable(f"the state database's notifications were lost: {exc}")
                batch.set_exception(exc)
                batch.exception()  # retrieved here: a caller may have gone
            else:
                batch.set_result(None)

    async def bump(self, topic: str) -> None:
        """Notify every listening process (this one ignores its own): return once a
        notification sent after the call, naming ``topic``, is committed. Concurrent
        bumps share notifications; one that cannot be sent goes with the next."""
        self._unsent.add(topic)
        if self._bump_next is None:
            self._bump_next = asyncio.get_running_loop().create_future()
        waiting = self._bump_next
        if self._bumper is None or self._bumper.done():
            self._bumper = asyncio.get_running_loop().create_task(self._bump())
        await asyncio.shield(waiting)

    async def _bump(self) -> None:
        while self._bump_next is not None:
            batch, self._bump_next = self._bump_next, None
            topics, self._unsent = self._unsent, set()
            payload = f"{','.join(sorted(topics))} {self._origin}"
            try:
                async with self._db.connection() as conn:
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            except asyncio.CancelledError:
                batch.cancel()
                raise
            except Exception as exc:
                self._unsent |= topics
                batch.set_exception(exc)
                batch.exception()  # retrieved here: a caller may have gone
            else:
                batch.set_result(None)

    async def close(self) -> None:
        """Stop listening."""
        self._closed = True
        for task in (self._watcher, self._settler, self._bumper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        await self._db.close()
