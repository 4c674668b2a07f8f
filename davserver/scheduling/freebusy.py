"""A user's busy time for a free-busy request through the outbox (RFC 6638 §5): the
events of every calendar of theirs that counts, merged into one VFREEBUSY reply.

A calendar counts unless its ``schedule-calendar-transp`` is ``transparent`` (RFC 6638
§9.1) or it takes no events; when the inbox names a ``calendar-free-busy-set`` (the
property of the scheduling drafts older clients set), only the calendars it lists
count. Within them, transparent and cancelled events, and those the user declined, are
free; those they have not answered are BUSY-TENTATIVE.
"""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
from lxml import etree

from davserver.caldav.freebusy import busy_in
from davserver.caldav.put import supported_components
from davserver.caldav.store.layout import CALENDARS, CalendarStore, place
from davserver.caldav.timezones import calendar_zone
from davserver.ical.freebusy import merged
from davserver.ical.itip import PRODID, serialize
from davserver.ical.timerange import TimeRange

from .deliver import href_path
from .names import CALENDAR_TRANSP, FREE_BUSY_SET, INBOX, box_of

Busy = list[tuple[str, float, float]]


async def counted_calendars(store: CalendarStore, prefix: str, user: str) -> list[tuple[str, str]]:
    """The inner and mount paths of ``user``'s calendars whose events make them busy."""
    home = f"{CALENDARS}/{user}"
    inbox = await store.stat(f"{home}/{INBOX}", dead_props=True)
    listed: set[str] | None = None
    raw = (inbox.dead_props or {}).get(FREE_BUSY_SET) if inbox is not None else None
    if raw is not None:
        links = etree.fromstring(raw).iter("{DAV:}href")
        listed = {p for el in links if (p := href_path(prefix, el.text or "")) is not None}
    out = []
    async for batch in store.children(home, dead_props=True):
        for res in batch:
            where = place(res.path)
            if where.kind != "calendar" or box_of(where) is not None or not res.is_collection:
                continue
            if listed is not None and res.path not in listed:
                continue
            props = res.dead_props or {}
            transp = props.get(CALENDAR_TRANSP, b"")
            if b"transparent" in transp or "VEVENT" not in supported_components(props):
                continue
            if where.calendar is not None:
                out.append((where.calendar, res.path))
    return out


async def busy_of(
    store: CalendarStore, prefix: str, user: str, addresses: frozenset[str], rng: TimeRange
) -> Busy:
    """The busy periods of ``user`` (who goes by ``addresses``) in the range."""
    busy: Busy = []
    for calendar, path in await counted_calendars(store, prefix, user):
        zone = await calendar_zone(store, path, rng.lo, rng.hi)  # of its floating times
        busy += await busy_in(store, calendar, rng, addresses, zone)
    return busy


def reply_calendar(
    busy: Busy, rng: TimeRange, uid: str, organizer: str, attendee: str, now: float
) -> bytes:
    """The VFREEBUSY reply (METHOD:REPLY) of one attendee (RFC 5546 §3.3.2)."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    answer = icalendar.FreeBusy()
    answer.add("UID", uid)
    answer.add("DTSTAMP", _moment(now))
    answer.add("DTSTART", _moment(rng.lo))
    answer.add("DTEND", _moment(rng.hi))
    answer.add("ORGANIZER", icalendar.vCalAddress(organizer))
    answer.add("ATTENDEE", icalendar.vCalAddress(attendee))
    for kind in ("BUSY", "BUSY-TENTATIVE"):
        periods = merged([(s, e) for k, s, e in busy if k == kind])
        if periods:
            answer.add(
                "FREEBUSY",
                [(_moment(s), _moment(e)) for s, e in periods],
                parameters={"FBTYPE": kind},
            )
    calendar.add_component(answer)
    return serialize(calendar)


def _moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
