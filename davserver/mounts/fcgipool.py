"""Connections to a FastCGI application: opened on demand, kept open between requests
(up to ``size`` idle ones), one request at a time on each."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Conn:
    """One connection; ``reused`` once it has served a request."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        """Close it (a request that did not end cleanly leaves it unusable)."""
        with contextlib.suppress(Exception):
            self.writer.close()


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
    """Idle connections to one application, newest first."""

    def __init__(self, address: tuple[str, int] | str, size: int) -> None:
        self.address = address
        self.size = size
        self._idle: list[Conn] = []

    async def get(self, timeout: float) -> Conn:
        """An idle connection whose application has not closed it, else a new one
        (``OSError`` when the application cannot be reached within ``timeout``)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        async with asyncio.timeout(timeout):
            if isinstance(self.address, str):
                reader, writer = await asyncio.open_unix_connection(self.address)
            else:
                reader, writer = await asyncio.open_connection(*self.address)
        return Conn(reader, writer)

    def put(self, conn: Conn) -> None:
        """Keep a connection whose request ended cleanly, if there is room."""
        conn.reused = True
        if len(self._idle) < self.size:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
