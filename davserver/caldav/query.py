"""calendar-query (RFC 4791 §7.8), answered from the calendar index where it can be.

The common filter, a component type with a time range (``VCALENDAR > VEVENT >
time-range``), is answered from the index's spans alone. Other filters narrow the items
by component type and time range first, and only the items left are parsed and tested
(with the index's spans standing for their instances when those cover the range).
Floating times and dates are taken in the request's ``timezone``, else the calendar's
``calendar-timezone``, else UTC (timezones.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

import icalendar
from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.ical import filters
from davserver.ical.spans import MAIN, Span
from davserver.ical.timezone import timezone_problem
from davserver.ical.zones import parse
from davserver.runtime.threads import offload

from .filters import parse_filter
from .items import ItemRenderer
from .names import c
from .services import calendars
from .store.items import CalendarItems
from .store.layout import CalendarStore, place
from .timezones import request_zone

BATCH = 64
"""Items tested, or rendered, per batch."""


@dataclass(slots=True)
class Selection:
    """What the index says of a filter: items that pass, and items to test."""

    passed: set[str] = field(default_factory=set)
    test: dict[str, Sequence[Span] | None] = field(default_factory=dict)
    """Items to parse and test, each with the index's spans when they cover the range."""


def _has_alarm_range(flt: filters.CompFilter) -> bool:
    return any(
        (sub.name == "VALARM" and sub.time_range is not None) or _has_alarm_range(sub)
        for sub in flt.comps
    )


def select(items: CalendarItems, flt: filters.CompFilter, zone: tzinfo | None = None) -> Selection:
    """Which items pass the filter, and which must be tested, by the index alone
    (floating times in ``zone``, None: UTC)."""
    wanted = flt.component_names()
    out = Selection()
    subs = [s for s in flt.comps if not s.is_not_defined]
    if (
        flt.is_not_defined
        or flt.props
        or len(flt.comps) != 1
        or not subs
        or subs[0].name not in MAIN
    ):
        out.test = {n: None for n, it in items.items() if not wanted or it.component in wanted}
        return out
    sub = subs[0]
    rng = sub.time_range
    if rng is None:
        kind = {n for n, it in items.items() if it.component == sub.name}
        if sub.only_time:
            out.passed = kind
        else:
            out.test = dict.fromkeys(kind)
        return out
    # The range first: of thousands of items, it leaves a few to look at the type of.
    certain, unsure = items.overlapping(rng.lo, rng.hi, zone)
    certain = {n for n in certain if items[n].component == sub.name}
    unsure = {n for n in unsure if items[n].component == sub.name}
    if sub.only_time:
        out.passed = certain
    else:
        hints = not _has_alarm_range(sub)
        out.test = {n: items[n].spans if hints else None for n in certain}
    out.test.update(dict.fromkeys(unsure))
    return out


def _passing(
    bodies: list[bytes | None],
    hints: list[Sequence[Span] | None],
    flt: filters.CompFilter,
    zone: tzinfo | None,
) -> list[icalendar.Calendar | None]:
    """Each object parsed, when it passes the filter; None for those that do not (CPU
    work: off the event loop)."""
    out: list[icalendar.Calendar | None] = []
    for data, spans in zip(bodies, hints, strict=True):
        if data is None:
            out.append(None)
            continue
        try:
            calendar = parse(data)
            out.append(calendar if filters.matches(calendar, flt, spans, zone) else None)
        except (ValueError, IndexError, KeyError, TypeError):
            out.append(None)
    return out


async def _tested(
    store: CalendarStore, calendar: str, items: CalendarItems, selection: Selection,
    flt: filters.CompFilter, batch: list[str], zone: tzinfo | None,
) -> dict[str, icalendar.Calendar]:  # fmt: skip
    """The items of ``batch`` (of ``selection.test``) that pass, parsed: read, parsed and
    tested once, and their parse kept for the answer."""
    found = await asyncio.gather(*(store.item_body(calendar, n) for n in batch))
    bodies = [f[1] if f is not None else None for f in found]
    hints = []
    for name, f in zip(batch, found, strict=True):
        item = items.get(name)
        same = f is not None and item is not None and f[0].etag == item.etag
        hints.append(selection.test[name] if same else None)
    parsed = await offload(_passing, bodies, hints, flt, zone)
    return {n: cal for n, cal in zip(batch, parsed, strict=True) if cal is not None}


async def check_timezone(root: etree._Element) -> None:
    """A query's ``C:timezone`` must be one VTIMEZONE: 403 ``valid-calendar-data``."""
    zone = root.find(c("timezone"))
    if zone is None:
        return
    problem = await offload(timezone_problem, zone.text or "")
    if problem is not None:
        raise DAVError(403, f"timezone: {problem}", condition=c("valid-calendar-data"))


async def query(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The items of a calendar (or the one item) that pass the filter: first those the
    index alone lets through, then, batch by batch, those read, parsed and tested (each
    parsed once, for the test and the answer)."""
    path = ctx.path
    flt = parse_filter(root.find(c("filter")))
    await check_timezone(root)
    renderer = ItemRenderer(ctx, root)
    store = calendars(ctx)
    where = place(path)
    calendar = where.calendar or ""
    base = path if where.kind == "calendar" else path.rpartition("/")[0]
    items = CalendarItems()
    selection = Selection()
    zone = None
    if where.calendar and where.kind in ("calendar", "item"):
        items = await store.refresh(where.calendar)
        renderer.known(where.calendar, items)
        zone = await request_zone(root, store, base)
        renderer.in_zone(zone)
        if where.kind == "calendar":
            selection = select(items, flt, zone)
        elif where.name in items and where.name:
            selection = Selection(test={where.name: None})

    async def responses() -> AsyncIterator[str]:
        passed = sorted(selection.passed)
        for i in range(0, len(passed), BATCH):
            yield "".join(await renderer.render_members(base, calendar, passed[i : i + BATCH]))
        tested = sorted(selection.test)
        for i in range(0, len(tested), BATCH):
            batch = tested[i : i + BATCH]
            parsed = await _tested(store, calendar, items, selection, flt, batch, zone)
            names = [n for n in batch if n in parsed]
            if names:
                yield "".join(await renderer.render_members(base, calendar, names, parsed))

    return await multistatus.stream(ctx.request, responses())
