"""X-Sendfile: a script or application names a file and the server sends it itself.

- ``X-Sendfile: PATH``: the whole file, with ETag, Last-Modified, the client's ranges and
  conditional requests as for a static file.
- ``X-Sendfile: PATH`` with ``X-Sendfile-Range: START-END``: those bytes of it (media
  seeking), as the application's answer says (its status, its Content-Range).
- ``X-Sendfile2: PATH [START-END], PATH [START-END]...``: several files (or ranges of them),
  one after the other, paths percent-encoded, as lighttpd's.

Every path must lie, once resolved, inside one of the mount's allowed folders.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from davserver.backends.base import Body
from davserver.runtime.threads import offload

from . import files, xsendpieces
from .xsendpieces import BadPieces, Opened, Piece

log = logging.getLogger("davserver")

HEADER = "X-Sendfile"
RANGE_HEADER = "X-Sendfile-Range"
LIST_HEADER = "X-Sendfile2"
_NAMES = frozenset({"x-sendfile", "x-sendfile2"})
# Headers of the application's answer that describe its own body, not the file's.
_DROPPED = frozenset(
    {"content-length", "content-encoding", "content-range", "etag", "last-modified", "status",
     "x-sendfile", "x-sendfile-range", "x-sendfile2", "accept-ranges", "transfer-encoding"}
)  # fmt: skip
# For pieces, the application describes the answer: its Content-Range stands.
_DROPPED_PIECES = _DROPPED - {"content-range"}


class Refused(Exception):
    """The named file lies outside every allowed folder."""


def requested(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether an application's headers ask the server to send files."""
    return any(name.lower() in _NAMES for name, _ in headers)


class XSendfile:
    """Sends the files an application names, from the allowed folders only."""

    def __init__(self, allowed: tuple[Path, ...]) -> None:
        self.allowed = allowed
        self._roots: tuple[str, ...] = ()

    async def open(self) -> None:
        """Resolve the allowed folders."""
        self._roots = await offload(lambda: tuple(os.path.realpath(p) for p in self.allowed))

    def _allowed_sync(self, value: str, base: str) -> str:
        """The resolved path ``value`` names, if it lies in an allowed folder."""
        if "\x00" in value or not value:
            raise Refused
        real = os.path.realpath(os.path.join(base, value))
        if not any(files.within(root, real) for root in self._roots):
            raise Refused
        return real

    def _open_sync(self, value: str, base: str, content_type: str | None) -> Body:
        real = self._allowed_sync(value, base)
        name = real.rpartition(os.sep)[2]
        return files.open_file_sync(real, name, content_type or files.guess_type(name))

    def _open_pieces_sync(self, pieces: list[Piece], base: str) -> list[Opened]:
        opened: list[Opened] = []
        try:
            for piece in pieces:
                opened.append(xsendpieces.open_sync(self._allowed_sync(piece.name, base), piece))
        except BaseException:
            for done in opened:
                done.file.close()
            raise
        return opened

    async def respond(
        self,
        request: web.BaseRequest,
        base: str,
        app_headers: list[tuple[str, str]],
        who: str,
        status: int = 200,
        reason: str | None = None,
    ) -> web.StreamResponse:
        """The answer sending what the application's headers name (paths relative to
        ``base``), with its other headers; 403 and a log line when a file is not allowed,
        404 when one is missing, 502 when the headers are malformed."""
        fields = {name.lower(): value for name, value in app_headers}
        listed = fields.get("x-sendfile2")
        ranged = fields.get("x-sendfile-range")
        value = listed if listed is not None else fields.get("x-sendfile", "")
        try:
            if listed is None and ranged is None:
                return await self._whole(request, value, base, app_headers)
            if listed is not None:
                pieces = xsendpieces.parse_list(listed)
            else:
                pieces = [Piece(value, *xsendpieces.parse_range(ranged or ""))]
            opened = await offload(self._open_pieces_sync, pieces, base)
        except Refused:
            log.warning("%s: X-Sendfile %r refused: not in an allowed folder", who, value)
            return web.Response(status=403, text="403 Forbidden\n")
        except (FileNotFoundError, NotADirectoryError):
            log.warning("%s: X-Sendfile %r: no such file", who, value)
            return web.Response(status=404, text="404 Not Found\n")
        except PermissionError:
            log.warning("%s: X-Sendfile %r: not readable", who, value)
            return web.Response(status=403, text="403 Forbidden\n")
        except BadPieces as exc:
            log.warning("%s: X-Sendfile %r: %s", who, value, exc)
            return web.Response(status=502, text="502 Bad Gateway\n")
        headers = {k: v for k, v in app_headers if k.lower() not in _DROPPED_PIECES}
        headers.setdefault("Content-Type", "application/octet-stream")
        return xsendpieces.PiecesResponse(opened, status=status, reason=reason, headers=headers)

    async def _whole(
        self, request: web.BaseRequest, value: str, base: str, app_headers: list[tuple[str, str]]
    ) -> web.StreamResponse:
        headers: dict[str, str] = {}
        content_type = None
        for name, v in app_headers:
            low = name.lower()
            if low == "content-type":
                content_type = v
            elif low not in _DROPPED:
                headers[name] = v
        body = await offload(self._open_sync, value, base, content_type)
        return await files.respond(request, body, headers)
