"""PUT of a calendar object resource, validated before anything is stored."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from aiohttp import web
from lxml import etree

from davserver.dav.body import read_limited
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.preconditions import expectation
from davserver.dav.props import http_date
from davserver.dav.write import put_target
from davserver.ical.objects import CalendarObject, InvalidObject, check
from davserver.runtime.threads import offload

from .names import COMPONENTS, C, c
from .props import SUPPORTED_COMPONENTS
from .services import calendars, settings
from .store.layout import place


def supported_components(props: Mapping[str, bytes] | None) -> tuple[str, ...]:
    """The components a calendar accepts, from its stored property (all when unset)."""
    stored = (props or {}).get(SUPPORTED_COMPONENTS)
    if stored is None:
        return COMPONENTS
    return _components(stored)


@functools.lru_cache(maxsize=256)
def _components(stored: bytes) -> tuple[str, ...]:
    """The components a stored ``supported-calendar-component-set`` names (asked at each
    PUT; calendars hold few different values: remembered)."""
    root = etree.fromstring(stored)
    return tuple(el.get("name", "").upper() for el in root.iter(c("comp")))


async def validated(data: bytes) -> CalendarObject:
    """The calendar object in ``data``; 403 with the CalDAV precondition that fails."""
    try:
        return await offload(check, data)
    except InvalidObject as exc:
        raise DAVError(403, exc.reason, condition=c(exc.condition)) from exc


async def put(ctx: Context) -> web.StreamResponse | None:
    """Store a calendar object: 201/204 with its ETag, or the precondition that fails."""
    path, request = ctx.path, ctx.request
    where = place(path)
    if where.kind != "item" or not where.calendar:
        raise DAVError(403, "calendar objects belong in a calendar collection")
    store = calendars(ctx)
    calendar_path = path.rpartition("/")[0]
    calendar = await store.stat(calendar_path, dead_props=True)
    if calendar is None or not calendar.is_collection:
        raise DAVError(409, "the calendar collection does not exist")
    await put_target(ctx, path)
    media = request.headers.get("Content-Type", "text/calendar").split(";")[0].strip().lower()
    if media not in ("text/calendar", "application/octet-stream", ""):
        raise DAVError(403, f"{media} is not iCalendar", condition=c("supported-calendar-data"))
    limit = settings(ctx).max_resource_size
    length = request.content_length
    if length is not None and length > limit:
        raise DAVError(403, "too large", condition=c("max-resource-size"))
    try:
        data = await read_limited(request, limit)
    except DAVError as exc:
        raise DAVError(403, "too large", condition=c("max-resource-size")) from exc
    obj = await validated(data)
    if obj.component not in supported_components(calendar.dead_props):
        raise DAVError(
            403,
            f"{obj.component} is not accepted here",
            condition=c("supported-calendar-component"),
        )
    # The UID check and the write go together: two PUTs of one UID under two names must
    # not both pass the check before either is stored.
    async with store.writing(where.calendar):
        items = await store.refresh(where.calendar)
        replaced = items.get(where.name or "")
        if replaced is not None and replaced.uid is not None and replaced.uid != obj.uid:
            # RFC 4791 §5.3.2.1: nor may a PUT give an existing object another UID.
            own = href(ctx.prefix, path, False)
            raise DAVError(
                409, f"{where.name} holds UID {replaced.uid}, not {obj.uid}",
                condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{own}</D:href>",
            )  # fmt: skip
        for name in sorted(items.with_uid(obj.uid) - {where.name})[:1]:
            other = href(ctx.prefix, f"{calendar_path}/{name}", False)
            raise DAVError(
                409, f"UID {obj.uid} is already used by {name}",
                condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{other}</D:href>",
            )  # fmt: skip
        async with store.change(author=ctx.author, message=f"PUT /{path}") as change:
            change.stored(calendar)
            res, created = await change.write(
                path, data, expect=expectation(ctx, path), note=obj.summary
            )
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    return web.Response(status=201 if created else 204, headers=headers)
