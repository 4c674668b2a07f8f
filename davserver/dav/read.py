"""OPTIONS, GET and HEAD."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from davserver.backends.base import NotFound

from . import conditions, history, listing, send
from .charset import with_charset
from .props import http_date

if TYPE_CHECKING:
    from davserver.mounts.dav import DavMount


async def options(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Advertise the DAV classes and methods (200 with an empty body, as Thunderbird needs)."""
    return web.Response(headers=mount.options_headers)


async def get(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Send a file (ranges, conditionals, sendfile) or an HTML listing of a collection;
    ``?history`` and ``?version=`` ask for past versions instead (see history.py)."""
    if history.requested(request):
        found = await history.answer(mount, request, path)
        if isinstance(found, web.StreamResponse):
            return found
        body = found
    else:
        try:
            body = await mount.storage.read(path, inline_limit=mount.settings.inline_limit)
        except NotFound:
            return web.Response(status=404, text="404 Not Found\n")
    res = body.resource
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    status = conditions.evaluate(request.headers, res, safe_method=True)
    if status is not None:
        await send.close(body)
        return web.Response(status=status, headers=headers if status == 304 else None)
    if res.is_collection:
        return await listing.respond(mount, request, res, headers)
    content_type = res.content_type or "application/octet-stream"
    headers["Content-Type"] = with_charset(content_type, mount.settings.default_charset)
    return await send.ranged(request, body, headers)
