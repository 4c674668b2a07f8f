"""One PostgreSQL database shared by every process of every host: a connection pool per
process (made after the fork, at the first use or at start), and the mapping of "the
database cannot be reached" to :class:`StateUnavailable`.

Every call is asynchronous (asyncpg); none blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeAlias

import asyncpg
from asyncpg import connect_utils
from asyncpg.pool import PoolConnectionProxy

from davserver.runtime.threads import offload
from davserver.state.errors import StateUnavailable

from .schema import migrate

log = logging.getLogger("davserver.state")

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection of the pool, or one of its own."""

CONNECT_TIMEOUT = 5.0
"""Seconds a new connection may take before the database counts as unavailable."""
COMMAND_TIMEOUT = 15.0
"""Seconds a statement may take (a database that stopped answering: 503, not a hang)."""
POOL_SIZE = 4

# The kinds of failure that mean the database is not there (now): no connection,
# connection lost, shut down or starting up, too many clients, refused credentials or
# database. Anything else is a bug and travels on as itself.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.ConnectionRejectionError,
    asyncpg.exceptions.ClientConfigurationError,  # the URL's options (sslmode...) at fault
)


@contextlib.contextmanager
def unavailable_as_state_errors(conn: Conn | None = None) -> Iterator[None]:
    """Turn the database's absence into :class:`StateUnavailable`; so too the interface
    errors that follow it (a closed ``conn``; a rollback refused while the connection
    still takes in the error of a server shutting down)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StateUnavailable(f"the state database cannot be used: {_describe(exc)}") from exc
    except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
        # An internal client error is the connection's protocol taken by surprise (a
        # session ended by the server while idle): the connection is done for.
        cause = _unavailable_cause(exc)
        internal = isinstance(exc, asyncpg.exceptions.InternalClientError)
        if cause is not None or internal or (conn is not None and conn.is_closed()):
            lost = _describe(cause or exc)
            raise StateUnavailable(f"the state database connection was lost: {lost}") from exc
        raise


def _unavailable_cause(exc: BaseException) -> BaseException | None:
    """The failure to reach the database that ``exc`` happened while handling, if any."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, _UNAVAILABLE):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def connect_arguments(url: str) -> dict[str, Any]:
    """What asyncpg would read from files at every new connection (the password file,
    TLS certificates and keys), read once: keyword arguments for ``asyncpg.connect``
    with which it reads no file. Blocking: called off the event loop.

    asyncpg's own parser does the work (libpq's rules: the URL, PG* variables, the
    password and service files, ``sslmode``); it is not public, so with an asyncpg
    whose parser differs, nothing is resolved and asyncpg reads them itself."""
    try:
        parse = connect_utils._parse_connect_arguments  # type: ignore[attr-defined]
        known = inspect.signature(parse).parameters
        given: dict[str, Any] = dict.fromkeys(known)
        given.update(dsn=url, statement_cache_size=100, max_cached_statement_lifetime=300,
                     max_cacheable_statement_size=15 * 1024)  # fmt: skip
        _addrs, params, _config = parse(**given)
        ssl, sslmode = params.ssl, params.sslmode
        prefer = sslmode in (connect_utils.SSLMode.allow, connect_utils.SSLMode.prefer)
    except (AttributeError, TypeError, ValueError):
        return {}
    return {"password": params.password or "", "ssl": ssl or False, "prefer_tls": prefer}


def drop(conn: Conn) -> None:
    """End the session of ``conn`` (nothing to do when it has ended already)."""
    with contextlib.suppress(Exception):
        conn.terminate()


async def _no_reset(_conn: Conn) -> None:
    """A connection goes back to the pool as it is: nothing here leaves session state
    behind (advisory locks are released by whoever took them), so asyncpg's reset query,
    one more round trip per use, is not needed."""


class PgDatabase:
    """The database at ``url``, with a pool of at most ``pool_size`` connections in this
    process. Its schema is created or brought up to date by :meth:`open` (or the first
    use), under a lock, so hosts starting together do it once.

    The stores of a process share one: each :meth:`attach`es itself and closes it when
    it closes; the pool closes with the last of them.
    """

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._users = 0
        self._arguments: dict[str, Any] | None = None
        self._holders = asyncio.Semaphore(max(1, pool_size - 1))
        """Blocks that hold a connection while they make other calls (:meth:`held`)
        leave one connection of the pool to those calls: never all of it."""
        self.lock_sessions: dict[asyncio.Task[Any], Conn] = {}
        """The connection on which a task holds its named locks (mutex.py), whichever
        space they are named in: a task's second lock never waits for a connection."""

    def attach(self) -> PgDatabase:
        """Count one more user (closed by :meth:`close`); the database itself."""
        self._users += 1
        return self

    async def open(self) -> None:
        """Connect and migrate: :class:`StateUnavailable` when the database cannot be
        reached, :class:`SchemaTooNew` when a newer davserver made its schema."""
        await self._ready()

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                with unavailable_as_state_errors():
                    conn = await self.connect()
                    try:
                        await migrate(conn)
                    finally:
                        await conn.close()
                    # No floor of idle connections: asyncpg would keep connecting in the
                    # background (and log each failure) while the database is down.
                    self._pool = await asyncpg.create_pool(
                        min_size=0,
                        max_size=self._pool_size,
                        connect=self.connect,
                        reset=_no_reset,
                    )
            return self._pool

    async def connect(self, *_args: Any, **_kwargs: Any) -> asyncpg.Connection:
        """A connection of its own, outside the pool (a listening one); the pool's are
        made by it too (hence the arguments, which the pool passes and it ignores)."""
        if self._arguments is None:
            self._arguments = await offload(connect_arguments, self.url)
        arguments = dict(self._arguments)
        prefer_tls = arguments.pop("prefer_tls", False)
        with unavailable_as_state_errors():
            try:
                return await asyncpg.connect(
                    self.url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                    **arguments,
                )  # fmt: skip
            except ConnectionError:
                if not prefer_tls:
                    raise
                # sslmode=prefer (the default over TCP): a server without TLS is used
                # without it, as libpq does.
                arguments["ssl"] = False
                return await asyncpg.connect(
                    self.url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                    **arguments,
                )  # fmt: skip

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection of the pool for the block. Failures to reach the database, in
        the block too, become :class:`StateUnavailable`; the block must hold database
        calls only (an ``OSError`` of another kind would be taken for one)."""
        pool = await self._ready()
        with unavailable_as_state_errors():
            async with pool.acquire() as conn:
                try:
                    with unavailable_as_state_errors(conn):
                        yield conn
                except StateUnavailable:
                    drop(conn)  # not given back for another use
                    raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection in a transaction for the block: committed at its end, rolled
        back when it raises."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Conn]:
        """A connection of the pool for a block that does more than database calls (a
        named lock held across a write, whose write uses the pool too): only taking it
        maps failures. At most ``pool_size - 1`` are held at once, so the calls of their
        blocks always find a connection."""
        pool = await self._ready()
        async with self._holders:
            with unavailable_as_state_errors():
                conn = await pool.acquire()
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    await pool.release(conn)

    async def close(self) -> None:
        """One user is done with the database: the last one closes the pool."""
        self._users -= 1
        if self._users > 0:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT)
