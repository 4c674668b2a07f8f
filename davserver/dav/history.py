"""Versions over plain HTTP, for backends that keep them (see backends.base.History).

- ``GET /path?history`` lists the versions of a file or collection, newest first, as an
  HTML page; ``GET /path?history=json`` gives the same as JSON.
- ``GET /path?version=<commit id>`` sends the file as it was in that version, with
  ranges and conditionals like any GET.

A backend without history answers 404 to both. In an owner-only tree the history of a
shared place (the mount's root) would show every user's commits: it shows the history of
the requester's own tree instead, so no other user's name, activity or file names appear.
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from davserver.backends.base import Body, History, NotFound, Version

from .context import Context
from .errors import DAVError
from .paths import href
from .props import http_date, iso_date
from .visible import STYLE, visible

_VERSION_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.2em 1em;text-align:left;vertical-align:top}td.n{text-align:right}" + STYLE
)


def requested(request: web.Request) -> bool:
    """Whether a GET asks for history rather than the current resource."""
    query = request.query
    return "history" in query or "version" in query


async def answer(ctx: Context) -> web.StreamResponse | Body:
    """The history listing, or the body of the version asked for (sent like any GET)."""
    storage, request, path, prefix = ctx.storage, ctx.request, ctx.path, ctx.prefix
    if not isinstance(storage, History):
        return web.Response(status=404, text="404 Not Found: this store keeps no history\n")
    version = request.query.get("version")
    if version is not None:
        if not _VERSION_ID.match(version):
            raise DAVError(400, "version must be a full commit id")
        try:
            return await storage.read_version(path, version, inline_limit=ctx.settings.inline_limit)
        except NotFound:
            return web.Response(status=404, text="404 Not Found\n")
    if ctx.settings.owner_only and ctx.owner(path) is None:
        if ctx.principal is None:
            return web.Response(status=404, text="404 Not Found\n")
        path = ctx.principal  # a shared place: the requester's own part of it
    found = await storage.versions(path)
    if not found:
        return web.Response(status=404, text="404 Not Found\n")
    if request.query.get("history") == "json":
        return web.json_response(_as_json(prefix, path, found))
    return web.Response(text=_as_html(prefix, path, found), content_type="text/html")


def _version_href(prefix: str, path: str, v: Version) -> str | None:
    if v.is_collection:
        return None
    return f"{href(prefix, path, False)}?version={v.id}"


def _as_json(prefix: str, path: str, found: list[Version]) -> dict[str, object]:
    return {
        "href": href(prefix, path, found[0].is_collection),
        "versions": [
            {
                "version": v.id,
                "date": iso_date(v.time),
                "author": v.author,
                "message": v.message,
                "etag": v.etag,
                "size": v.size,
                "collection": v.is_collection,
                "href": _version_href(prefix, path, v),
            }
            for v in found
        ],
    }


def _as_html(prefix: str, path: str, found: list[Version]) -> str:
    title = html.escape(href(prefix, path, found[0].is_collection))
    rows = []
    for v in found:
        link = _version_href(prefix, path, v)
        short = html.escape(v.id[:12])
        cell = f'<a href="{html.escape(link)}">{short}</a>' if link else short
        size = "-" if v.is_collection else str(v.size)
        rows.append(
            f"<tr><td><code>{cell}</code></td><td>{http_date(v.time)}</td>"
            f"<td>{visible(v.author)}</td><td>{visible(v.message)}</td>"
            f'<td class="n">{size}</td></tr>\n'
        )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>History of {title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>History of {title}</h1>\n"
        "<table><tr><th>Version</th><th>Date</th><th>Author</th><th>Message</th>"
        f"<th>Size</th></tr>\n{''.join(rows)}</table></body></html>\n"
    )
