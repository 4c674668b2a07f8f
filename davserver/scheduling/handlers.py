"""What scheduling adds to the requests of a calendar tree: the schedule tag in answers
(``Schedule-Tag``) and as a precondition (``If-Schedule-Tag-Match``, RFC 6638 §8.3),
``Schedule-Reply: F`` on an attendee's DELETE (§8.1), and the rules of the inbox and
outbox (nothing is PUT, copied or moved into them; they cannot be deleted; the outbox
takes no properties).

The deliveries themselves do not happen here: they follow the change events
(implicit.py), whatever request made the change. A PUT is CalDAV's (caldav/put.py),
called from here so that its answer can tell what scheduling then did to the copy: the
ETag is left out when the stored copy is no longer the bytes sent (SCHEDULE-STATUS was
set), and the schedule tag is given.
"""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from davserver.caldav import put as caldav_put
from davserver.caldav.names import c
from davserver.caldav.services import calendars
from davserver.caldav.store.layout import CALENDARS, place
from davserver.dav import read as dav_read
from davserver.dav import write as dav_write
from davserver.dav.context import Context
from davserver.dav.copymove import destination
from davserver.dav.errors import DAVError

from .names import OUTBOX, box_of, tag_of
from .services import scheduler

SCHEDULE_TAG = "Schedule-Tag"
IF_SCHEDULE_TAG_MATCH = "If-Schedule-Tag-Match"


def _in_box(path: str) -> str | None:
    return box_of(place(path))


async def _check_tag(ctx: Context, wanted: str) -> None:
    """412 unless the resource's schedule tag is ``wanted``."""
    res = await calendars(ctx).stat(ctx.path, dead_props=True)
    tag = tag_of(res.dead_props) if res is not None else None
    if tag is None or tag != wanted.strip():
        raise DAVError(412, "the schedule tag does not match")


async def put(ctx: Context) -> web.StreamResponse | None:
    """CalDAV's PUT, with the schedule tag checked and answered."""
    where = place(ctx.path)
    if where.space != CALENDARS:
        return None
    if box_of(where) is not None:
        raise DAVError(403, "nothing is PUT into the scheduling inbox or outbox")
    if where.kind != "item":
        return None
    wanted = ctx.request.headers.get(IF_SCHEDULE_TAG_MATCH)
    if wanted is not None:
        await _check_tag(ctx, wanted)
    response = await caldav_put.put(ctx)
    if response is None:
        return None
    found = scheduler(ctx).recent.pop(ctx.path, None)
    if found is None:
        return response
    etag, tag = found
    if response.headers.get("ETag") != etag:
        # What is stored is not what was sent (RFC 4791 §5.3.4): no ETag.
        response.headers.popall("ETag", None)
        response.headers.popall("Last-Modified", None)
    if tag is None:
        res = await calendars(ctx).stat(ctx.path, dead_props=True)
        tag = tag_of(res.dead_props) if res is not None else None
    if tag is not None:
        response.headers[SCHEDULE_TAG] = tag
    return response


async def get(ctx: Context) -> web.StreamResponse | None:
    """GET and HEAD of a scheduling object answer its schedule tag."""
    where = place(ctx.path)
    if where.space != CALENDARS or where.kind != "item" or box_of(where) is not None:
        return None
    response = await dav_read.get(ctx)
    if response.status == 200 and not response.prepared:
        res = await calendars(ctx).stat(ctx.path, dead_props=True)
        tag = tag_of(res.dead_props) if res is not None else None
        if tag is not None:
            response.headers[SCHEDULE_TAG] = tag
    return response


async def delete(ctx: Context) -> web.StreamResponse | None:
    """The inbox and outbox stay; an attendee may delete without a reply
    (``Schedule-Reply: F``); ``If-Schedule-Tag-Match`` is checked."""
    where = place(ctx.path)
    if where.space != CALENDARS:
        return None
    if box_of(where) is not None and where.kind == "calendar":
        raise DAVError(403, "the scheduling inbox and outbox cannot be deleted")
    headers = ctx.request.headers
    quiet = headers.get("Schedule-Reply", "T").strip().upper() == "F"
    wanted = headers.get(IF_SCHEDULE_TAG_MATCH)
    if not quiet and wanted is None:
        return None
    if wanted is not None:
        await _check_tag(ctx, wanted)
    sched = scheduler(ctx)
    if quiet:
        sched.quiet.add(ctx.path)
    try:
        return await dav_write.delete(ctx)
    finally:
        sched.quiet.discard(ctx.path)


async def copy_or_move(ctx: Context) -> web.StreamResponse | None:
    """Nothing is copied or moved into, or out of, the inbox and outbox."""
    where = place(ctx.path)
    if where.space != CALENDARS:
        return None
    if box_of(where) is not None:
        raise DAVError(403, "the scheduling inbox and outbox keep what they hold")
    try:
        target = destination(ctx)
    except DAVError:
        return None  # the handlers that take the request say what is wrong
    if _in_box(target) is not None:
        raise DAVError(403, "nothing is copied or moved into the scheduling inbox or outbox")
    copying = ctx.request.method == "COPY" and where.kind == "item"
    if copying and await scheduler(ctx).records.get(ctx.path) is not None:
        # Two copies would each speak for the meeting (RFC 6638 §3.2.4.1).
        raise DAVError(
            403, "a scheduling object cannot be copied",
            condition=c("unique-scheduling-object-resource"),
        )  # fmt: skip
    return None


async def proppatch(ctx: Context) -> web.StreamResponse | None:
    """The outbox is virtual: it keeps no properties."""
    if _in_box(ctx.path) == OUTBOX:
        raise DAVError(403, "the scheduling outbox keeps no properties")
    return None


async def free_busy_query(ctx: Context, root: etree._Element) -> web.StreamResponse | None:
    """free-busy-query is a calendar's report, not the inbox's or outbox's (RFC 6638
    §2.2; their free-busy goes through the outbox's POST)."""
    if _in_box(ctx.path) is not None:
        raise DAVError(403, "free-busy-query works on calendars", condition="supported-report")
    return None


REPORTS = {c("free-busy-query"): free_busy_query}
