"""OPTIONS, GET and HEAD."""

from __future__ import annotations

from aiohttp import web

from davserver.backends.base import NotFound

from . import archive, conditions, exports, history, listing, send
from .charset import with_charset
from .context import Context
from .props import http_date


def options_headers(ctx: Context) -> dict[str, str]:
    """The DAV classes and methods the tree offers (nothing of any resource)."""
    features = ctx.features
    return {"DAV": features.dav_header, "MS-Author-Via": "DAV", "Allow": features.allow}


async def options(ctx: Context) -> web.StreamResponse:
    """Advertise the DAV classes and methods (200 with an empty body, as Thunderbird needs)."""
    return web.Response(headers=options_headers(ctx))


async def get(ctx: Context) -> web.StreamResponse:
    """Send a file (ranges, conditionals, sendfile) or an HTML listing of a collection;
    ``?history`` and ``?version=`` ask for past versions instead (see history.py)."""
    request = ctx.request
    # The query is parsed only when there is one (parsing an empty one costs a microsecond).
    queried = "?" in request.raw_path
    if queried:
        found_asset = listing.asset(request)
        if found_asset is not None:
            return found_asset
    if queried and history.requested(request):
        found = await history.answer(ctx)
        if isinstance(found, web.StreamResponse):
            return found
        body = found
    else:
        try:
            body = await ctx.storage.read(ctx.path, inline_limit=ctx.settings.inline_limit)
        except NotFound:
            return web.Response(status=404, text="404 Not Found\n")
    res = body.resource
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    status = conditions.evaluate(request.headers, res, safe_method=True)
    if status is not None:
        await send.close(body)
        return web.Response(status=status, headers=headers if status == 304 else None)
    if res.is_collection:
        if "zip" in request.query:
            return await archive.respond(ctx, res)
        exporter = ctx.tree.services.get(exports.SERVICE)
        if "export" in request.query and exporter is not None:
            exported = await exports.respond(ctx, exporter, res.path)
            if exported is not None:
                return exported
        return await listing.respond(ctx, res, headers)
    content_type = res.content_type or "application/octet-stream"
    headers["Content-Type"] = with_charset(content_type, ctx.settings.default_charset)
    return await send.ranged(request, body, headers)
