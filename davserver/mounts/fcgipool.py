"""Connections to a FastCGI application: opened on demand, kept open between requests
(up to ``size`` idle ones), one request at a time on each.

A connection parses the records as the bytes arrive, so the mount can tell whether the
whole answer is already here (a small page: headers, body and the end of the request in
one read), and send it to the client in one write. Reading stops while more than
``HIGH_WATER`` bytes wait to be taken, so a slow client holds the application back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from . import fcgiproto

HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
READ_SIZE = 64 << 10
IDLE_CLOSE = 2.0
"""Seconds an unused connection stays open."""


class Conn(asyncio.BufferedProtocol):
    """One connection: records in, bytes out. Read into a buffer of its own: asyncio's
    plain protocols get each read in a fresh 256 KiB allocation, which with the server's
    fixed mmap threshold (davserver/malloc.py) costs an mmap, an mremap and a munmap."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self._buf = bytearray()
        self._read = memoryview(bytearray(READ_SIZE))
        self._records: collections.deque[tuple[int, bytes]] = collections.deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._closed = False
        self._paused = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read

    def buffer_updated(self, nbytes: int) -> None:
        self._buf += self._read[:nbytes]
        try:
            while len(self._buf) >= 8:
                kind, length, padding = fcgiproto.header(self._buf)
                end = 8 + length + padding
                if len(self._buf) < end:
                    break
                self._records.append((kind, bytes(self._buf[8 : 8 + length])))
                self._queued += length
                del self._buf[:end]
        except fcgiproto.ProtocolError as exc:
            self._lost = exc
            self.close()
        if self._queued > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._lost is None:
            self._lost = exc or ConnectionResetError("the application closed the connection")
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(self._lost)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the mount's side ----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Whether it is open and holds nothing left from a request before."""
        return not self._closed and not self._records and not self._buf

    def ready(self) -> bool:
        """Whether a record has arrived and not been taken."""
        return bool(self._records)

    async def record(self) -> tuple[int, bytes]:
        """The next record (ConnectionError once the application closed the connection)."""
        while not self._records:
            if self._lost is not None:
                raise ConnectionResetError(str(self._lost)) from self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        kind, content = self._records.popleft()
        self._queued -= len(content)
        if self._paused and self._queued < LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return kind, content

    async def write(self, data: bytes) -> None:
        """Send bytes, waiting while the application does not take them."""
        if self._lost is not None or self.transport is None:
            raise ConnectionResetError("the connection to the application is closed")
        self.transport.write(data)
        if self._drained is not None:
            await self._drained

    def close(self) -> None:
        """Close it (a request that did not end cleanly leaves it unusable)."""
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()


def parse_address(socket: str) -> tuple[str, int] | str:
    """``host:port`` as a (host, port) pair; a path (or ``unix:path``, or an abstract
    ``\\0name``) as a string."""
    if socket.startswith("unix:"):
        return socket[5:]
    if socket.startswith(("/", "\0")):
        return socket
    host, _, port = socket.rpartition(":")
    return host.strip("[]"), int(port)


class Pool:
    """The connections to one application: at most ``size`` open at once (requests beyond
    wait for one), idle ones kept for ``IDLE_CLOSE`` seconds, newest first.

    The cap matters: php-fpm serves one connection per child process and keeps the child
    for as long as the connection stays open, so more connections than children would
    leave requests waiting in its queue for a child that never comes free.
    """

    def __init__(self, address: tuple[str, int] | str, size: int) -> None:
        self.address = address
        self.size = size
        self._idle: list[tuple[Conn, asyncio.TimerHandle]] = []
        self._free = asyncio.Semaphore(size)

    async def get(self, timeout: float) -> Conn:
        """A kept connection, else a new one; waits (``timeout`` at most, then
        TimeoutError) while ``size`` are in use. ``OSError``: the application cannot
        be reached. The connection must go back with :meth:`put` or :meth:`drop`."""
        async with asyncio.timeout(timeout):
            await self._free.acquire()
            try:
                while self._idle:
                    conn, expiry = self._idle.pop()
                    expiry.cancel()
                    if conn.usable:
                        return conn
                    conn.close()
                loop = asyncio.get_running_loop()
                if isinstance(self.address, str):
                    _, conn = await loop.create_unix_connection(Conn, self.address)
                else:
                    _, conn = await loop.create_connection(Conn, *self.address)
                return conn
            except BaseException:
                self._free.release()
                raise

    def put(self, conn: Conn) -> None:
        """A connection whose request ended cleanly: kept for the next request."""
        conn.reused = True
        if conn.usable:
            expiry = asyncio.get_running_loop().call_later(IDLE_CLOSE, self._expire, conn)
            self._idle.append((conn, expiry))
        else:
            conn.close()
        self._free.release()

    def drop(self, conn: Conn) -> None:
        """A connection whose request did not end cleanly: closed."""
        conn.close()
        self._free.release()

    def _expire(self, conn: Conn) -> None:
        """Close a connection left idle (its php-fpm child serves others again)."""
        for i, (kept, _) in enumerate(self._idle):
            if kept is conn:
                del self._idle[i]
                conn.close()
                return

    def close(self) -> None:
        """Close the idle connections."""
        for conn, expiry in self._idle:
            expiry.cancel()
            conn.close()
        self._idle.clear()
