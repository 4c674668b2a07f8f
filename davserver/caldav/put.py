"""PUT of a calendar object resource, validated before anything is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.backends.calendar import place
from davserver.dav.body import read_limited
from davserver.dav.errors import DAVError
from davserver.dav.identity import author
from davserver.dav.paths import href
from davserver.dav.props import http_date
from davserver.dav.write import put_target

from .names import COMPONENTS, C, c
from .props import SUPPORTED_COMPONENTS
from .validate import check_async

if TYPE_CHECKING:
    from .mount import CalDavMount


def supported_components(props: dict[str, bytes] | None) -> tuple[str, ...]:
    """The components a calendar accepts, from its stored property (all when unset)."""
    stored = (props or {}).get(SUPPORTED_COMPONENTS)
    if stored is None:
        return COMPONENTS
    root = etree.fromstring(stored)
    return tuple(el.get("name", "").upper() for el in root.iter(c("comp")))


async def put(mount: CalDavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Store a calendar object: 201/204 with its ETag, or the precondition that fails."""
    where = place(path)
    if where.kind != "item" or not where.calendar:
        raise DAVError(403, "calendar objects belong in a calendar collection")
    storage = mount.storage
    calendar_path = path.rpartition("/")[0]
    calendar = await storage.stat(calendar_path, dead_props=True)
    if calendar is None or not calendar.is_collection:
        raise DAVError(409, "the calendar collection does not exist")
    await put_target(mount, request, path)
    media = request.headers.get("Content-Type", "text/calendar").split(";")[0].strip().lower()
    if media not in ("text/calendar", "application/octet-stream", ""):
        raise DAVError(403, f"{media} is not iCalendar", condition=c("supported-calendar-data"))
    limit = mount.caldav.max_resource_size
    length = request.content_length
    if length is not None and length > limit:
        raise DAVError(403, "too large", condition=c("max-resource-size"))
    try:
        data = await read_limited(request, limit)
    except DAVError as exc:
        raise DAVError(403, "too large", condition=c("max-resource-size")) from exc
    obj = await check_async(data)
    if obj.component not in supported_components(calendar.dead_props):
        raise DAVError(
            403,
            f"{obj.component} is not accepted here",
            condition=c("supported-calendar-component"),
        )
    items = await storage.refresh(where.calendar)
    replaced = items.get(where.name or "")
    if replaced is not None and replaced.uid is not None and replaced.uid != obj.uid:
        # RFC 4791 §5.3.2.1: nor may a PUT give an existing object another UID.
        own = href(mount.prefix, path, False)
        raise DAVError(
            409, f"{where.name} holds UID {replaced.uid}, not {obj.uid}",
            condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{own}</D:href>",
        )  # fmt: skip
    for name in sorted(items.with_uid(obj.uid) - {where.name})[:1]:
        other = href(mount.prefix, f"{calendar_path}/{name}", False)
        raise DAVError(
            409, f"UID {obj.uid} is already used by {name}",
            condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{other}</D:href>",
        )  # fmt: skip
    async with storage.change(author=author(request), message=f"PUT /{path}") as change:
        res, created = await change.write(path, data, summary=obj.summary)
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    return web.Response(status=201 if created else 204, headers=headers)
