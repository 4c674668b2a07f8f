"""free-busy-query (RFC 4791 §7.10): one VFREEBUSY with the busy periods of a calendar's
events in a range (computed by davserver.ical.freebusy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.ical.freebusy import all_busy, vfreebusy
from davserver.ical.spans import Span
from davserver.ical.timerange import TimeRange
from davserver.runtime.threads import offload

from .names import c
from .services import calendars
from .store.items import Item
from .store.layout import place
from .timerange import parse_range
from .timezones import calendar_zone

BATCH = 64


def _hint(
    item: Item | None, found: tuple[Resource, bytes] | None, covered: bool
) -> Sequence[Span] | None:
    """The index's spans of an item, when they are those of the bytes read and cover the range."""
    if item is None or found is None or not covered or found[0].etag != item.etag:
        return None
    return item.spans


def parse_free_busy(root: etree._Element) -> TimeRange:
    """The range a ``C:free-busy-query`` body asks about; 400 without a valid one."""
    element = root.find(c("time-range"))
    if element is None:
        raise DAVError(400, "free-busy-query needs a time-range")
    return parse_range(element.get("start"), element.get("end"))


async def free_busy_query(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The busy time of a calendar's events in the range asked for (floating times in
    the calendar's ``calendar-timezone``, else UTC)."""
    where = place(ctx.path)
    if where.kind != "calendar" or not where.calendar:
        raise DAVError(403, "free-busy-query works on calendars", condition="supported-report")
    rng = parse_free_busy(root)
    store = calendars(ctx)
    items = await store.refresh(where.calendar)
    zone = await calendar_zone(store, ctx.path, rng.lo, rng.hi)
    certain, unsure = items.overlapping(rng.lo, rng.hi, zone)
    names = sorted(n for n in certain | unsure if items[n].component == "VEVENT")
    busy: list[tuple[str, float, float]] = []
    for i in range(0, len(names), BATCH):
        batch = names[i : i + BATCH]
        found = await asyncio.gather(*(store.item_body(where.calendar, n) for n in batch))
        bodies = [f[1] if f is not None else None for f in found]
        hints = [_hint(items.get(n), f, n in certain) for n, f in zip(batch, found, strict=True)]
        busy += await offload(all_busy, bodies, hints, rng, zone)
    text = vfreebusy(busy, rng, time.time())
    return web.Response(body=text.encode(), content_type="text/calendar", charset="utf-8")
