"""The HTML page a browser gets for GET on a collection: folders first, then files, by name."""

from __future__ import annotations

import html

from aiohttp import web

from davserver.backends.base import Resource

from .context import Context
from .paths import href
from .props import http_date
from .visible import STYLE, visible

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.2em 1em;text-align:left}td.n{text-align:right}" + STYLE
)


def _size(res: Resource) -> str:
    if res.is_collection:
        return "-"
    size = float(res.size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(res.size)


def _row(prefix: str, res: Resource) -> str:
    link = html.escape(href(prefix, res.path, res.is_collection))
    name = visible(res.name + ("/" if res.is_collection else ""))
    return (
        f'<tr><td><a href="{link}">{name}</a></td><td class="n">{_size(res)}</td>'
        f"<td>{http_date(res.mtime)}</td></tr>\n"
    )


async def respond(ctx: Context, res: Resource, headers: dict[str, str]) -> web.StreamResponse:
    """Stream the listing of ``res``."""
    request, prefix = ctx.request, ctx.prefix
    title = html.escape(href(prefix, res.path, True))
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "text/html"
    resp.charset = "utf-8"
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    head = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of {title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>Index of {title}</h1>\n"
        "<table><tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    )
    if res.path:
        parent = href(prefix, res.path.rpartition("/")[0], True)
        head += f'<tr><td><a href="{html.escape(parent)}">../</a></td><td></td><td></td></tr>\n'
    await resp.write(head.encode())
    members = [
        r async for batch in ctx.storage.children(res.path) for r in batch if ctx.may_enter(r.path)
    ]
    members.sort(key=lambda r: (not r.is_collection, r.name))
    for i in range(0, len(members), 512):
        await resp.write("".join(_row(prefix, r) for r in members[i : i + 512]).encode())
    await resp.write(b"</table></body></html>\n")
    await resp.write_eof()
    return resp
