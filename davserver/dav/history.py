"""Versions over plain HTTP, for backends that keep them (see backends.base.History).

- ``GET /path?history`` lists the versions of a file or collection, newest first, as an
  HTML page; ``GET /path?history=json`` gives the same as JSON.
- ``GET /path?version=<commit id>`` sends the file as it was in that version, with
  ranges and conditionals like any GET.
- ``GET /path?history&from=<id>&to=<id>`` shows the differences between two versions
  of a text file (both at most 1 MiB of UTF-8).
- ``POST /path?restore=<id>`` (the page's "restore" button; a POST needs the
  ``X-Davserver-UI`` header, dav/csrf.py) writes that version's bytes as the file's
  newest version: one write (one commit), subject to locks, conditions and quota.

History follows renames: a version from before a move carries the path it had, and its
link reads it there.

A backend without history answers 404 to both. In an owner-only tree the history of a
shared place (the mount's root) would show every user's commits: it shows the history of
the requester's own tree instead, so no other user's name, activity or file names appear.
"""

from __future__ import annotations

import contextlib
import difflib
import html
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from davserver.backends.base import AlreadyExists, Body, History, NotFound, Version
from davserver.runtime.threads import offload

from . import quota
from .context import Context
from .errors import DAVError
from .locking import require_unlocked
from .paths import href
from .preconditions import expectation
from .props import http_date, iso_date
from .visible import STYLE, plain, visible

DIFF_LIMIT = 1 << 20
"""The largest version shown in a diff."""

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
    diff = ""
    if "from" in request.query and "to" in request.query:
        diff = await _diff(ctx, storage, path, found, request.query["from"], request.query["to"])
    page = _as_html(prefix, path, found, diff, request.query)
    return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)


PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _version_href(prefix: str, path: str, v: Version) -> str | None:
    if v.is_collection:
        return None
    return f"{href(prefix, v.path or path, False)}?version={v.id}"


async def _text_of(storage: History, v: Version, path: str) -> str | None:
    """The text of a file version, or None (too big, not UTF-8)."""
    if v.is_collection or v.size > DIFF_LIMIT:
        return None
    body = await storage.read_version(v.path or path, v.id, inline_limit=DIFF_LIMIT)
    data = body.data
    if data is None and body.file is not None:
        data = await offload(body.file.read)
        await offload(body.file.close)
    try:
        return (data or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _diff(
    ctx: Context, storage: History, path: str, found: list[Version], old: str, new: str
) -> str:
    """The HTML of the differences between two versions listed in ``found``."""
    by_id = {v.id: v for v in found}
    a, b = by_id.get(old), by_id.get(new)
    if a is None or b is None:
        raise DAVError(400, "from and to must be versions of this file")
    texts = [await _text_of(storage, v, path) for v in (a, b)]
    if texts[0] is None or texts[1] is None:
        return '<p class="diff-note">Binary or large versions: no line-by-line view.</p>'
    lines = difflib.unified_diff(
        texts[0].splitlines(), texts[1].splitlines(), a.id[:12], b.id[:12], lineterm="", n=3
    )
    out = []
    for line in lines:
        kind = (
            "hunk" if line.startswith("@@") else "add" if line.startswith("+")
            else "del" if line.startswith("-") else ""
        )  # fmt: skip
        out.append(f'<span class="{kind}">{visible(line)}</span>' if kind else visible(line))
    shown = "\n".join(out) or "(no differences)"
    return f'<h2>Differences</h2><div class="diff">{shown}</div>'


async def restore(ctx: Context) -> web.StreamResponse | None:
    """``POST ?restore=<id>``: the version's bytes become the newest version (None:
    not a restore)."""
    request, path, storage = ctx.request, ctx.path, ctx.storage
    version = request.query.get("restore")
    if version is None:
        return None
    if not isinstance(storage, History):
        return web.Response(status=404, text="404 Not Found: this store keeps no history\n")
    if not _VERSION_ID.match(version):
        raise DAVError(400, "restore names a full commit id")
    listed = {v.id: v for v in await storage.versions(path)}
    chosen = listed.get(version)
    if chosen is None or chosen.is_collection:
        return web.Response(status=404, text="404 Not Found: no such version of this file\n")
    current = await storage.stat(path)
    if current is not None and current.is_collection:
        raise DAVError(405, "a collection cannot be restored")
    require_unlocked(ctx, path, member=current is None)
    body = await storage.read_version(chosen.path or path, version, inline_limit=1 << 20)
    data: bytes | AsyncIterator[bytes] = body.data if body.data is not None else _chunks(body)
    quotas = ctx.tree.services.get(quota.SERVICE)
    charge: AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if quotas is not None and quotas.trees(path):
        before = current.size if current is not None else 0
        charge = quotas.charge(path, body.resource.size - before)
    message = f"RESTORE /{path} to {version[:12]}"
    try:
        async with charge, ctx.storage.change(author=ctx.author, message=message) as change:
            res, _created = await change.write(
                path, data, body.resource.size, expect=expectation(ctx, path)
            )
    except AlreadyExists as exc:
        raise DAVError(405, "a collection cannot be restored") from exc
    return web.Response(status=204, headers={"ETag": res.etag})


async def _chunks(body: Body) -> AsyncIterator[bytes]:
    file = body.file
    assert file is not None
    try:
        while chunk := await offload(file.read, 1 << 20):
            yield chunk
    finally:
        await offload(file.close)


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


def _as_html(
    prefix: str, path: str, found: list[Version], diff: str, query: Mapping[str, str]
) -> str:
    is_collection = found[0].is_collection
    here = href(prefix, path, is_collection)
    title = html.escape(here)
    files = not is_collection
    old, new = query.get("from"), query.get("to")
    rows = []
    for i, v in enumerate(found):
        link = _version_href(prefix, path, v)
        short = html.escape(v.id[:12])
        cell = f'<a href="{html.escape(link)}">{short}</a>' if link else short
        size = "-" if v.is_collection else str(v.size)
        moved = f' <span class="was">(was {visible(v.path)})</span>' if v.path else ""
        extra = ""
        if files:
            pick_old = " checked" if old == v.id or (old is None and i == 1) else ""
            pick_new = " checked" if new == v.id or (new is None and i == 0) else ""
            extra = (
                f'<td><input type="radio" name="from" value="{v.id}"{pick_old} '
                f'aria-label="compare from"> <input type="radio" name="to" value="{v.id}"'
                f'{pick_new} aria-label="compare to"></td>'
                f'<td><a href="{html.escape(link or "")}" download>download</a>'
                + (f' <button type="button" data-restore="{v.id}">restore</button>' if i else "")
                + "</td>"
            )
        rows.append(
            f'<tr data-version="{v.id}"><td><code>{cell}</code></td><td>{http_date(v.time)}</td>'
            f"<td>{visible(v.author)}</td><td>{visible(v.message)}{moved}</td>"
            f'<td class="n">{size}</td>{extra}</tr>\n'
        )
    heads = "<th>Compare</th><th></th>" if files else ""
    table = (
        "<table><tr><th>Version</th><th>Date</th><th>Author</th><th>Message</th>"
        f"<th>Size</th>{heads}</tr>\n{''.join(rows)}</table>"
    )
    if files:
        table = (
            f'<form method="get" action="{title}"><input type="hidden" name="history" value="">'
            f"{table}<p><button>Compare the chosen versions</button></p></form>"
        )
    ui = html.escape(href(prefix, path.rpartition("/")[0], True)) + "?ui="
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>History of {plain(here)}</title>"
        f'<link rel="stylesheet" href="{ui}app.css"><style>{_STYLE}</style></head><body>'
        f"<h1>History of {visible(here)}</h1>\n"
        f'<p><a href="{title}">current version</a></p>{table}{diff}'
        f'<script src="{ui}app.js" defer></script></body></html>\n'
    )
