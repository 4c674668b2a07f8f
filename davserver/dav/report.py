"""REPORT (RFC 3253 §3.6): the body's root element names the report; the features of the
tree answer it (CalDAV's calendar-query, sync-collection...)."""

from __future__ import annotations

from aiohttp import web

from .body import read_xml
from .context import Context
from .errors import DAVError


async def report(ctx: Context) -> web.StreamResponse:
    """Hand the report to the feature that answers it; 404 when the request URL names
    nothing (whatever the report: none may answer for a resource that does not exist),
    403 ``supported-report`` when no feature answers it for this resource."""
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    if root is None:
        raise DAVError(400, "REPORT needs a body")
    if await ctx.storage.stat(ctx.path) is None:
        raise DAVError(404, "REPORT on a resource that does not exist")
    response = await ctx.features.report(ctx, root)
    if response is None:
        raise DAVError(403, f"unsupported report {root.tag!s}", condition="supported-report")
    return response
