"""Is this a calendar object resource (RFC 4791 §4.1)? One VCALENDAR with components of
one type sharing one UID (plus the VTIMEZONEs they use), and no METHOD."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import icalendar

from davserver.backends.calendar_summary import Summary, summarize_calendar
from davserver.dav.errors import DAVError

from .names import C

# Components that may stand beside the main ones in an object resource.
_AUXILIARY = {"VTIMEZONE"}


@dataclass(frozen=True, slots=True)
class CalendarObject:
    """What a valid calendar object resource holds."""

    uid: str
    component: str
    summary: Summary
    """What the calendar index keeps of it, worked out from the same parse."""


def _invalid(condition: str, reason: str, status: int = 403) -> DAVError:
    return DAVError(status, reason, condition=f"{{{C}}}{condition}")


def check(data: bytes) -> CalendarObject:
    """The UID and component type of ``data``; a 403 with the precondition that fails."""
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise _invalid("valid-calendar-data", f"not iCalendar: {exc}") from exc
    if len(calendars) != 1 or calendars[0].name != "VCALENDAR":
        raise _invalid("valid-calendar-data", "expected exactly one VCALENDAR")
    calendar = calendars[0]
    if "METHOD" in calendar:
        raise _invalid("valid-calendar-object-resource", "METHOD is not allowed in a calendar")
    main = [sub for sub in calendar.subcomponents if sub.name not in _AUXILIARY]
    if not main:
        raise _invalid("valid-calendar-object-resource", "no VEVENT, VTODO or VJOURNAL")
    kinds = {sub.name for sub in main}
    if len(kinds) != 1:
        raise _invalid("valid-calendar-object-resource", "components of different types")
    uids = {str(sub.get("UID", "")) for sub in main}
    if len(uids) != 1 or "" in uids:
        raise _invalid("valid-calendar-object-resource", "components need one shared UID")
    summary = summarize_calendar(calendar, time.time())
    return CalendarObject(uid=uids.pop(), component=kinds.pop(), summary=summary)


async def check_async(data: bytes) -> CalendarObject:
    """:func:`check` in the thread pool (parsing and expanding are CPU work)."""
    return await asyncio.get_running_loop().run_in_executor(None, check, data)
