"""Per-mount error pages: HTML that replaces the server's own plain-text error answers."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from aiohttp import web

from davserver.runtime.threads import offload

log = logging.getLogger("davserver")

_PAGE_NAME = re.compile(r"([45]\d\d)\.html\Z")


class AppResponse(web.Response):
    """A whole answer that an application wrote itself: never replaced by an error page."""


def _read_pages(source: Path) -> tuple[dict[int, bytes], bytes | None]:
    """``NNN.html`` pages of a folder, or one file used for every status."""
    if source.is_file():
        return {}, source.read_bytes()
    pages = {}
    for entry in os.scandir(source):
        match = _PAGE_NAME.match(entry.name)
        if match and entry.is_file():
            with open(entry.path, "rb") as f:
                pages[int(match.group(1))] = f.read()
    return pages, None


class ErrorPages:
    """The pages of a folder (``404.html``, ``500.html``...) or one file for every error.

    They are read once, when the mount opens. Only the server's own error answers are
    replaced (plain text, status 400 and above); XML error bodies of WebDAV and whatever a
    CGI script or WSGI application answered itself go out as they are.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self._pages: dict[int, bytes] = {}
        self._fallback: bytes | None = None

    async def load(self) -> None:
        """Read the pages (in the thread pool)."""
        self._pages, self._fallback = await offload(_read_pages, self.source)
        log.debug("error pages from %s: %s", self.source, sorted(self._pages) or "one file")

    def apply(self, response: web.StreamResponse) -> web.StreamResponse:
        """``response``, or an HTML page with its status in its place."""
        if (
            type(response) is not web.Response
            or response.status < 400
            or response.prepared
            or response.content_type != "text/plain"
        ):
            return response
        page = self._pages.get(response.status, self._fallback)
        if page is None:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers["Content-Type"] = "text/html; charset=utf-8"
        return web.Response(status=response.status, body=page, headers=headers)
