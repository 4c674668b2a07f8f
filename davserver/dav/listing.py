"""The HTML page a browser gets for GET on a collection: a file manager (docs/browser.md).

Without JavaScript it is a complete read-only view: breadcrumbs, folders first, then
files, with icons by type, sizes in human units and dates; sorting by name, size or date
and filtering by name through the query (``?sort=size&order=desc&filter=report``), a
ZIP of the folder (``?zip``), and on git trees a link to each entry's history. With
JavaScript (``ui/app.js``, served from the package at ``?ui=app.js``, no build step, no
CDN) a user who may write also uploads files and folders (drag and drop, progress,
resumable), creates folders, renames or moves, and deletes, each an ordinary WebDAV
request (CSRF rules: dav/csrf.py).
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from davserver.backends.base import History, Resource

from . import exports
from .context import Context
from .identity import MAY_WRITE
from .paths import href
from .props import http_date, iso_date
from .visible import STYLE, plain, visible

SORTS: dict[str, Callable[[Resource], Any]] = {
    "name": lambda r: r.name.lower(),
    "size": lambda r: r.size,
    "date": lambda r: r.mtime,
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_ICONS = {
    "image": ("png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "tif", "tiff", "heic", "ico"),
    "audio": ("mp3", "ogg", "flac", "wav", "m4a", "opus", "aac"),
    "video": ("mp4", "mkv", "webm", "mov", "avi", "m4v"),
    "archive": ("zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "zst", "deb", "iso"),
    "pdf": ("pdf",),
    "code": ("py", "js", "ts", "c", "h", "cpp", "rs", "go", "java", "sh", "html", "css",
             "json", "xml", "toml", "yaml", "yml", "sql", "rb", "php"),
    "text": ("txt", "md", "rst", "csv", "log", "ics", "vcf", "ini", "cfg", "conf"),
    "document": ("doc", "docx", "odt", "xls", "xlsx", "ods", "ppt", "pptx", "odp", "rtf"),
}  # fmt: skip
_ICON_OF = {ext: icon for icon, exts in _ICONS.items() for ext in exts}


def icon(res: Resource) -> str:
    """The name of the icon of a resource (a symbol of ui/icons.svg)."""
    if res.is_collection:
        return "folder"
    _, dot, ext = res.name.rpartition(".")
    return _ICON_OF.get(ext.lower(), "file") if dot else "file"


def human(size: int) -> str:
    """A size in bytes, KiB, MiB, GiB or TiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def may_write(ctx: Context, path: str) -> bool:
    """Whether the page offers changes of ``path``: the access rules let the user write
    (the router says) and it is not a shared place of an owner-only tree."""
    if not ctx.request.get(MAY_WRITE, True):
        return False
    return not (ctx.settings.owner_only and ctx.owner(path) is None)


def _crumbs(prefix: str, path: str) -> str:
    parts = [f'<a href="{html.escape(href(prefix, "", True))}">{html.escape(prefix or "/")}</a>']
    walked = ""
    for segment in path.split("/") if path else []:
        walked = f"{walked}/{segment}" if walked else segment
        link = html.escape(href(prefix, walked, True))
        parts.append(f'<a href="{link}">{visible(segment)}</a>')
    return ' <span class="sep">/</span> '.join(parts)


def _query(**values: str) -> str:
    return "?" + urlencode({k: v for k, v in values.items() if v})


def _row(prefix: str, res: Resource, history: bool, ui: str) -> str:
    link = html.escape(href(prefix, res.path, res.is_collection))
    name = visible(res.name + ("/" if res.is_collection else ""))
    size = "" if res.is_collection else human(res.size)
    title = "" if res.is_collection else f' title="{res.size} bytes"'
    actions = f'<a class="history" href="{link}?history">history</a>' if history else ""
    return (
        f'<tr data-name="{quote(res.name.encode("utf-8", "surrogateescape"), safe="")}" '
        f'data-size="{res.size}" '
        f'data-mtime="{int(res.mtime)}" data-dir="{int(res.is_collection)}">'
        f'<td class="name"><svg class="icon" aria-hidden="true">'
        f'<use href="{ui}icons.svg#{icon(res)}"/></svg>'
        f'<a class="entry" href="{link}">{name}</a></td>'
        f'<td class="size"{title}>{size}</td>'
        f'<td class="date"><time datetime="{iso_date(res.mtime)}">'
        f"{http_date(res.mtime)}</time></td>"
        f'<td class="actions">{actions}</td></tr>\n'
    )


def _export_block(ctx: Context, path: str, here: str) -> str:
    """The download link and subscription URL of a collection offered whole (a
    calendar), or nothing."""
    exporter = ctx.tree.services.get(exports.SERVICE)
    found = exporter.describe(path) if exporter is not None else None
    if found is None:
        return ""
    what, name, _media = found
    link = html.escape(f"{here}?export")
    url = html.escape(str(ctx.request.url.with_path(here, encoded=True).with_query("export")))
    return (
        f'<p class="export"><a href="{link}" download="{html.escape(name)}">Download the '
        f"{what} ({html.escape(name)})</a> · Subscription URL for read-only apps: "
        f'<input readonly size="60" value="{url}" aria-label="subscription URL"></p>\n'
    )


async def respond(ctx: Context, res: Resource, headers: dict[str, str]) -> web.StreamResponse:
    """Stream the page of the collection ``res``."""
    request, prefix = ctx.request, ctx.prefix
    query = request.query
    sort = query.get("sort", "name") if query.get("sort") in SORTS else "name"
    order = "desc" if query.get("order") == "desc" else "asc"
    wanted = query.get("filter", "").strip()
    here = href(prefix, res.path, True)
    ui = html.escape(here) + "?ui="
    history = isinstance(ctx.storage, History)
    writable = may_write(ctx, res.path)
    resp = web.StreamResponse(headers={**headers, **PAGE_HEADERS})
    resp.content_type = "text/html"
    resp.charset = "utf-8"
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    members = [
        r async for batch in ctx.storage.children(res.path) for r in batch if ctx.may_enter(r.path)
    ]
    if wanted:
        members = [r for r in members if wanted.lower() in r.name.lower()]
    members.sort(key=SORTS[sort], reverse=order == "desc")
    members.sort(key=lambda r: not r.is_collection)  # folders first, each group sorted

    def heading(key: str, label: str) -> str:
        flip = "desc" if key == sort and order == "asc" else "asc"
        mark = (" ▲" if order == "asc" else " ▼") if key == sort else ""
        link = html.escape(_query(sort=key, order=flip, filter=wanted))
        return f'<th data-sort="{key}"><a href="{link}">{label}{mark}</a></th>'

    title = html.escape(here)
    head = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Index of {plain(here)}</title>"
        f'<link rel="stylesheet" href="{ui}app.css"><style>{STYLE}</style></head>'
        f'<body data-writable="{int(writable)}" data-history="{int(history)}" '
        f'data-here="{title}" data-ui="{ui}">\n'
        f'<header><h1>Index of {visible(here)}</h1><nav class="crumbs">{_crumbs(prefix, res.path)}'
        f'</nav>\n<div class="bar"><form class="filter" method="get">'
        f'<input type="search" name="filter" value="{html.escape(wanted)}" '
        f'placeholder="Filter by name" aria-label="Filter by name">'
        f'<input type="hidden" name="sort" value="{sort}">'
        f'<input type="hidden" name="order" value="{order}"><button>Filter</button></form>'
        f'<a class="zip" href="{html.escape(here)}?zip">Download as ZIP</a></div>\n'
        f"{_export_block(ctx, res.path, here)}"
        f'<div id="tools" hidden></div><div id="uploads"></div></header>\n'
        f'<table id="listing"><thead><tr>{heading("name", "Name")}{heading("size", "Size")}'
        f"{heading('date', 'Modified')}<th></th></tr></thead><tbody>\n"
    )
    if res.path:
        parent = html.escape(href(prefix, res.path.rpartition("/")[0], True))
        head += (
            f'<tr class="up"><td class="name"><a href="{parent}">../</a></td>'
            "<td></td><td></td><td></td></tr>\n"
        )
    await resp.write(head.encode())
    for i in range(0, len(members), 512):
        rows = "".join(_row(prefix, r, history, ui) for r in members[i : i + 512])
        await resp.write(rows.encode())
    await resp.write(
        f'</tbody></table>\n<script src="{ui}app.js" defer></script></body></html>\n'.encode()
    )
    await resp.write_eof()
    return resp


_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "icons.svg": "image/svg+xml",
}
_FOLDER = os.path.join(os.path.dirname(__file__), "ui")


def _load() -> dict[str, bytes]:
    found = {}
    for name in _ASSETS:
        with open(os.path.join(_FOLDER, name), "rb") as f:
            found[name] = f.read()
    return found


ASSET_BYTES = _load()  # read once, at import: a few KiB
ASSET_ETAGS = {n: f'"ui-{hashlib.sha256(b).hexdigest()[:16]}"' for n, b in ASSET_BYTES.items()}


def asset(request: web.Request) -> web.Response | None:
    """The file manager's script, style sheet or icons (``?ui=<name>``); None when the
    request asks for none."""
    name = request.query.get("ui")
    if name is None:
        return None
    data = ASSET_BYTES.get(name)
    if data is None:
        return web.Response(status=404, text="404 Not Found\n")
    etag = ASSET_ETAGS[name]
    headers = {"ETag": etag, "Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=_ASSETS[name], headers=headers)
