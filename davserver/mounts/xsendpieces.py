"""X-Sendfile's pieces: a byte range of a file (``X-Sendfile-Range``) or several files, or
ranges of them, one after the other (``X-Sendfile2``, as lighttpd's), sent with
``sendfile`` as the application describes them: its status and headers (a 206 with its
own ``Content-Range``, say), the length worked out by the server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote

from aiohttp import web

from davserver.runtime.threads import offload

from . import files

_RANGE = re.compile(r"^\s*(?:bytes=)?(\d+)-(\d*)\s*$")


class BadPieces(ValueError):
    """The application described its pieces wrongly (a malformed value, a range past the
    end of its file)."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A file named by the application and the bytes of it wanted (``end`` inclusive;
    None: to the end)."""

    name: str
    start: int = 0
    end: int | None = None


def parse_range(value: str) -> tuple[int, int | None]:
    """``START-END`` (or ``bytes=START-END``; END inclusive, may be left out)."""
    match = _RANGE.match(value)
    if match is None:
        raise BadPieces(f"malformed range {value!r}")
    start, end = int(match[1]), int(match[2]) if match[2] else None
    if end is not None and end < start:
        raise BadPieces(f"range {value!r} ends before it starts")
    return start, end


def parse_list(value: str) -> list[Piece]:
    """``X-Sendfile2``: comma-separated ``PATH [START-END]`` entries, each path
    percent-encoded (so that it holds no space or comma)."""
    pieces = []
    for entry in value.split(","):
        words = entry.split()
        if not words or len(words) > 2:
            raise BadPieces(f"malformed entry {entry.strip()!r}")
        start, end = parse_range(words[1]) if len(words) == 2 else (0, None)
        pieces.append(Piece(unquote(words[0]), start, end))
    return pieces


@dataclass(frozen=True, slots=True)
class Opened:
    """A piece's open file, where to start and how many bytes."""

    file: BinaryIO
    offset: int
    count: int


def open_sync(path: str, piece: Piece) -> Opened:
    """Open a piece's (resolved) regular file and check its range against its size."""
    fd, st = files.open_sync(path)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
    file = os.fdopen(fd, "rb")
    end = st.st_size - 1 if piece.end is None else piece.end
    if piece.start > st.st_size or end >= st.st_size:
        file.close()
        raise BadPieces(f"bytes {piece.start}-{end} of {piece.name!r}: it has {st.st_size}")
    return Opened(file, piece.start, max(0, end - piece.start + 1))


class PiecesResponse(web.StreamResponse):
    """Sends opened pieces one after the other, by sendfile."""

    def __init__(
        self, opened: list[Opened], *, status: int, reason: str | None, headers: dict[str, str]
    ) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._opened = opened
        self.content_length = sum(p.count for p in opened)

    async def prepare(self, request: web.BaseRequest) -> None:
        loop = asyncio.get_running_loop()
        try:
            await super().prepare(request)
            if request.method != "HEAD":
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("connection lost")
                for piece in self._opened:
                    if not piece.count:
                        continue
                    try:
                        await loop.sendfile(transport, piece.file, piece.offset, piece.count)
                    except RuntimeError as exc:  # asyncio's word for a closing transport
                        if not transport.is_closing():
                            raise
                        raise ConnectionResetError("connection lost") from exc
            await self.write_eof()
        finally:
            await close(self._opened)


async def close(opened: list[Opened]) -> None:
    """Close the files of pieces that are not (or no more) to be sent."""

    def close_all() -> None:
        for piece in opened:
            with contextlib.suppress(OSError):
                piece.file.close()

    await offload(close_all)
