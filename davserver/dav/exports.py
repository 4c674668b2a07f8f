"""Collections a feature offers whole as one file (a calendar as ``.ics``): the page of
such a collection links the download (``?export``) and shows it as a subscription URL
for read-only calendar apps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from aiohttp import web

from .context import ServiceKey

if TYPE_CHECKING:
    from .context import Context


class Export(Protocol):
    """What a feature offers whole."""

    def describe(self, path: str) -> tuple[str, str, str] | None:
        """(what it is, file name, media type) of the collection at ``path`` when it
        can be had whole; None otherwise."""

    def chunks(self, ctx: Context, path: str) -> AsyncIterator[bytes]:
        """The bytes of the whole collection."""


SERVICE: ServiceKey[Export] = ServiceKey("export")


async def respond(ctx: Context, exporter: Export, path: str) -> web.StreamResponse | None:
    """``GET <collection>?export``: the file, streamed (None: nothing to export here)."""
    found = exporter.describe(path)
    if found is None:
        return None
    _what, name, media = found
    resp = web.StreamResponse(
        headers={
            "Content-Type": media,
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name, safe='')}",
        }
    )
    await resp.prepare(ctx.request)
    if ctx.request.method != "HEAD":
        async for chunk in exporter.chunks(ctx, path):
            await resp.write(chunk)
    await resp.write_eof()
    return resp
