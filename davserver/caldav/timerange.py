"""Time ranges (RFC 4791 §9.9): parsing ``C:time-range`` and asking whether a calendar
object has an instance in one, recurrences included (via recurring-ical-events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import icalendar
import recurring_ical_events

from davserver.dav.errors import DAVError

# Open ends of a range: far enough for any calendar, near enough for the recurrence library.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end) in UTC; an open end is None."""

    start: datetime | None
    end: datetime | None

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """Both ends, with open ones replaced by far dates."""
        return self.start or _EARLIEST, self.end or _LATEST

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) meets this range (an instant counts at its start)."""
        lo, hi = self.bounds
        if start == end:
            return lo <= start < hi
        return start < hi and end > lo


def parse_utc(value: str) -> datetime:
    """A UTC date-time in iCalendar form (``20060104T000000Z``); 400 otherwise."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DAVError(400, f"{value!r} is not a UTC date-time") from exc


def parse_range(start: str | None, end: str | None) -> TimeRange:
    """A time range from the attributes of a ``C:time-range`` element."""
    if start is None and end is None:
        raise DAVError(400, "time-range needs a start or an end")
    return TimeRange(parse_utc(start) if start else None, parse_utc(end) if end else None)


def as_utc(value: date | datetime) -> datetime:
    """A DATE or DATE-TIME as a UTC instant (floating and all-day values taken as UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def instances(calendar: icalendar.Calendar, component: str, rng: TimeRange) -> list:
    """The instances of ``component`` in ``calendar`` that fall in the range, recurrences
    expanded and overrides applied."""
    lo, hi = rng.bounds
    query = recurring_ical_events.of(calendar, components=[component])
    # The library counts an instance that ends exactly at ``lo`` as overlapping; step past it.
    return [
        occ
        for occ in query.between(lo - timedelta(seconds=1), hi)
        if _occurrence_overlaps(occ, component, rng)
    ]


def _occurrence_overlaps(occ: icalendar.cal.Component, component: str, rng: TimeRange) -> bool:
    start = occ.get("DTSTART")
    if component == "VTODO" and start is None:
        due = occ.get("DUE")
        if due is None:
            return True
        moment = as_utc(due.dt)
        return rng.overlaps(moment, moment)
    if start is None:
        return False
    begin = as_utc(start.dt)
    end_prop = occ.get("DTEND") or occ.get("DUE")
    if end_prop is not None:
        finish = as_utc(end_prop.dt)
    elif "DURATION" in occ:
        finish = begin + occ["DURATION"].dt
    elif not isinstance(start.dt, datetime):
        finish = begin + timedelta(days=1)
    else:
        finish = begin
    return rng.overlaps(begin, finish)
