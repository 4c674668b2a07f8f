"""calendar-query (RFC 4791 §7.8), answered from the calendar index where it can be.

The common filter, a component type with a time range (``VCALENDAR > VEVENT >
time-range``), is answered from the index's spans alone. Other filters narrow the items
by component type and time range first, and only the items left are parsed and tested
(with the index's spans standing for their instances when those cover the range).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import icalendar
from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.ical import filters
from davserver.ical.spans import MAIN, Span
from davserver.runtime.threads import offload

from .filters import parse_filter
from .items import ItemRenderer
from .names import c
from .services import calendars
from .store.items import CalendarItems
from .store.layout import CalendarStore, place

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


def select(items: CalendarItems, flt: filters.CompFilter) -> Selection:
    """Which items pass the filter, and which must be tested, by the index alone."""
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
    kind = {n for n, it in items.items() if it.component == sub.name}
    rng = sub.time_range
    if rng is None:
        if sub.only_time:
            out.passed = kind
        else:
            out.test = dict.fromkeys(kind)
        return out
    certain, unsure = items.overlapping(rng.lo, rng.hi)
    certain &= kind
    if sub.only_time:
        out.passed = certain
    else:
        hints = not _has_alarm_range(sub)
        out.test = {n: items[n].summary.spans if hints else None for n in certain}
    out.test.update(dict.fromkeys(unsure & kind))
    return out


def _passing(
    bodies: list[bytes | None], hints: list[Sequence[Span] | None], flt: filters.CompFilter
) -> list[bool]:
    """Which of these objects pass the filter (in the thread pool)."""
    out = []
    for data, spans in zip(bodies, hints, strict=True):
        if data is None:
            out.append(False)
            continue
        try:
            out.append(filters.matches(icalendar.Calendar.from_ical(data), flt, spans))
        except (ValueError, IndexError, KeyError, TypeError):
            out.append(False)
    return out


async def _tested(
    store: CalendarStore, calendar: str, items: CalendarItems, selection: Selection,
    flt: filters.CompFilter,
) -> set[str]:  # fmt: skip
    """The items of ``selection.test`` that pass, read and parsed batch by batch."""
    names = sorted(selection.test)
    passed: set[str] = set()
    for i in range(0, len(names), BATCH):
        batch = names[i : i + BATCH]
        found = await asyncio.gather(*(store.item_body(calendar, n) for n in batch))
        bodies = [f[1] if f is not None else None for f in found]
        hints = []
        for name, f in zip(batch, found, strict=True):
            item = items.get(name)
            same = f is not None and item is not None and f[0].etag == item.etag
            hints.append(selection.test[name] if same else None)
        ok = await offload(_passing, bodies, hints, flt)
        passed.update(n for n, good in zip(batch, ok, strict=True) if good)
    return passed


async def query(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The items of a calendar (or the one item) that pass the filter."""
    path = ctx.path
    flt = parse_filter(root.find(c("filter")))
    renderer = ItemRenderer(ctx, root)
    store = calendars(ctx)
    where = place(path)
    names: list[str] = []
    base = path
    if where.calendar and where.kind in ("calendar", "item"):
        items = await store.refresh(where.calendar)
        if where.kind == "calendar":
            selection = select(items, flt)
        else:
            known = where.name in items
            selection = Selection(test={where.name: None} if known and where.name else {})
        passed = selection.passed | await _tested(store, where.calendar, items, selection, flt)
        base = path if where.kind == "calendar" else path.rpartition("/")[0]
        names = sorted(passed)

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(names), BATCH):
            batch = names[i : i + BATCH]
            yield "".join(await renderer.render_members(base, where.calendar or "", batch))

    return await multistatus.stream(ctx.request, responses())
