"""The streams of a WSGI environ: ``wsgi.input`` and ``wsgi.errors``.

Both are used from the application's thread. ``wsgi.input`` fetches the request body from
the event loop piece by piece as the application reads it, so a large upload is never held
whole in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator

from aiohttp import StreamReader


class Input:
    """The request body as a file open for reading (PEP 3333 ``wsgi.input``)."""

    def __init__(
        self, content: StreamReader, loop: asyncio.AbstractEventLoop, has_body: bool
    ) -> None:
        self._content = content
        self._loop = loop
        self._eof = not has_body
        self._buf = bytearray()

    def _fetch(self) -> bool:
        """Append the next piece of the body to the buffer; False at its end."""
        if self._eof:
            return False
        chunk = asyncio.run_coroutine_threadsafe(self._content.readany(), self._loop).result()
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end); everything left without a size."""
        if size is None or size < 0:
            while self._fetch():
                pass
            return self._take(len(self._buf))
        while len(self._buf) < size and self._fetch():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its ``\\n``, or at most ``size`` bytes of it."""
        limit = size if size is not None and size >= 0 else None
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                n = end + 1
                break
            if limit is not None and len(self._buf) >= limit:
                n = limit
                break
            start = len(self._buf)
            if not self._fetch():
                n = len(self._buf)
                break
        return self._take(n if limit is None else min(n, limit))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines (stopping once ``hint`` bytes have been read, if given)."""
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class Errors:
    """``wsgi.errors``: text written by the application goes to the log, line by line."""

    def __init__(self, logger: logging.Logger, who: str) -> None:
        self._logger = logger
        self._who = who
        self._pending = ""

    def write(self, text: str) -> int:
        """Log the complete lines of ``text``; keep the rest for later."""
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._logger.warning("%s: %s", self._who, line)
        return len(text)

    def writelines(self, seq: Iterable[str]) -> None:
        """Write each string of ``seq``."""
        for text in seq:
            self.write(text)

    def flush(self) -> None:
        """Log a pending partial line."""
        if self._pending:
            self._logger.warning("%s: %s", self._who, self._pending)
            self._pending = ""
