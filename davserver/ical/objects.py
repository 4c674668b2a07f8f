"""Is this a calendar object resource (RFC 4791 §4.1)? One VCALENDAR with components of
one type sharing one UID (plus the VTIMEZONEs they use), and no METHOD."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .spans import kind_of
from .strict import NotOneCalendar, one_calendar, value_problem
from .summary import Summary, summarize_calendar
from .zones import govern

# Components that may stand beside the main ones in an object resource.
_AUXILIARY = {"VTIMEZONE"}


@dataclass(frozen=True, slots=True)
class CalendarObject:
    """What a valid calendar object resource holds."""

    uid: str
    component: str
    summary: Summary
    """What the calendar index keeps of it, worked out from the same parse."""


class InvalidObject(ValueError):
    """The bytes are not a calendar object resource; ``condition`` names the CalDAV
    precondition that fails (``valid-calendar-data``, ``valid-calendar-object-resource``)."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(reason)
        self.condition = condition
        self.reason = reason


def check(data: bytes) -> CalendarObject:
    """The UID, component type and summary of ``data``; :class:`InvalidObject` naming
    the precondition that fails. Parsing and expanding are CPU work: call it off the
    event loop."""
    try:
        calendar = one_calendar(data)
    except NotOneCalendar as exc:
        raise InvalidObject("valid-calendar-data", str(exc)) from exc
    problem = value_problem(calendar)
    if problem is not None:
        raise InvalidObject("valid-calendar-data", f"not valid iCalendar: {problem}")
    if "METHOD" in calendar:
        raise InvalidObject("valid-calendar-object-resource", "METHOD is not allowed in a calendar")
    main = [sub for sub in calendar.subcomponents if sub.name not in _AUXILIARY]
    if not main:
        raise InvalidObject("valid-calendar-object-resource", "no VEVENT, VTODO or VJOURNAL")
    kinds = {kind_of(sub) for sub in main}
    if len(kinds) != 1:
        raise InvalidObject("valid-calendar-object-resource", "components of different types")
    uids = {str(sub.get("UID", "")) for sub in main}
    if len(uids) != 1 or "" in uids:
        raise InvalidObject("valid-calendar-object-resource", "components need one shared UID")
    govern(calendar, data)
    summary = summarize_calendar(calendar, time.time())
    return CalendarObject(uid=uids.pop(), component=kinds.pop(), summary=summary)
