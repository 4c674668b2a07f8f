"""The time zone a calendar REPORT takes floating times and dates in (RFC 4791 §9.9,
§9.6.5, §7.10): the request's ``C:timezone``, else the calendar's ``calendar-timezone``,
else UTC (None). A zone given as a VTIMEZONE whose TZID is an IANA name and which agrees
with the database in the years the request is about is the database's zone
(:mod:`davserver.ical.zones`)."""

from __future__ import annotations

import time
from datetime import tzinfo

from lxml import etree

from davserver.dav.errors import DAVError
from davserver.ical.zones import zone_of_text
from davserver.runtime.threads import offload

from .names import c
from .store.layout import CalendarStore
from .timerange import parse_utc

CALENDAR_TIMEZONE = c("calendar-timezone")
YEAR = 365 * 86400.0
_TIMED = (c("time-range"), c("expand"), c("limit-recurrence-set"))


def window(root: etree._Element) -> tuple[float, float]:
    """The span of time a REPORT body is about (its time ranges; without any, the years
    around now), in POSIX seconds: what a zone must be right for."""
    found = []
    for el in root.iter(*_TIMED):
        for side in ("start", "end"):
            value = el.get(side)
            if value:
                try:
                    found.append(parse_utc(value).timestamp())
                except DAVError:  # refused where the element is read
                    continue
    if not found:
        now = time.time()
        return now - YEAR, now + YEAR
    return min(found), max(found)


async def calendar_zone(store: CalendarStore, calendar: str, lo: float, hi: float) -> tzinfo | None:
    """The zone of the calendar at mount path ``calendar`` (its ``calendar-timezone``;
    None, which is UTC, without one, or for one that is no zone)."""
    res = await store.stat(calendar, dead_props=True)
    value = (res.dead_props or {}).get(CALENDAR_TIMEZONE) if res is not None else None
    if value is None:
        return None
    try:
        text = "".join(etree.fromstring(value).itertext())
    except etree.XMLSyntaxError:  # a property file edited behind the server's back
        return None
    return await offload(zone_of_text, text, lo, hi)


async def request_zone(root: etree._Element, store: CalendarStore, calendar: str) -> tzinfo | None:
    """The zone a REPORT on the calendar at mount path ``calendar`` takes floating times
    in: the body's ``C:timezone`` (checked already), else the calendar's."""
    lo, hi = window(root)
    given = root.find(c("timezone"))
    if given is not None:
        return await offload(zone_of_text, given.text or "", lo, hi)
    return await calendar_zone(store, calendar, lo, hi)
