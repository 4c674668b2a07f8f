"""X-Sendfile: a script or application names a file and the server sends it itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from davserver.backends.base import Body
from davserver.runtime.threads import offload

from . import files

log = logging.getLogger("davserver")

HEADER = "X-Sendfile"
# Headers of the application's answer that describe its own body, not the file's.
_DROPPED = frozenset(
    {"content-length", "content-encoding", "content-range", "etag", "last-modified", "status",
     "x-sendfile", "accept-ranges"}
)  # fmt: skip


class Refused(Exception):
    """The named file lies outside every allowed folder."""


class XSendfile:
    """Sends the files an application names, from the allowed folders only."""

    def __init__(self, allowed: tuple[Path, ...]) -> None:
        self.allowed = allowed
        self._roots: tuple[str, ...] = ()

    async def open(self) -> None:
        """Resolve the allowed folders."""
        self._roots = await offload(lambda: tuple(os.path.realpath(p) for p in self.allowed))

    def _open_sync(self, value: str, base: str, content_type: str | None) -> Body:
        if "\x00" in value or not value:
            raise Refused
        real = os.path.realpath(os.path.join(base, value))
        if not any(files.within(root, real) for root in self._roots):
            raise Refused
        name = real.rpartition(os.sep)[2]
        return files.open_file_sync(real, name, content_type or files.guess_type(name))

    async def respond(
        self,
        request: web.BaseRequest,
        value: str,
        base: str,
        app_headers: list[tuple[str, str]],
        who: str,
    ) -> web.StreamResponse:
        """The answer sending the file ``value`` names (relative to ``base``), with the
        application's other headers; 403 and a log line when it is not allowed."""
        headers: dict[str, str] = {}
        content_type = None
        for name, v in app_headers:
            low = name.lower()
            if low == "content-type":
                content_type = v
            elif low not in _DROPPED:
                headers[name] = v
        try:
            body = await offload(self._open_sync, value, base, content_type)
        except Refused:
            log.warning("%s: X-Sendfile %r refused: not in an allowed folder", who, value)
            return web.Response(status=403, text="403 Forbidden\n")
        except (FileNotFoundError, NotADirectoryError):
            log.warning("%s: X-Sendfile %r: no such file", who, value)
            return web.Response(status=404, text="404 Not Found\n")
        except PermissionError:
            log.warning("%s: X-Sendfile %r: not readable", who, value)
            return web.Response(status=403, text="403 Forbidden\n")
        return await files.respond(request, body, headers)
