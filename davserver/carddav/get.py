"""GET and HEAD of a vCard in the version the ``Accept`` header prefers (RFC 6352 §5.1.1:
``Accept: text/vcard; version=3.0``). A card asked for in the version it is stored in, or
without a version, is WebDAV's plain GET (ranges, conditionals): only a conversion is
answered here, with the stored card's ETag (the REPORTs give converted data under the
same ETag) and ``Vary: Accept``."""

from __future__ import annotations

from aiohttp import web

from davserver import vcard
from davserver.caldav.store.layout import place
from davserver.dav import conditions
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.props import http_date
from davserver.runtime.threads import offload

from .address_data import CONVERSION
from .names import VCARD
from .services import store

_RANGES = ("*/*", "text/*", VCARD)


def accepted_versions(accept: str) -> dict[str, float]:
    """The quality ``accept`` gives each vCard version (``""``: any version, from a range
    without a version parameter such as ``*/*`` or plain ``text/vcard``)."""
    out: dict[str, float] = {}
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        if media.lower() not in _RANGES:
            continue
        quality, version = 1.0, ""
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif key == "version" and media.lower() == VCARD:
                version = value
        out[version] = max(out.get(version, 0.0), quality)
    return out


def wanted_version(accept: str | None, stored: str) -> str | None:
    """The version to answer in when it is not the stored one (None: as stored)."""
    if not accept:
        return None
    quality = accepted_versions(accept)
    own = max(quality.get(stored, 0.0), quality.get("", 0.0))
    others = [(q, v) for v, q in quality.items() if v in vcard.VERSIONS and v != stored]
    best = max(others, default=None)
    return best[1] if best is not None and best[0] > own else None


async def get(ctx: Context) -> web.StreamResponse | None:
    """A vCard converted to the version asked for; None (WebDAV's GET) for the rest."""
    where = place(ctx.path)
    accept = ctx.request.headers.get("Accept")
    if where.kind != "item" or not where.book or not where.name or not accept:
        return None
    books = store(ctx)
    found = await books.item_body(where.book, where.name)
    if found is None:
        return None
    res, data = found
    try:
        card = await offload(vcard.parse, data)
    except vcard.VCardError:
        return None  # not a card: sent as stored
    version = wanted_version(accept, card.version)
    if version is None:
        return None
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime), "Vary": "Accept"}
    status = conditions.evaluate(ctx.request.headers, res, safe_method=True)
    if status is not None:
        return web.Response(status=status, headers=headers if status == 304 else None)
    try:
        converted = await offload(vcard.convert, card, version)
    except vcard.ConversionError as exc:
        raise DAVError(406, str(exc), condition=CONVERSION) from exc
    headers["Content-Type"] = f"{VCARD}; charset=utf-8"
    return web.Response(body=converted.data, headers=headers)  # aiohttp sends no body to HEAD
