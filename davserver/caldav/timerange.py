"""Time ranges (RFC 4791 §9.9) in requests: parsing ``C:time-range`` (and ``C:expand``,
``C:limit-recurrence-set``, ``C:free-busy-query``) into the bounds the spans are tested
against."""

from __future__ import annotations

from datetime import UTC, datetime

from davserver.dav.errors import DAVError
from davserver.ical.timerange import TimeRange


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
    rng = TimeRange(parse_utc(start) if start else None, parse_utc(end) if end else None)
    if rng.hi <= rng.lo:
        raise DAVError(400, "a time-range must end after it starts")
    return rng
