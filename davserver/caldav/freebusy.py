"""free-busy-query (RFC 4791 §7.10): one VFREEBUSY with the busy periods of a calendar's
events in a range, merged per kind of busy time. Transparent and cancelled events leave
the time free; tentative ones make it BUSY-TENTATIVE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import icalendar
from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.backends.calendar import place
from davserver.backends.calendar_items import Item
from davserver.backends.calendar_spans import Span, main_components, overlaps, spans_between
from davserver.dav.errors import DAVError

from .names import c
from .timerange import TimeRange, parse_range

if TYPE_CHECKING:
    from .mount import CalDavMount

PRODID = "-//davserver//free-busy//EN"
BATCH = 64
Period = tuple[float, float]


def _kind(component: icalendar.cal.Component) -> str | None:
    """The FBTYPE an event's time counts as (None: free)."""
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    status = str(component.get("STATUS", "")).upper()
    if status == "CANCELLED":
        return None
    return "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY"


def busy_periods(
    data: bytes, spans: Sequence[Span] | None, rng: TimeRange
) -> list[tuple[str, float, float]]:
    """(FBTYPE, start, end) of the busy time of one object within the range."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError, TypeError):
        return []
    main = main_components(calendar)
    if spans is None:
        spans = spans_between(calendar, "VEVENT", rng.lo, rng.hi)
    out = []
    for span in spans:
        component = main[span.source]
        if component.name != "VEVENT" or span.end <= span.start:
            continue
        if not overlaps(span, rng.lo, rng.hi):
            continue
        kind = _kind(component)
        if kind is not None:
            out.append((kind, max(span.start, rng.lo), min(span.end, rng.hi)))
    return out


def merged(periods: list[Period]) -> list[Period]:
    """Overlapping or touching periods joined, in order."""
    out: list[Period] = []
    for start, end in sorted(periods):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _stamp(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y%m%dT%H%M%SZ")


def vfreebusy(busy: list[tuple[str, float, float]], rng: TimeRange, now: float) -> str:
    """The iCalendar text of the answer."""
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "BEGIN:VFREEBUSY",
        f"DTSTAMP:{_stamp(now)}", f"DTSTART:{_stamp(rng.lo)}", f"DTEND:{_stamp(rng.hi)}",
    ]  # fmt: skip
    for kind in ("BUSY", "BUSY-TENTATIVE"):
        periods = merged([(s, e) for k, s, e in busy if k == kind])
        if periods:
            values = ",".join(f"{_stamp(s)}/{_stamp(e)}" for s, e in periods)
            lines.append(f"FREEBUSY;FBTYPE={kind}:{values}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def _all_busy(
    bodies: list[bytes | None], hints: list[Sequence[Span] | None], rng: TimeRange
) -> list[tuple[str, float, float]]:
    out = []
    for data, spans in zip(bodies, hints, strict=True):
        if data is not None:
            out.extend(busy_periods(data, spans, rng))
    return out


def _hint(
    item: Item | None, found: tuple[Resource, bytes] | None, covered: bool
) -> Sequence[Span] | None:
    """The index's spans of an item, when they are those of the bytes read and cover the range."""
    if item is None or found is None or not covered or found[0].etag != item.etag:
        return None
    return item.summary.spans


def parse_free_busy(root: etree._Element) -> TimeRange:
    """The range a ``C:free-busy-query`` body asks about; 400 without a valid one."""
    element = root.find(c("time-range"))
    if element is None:
        raise DAVError(400, "free-busy-query needs a time-range")
    return parse_range(element.get("start"), element.get("end"))


async def free_busy_query(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """The busy time of a calendar's events in the range asked for."""
    where = place(path)
    if where.kind != "calendar" or not where.calendar:
        raise DAVError(403, "free-busy-query works on calendars", condition="supported-report")
    rng = parse_free_busy(root)
    store = mount.storage
    items = await store.refresh(where.calendar)
    certain, unsure = items.overlapping(rng.lo, rng.hi)
    names = sorted(n for n in certain | unsure if items[n].component == "VEVENT")
    loop = asyncio.get_running_loop()
    busy: list[tuple[str, float, float]] = []
    for i in range(0, len(names), BATCH):
        batch = names[i : i + BATCH]
        found = await asyncio.gather(*(store.item_body(where.calendar, n) for n in batch))
        bodies = [f[1] if f is not None else None for f in found]
        hints = [_hint(items.get(n), f, n in certain) for n, f in zip(batch, found, strict=True)]
        busy += await loop.run_in_executor(None, _all_busy, bodies, hints, rng)
    text = vfreebusy(busy, rng, time.time())
    return web.Response(body=text.encode(), content_type="text/calendar", charset="utf-8")
