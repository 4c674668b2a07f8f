"""Time ranges (RFC 4791 §9.9) in requests: parsing ``C:time-range`` (and ``C:expand``,
``C:limit-recurrence-set``, ``C:free-busy-query``) into the bounds the spans are tested
against."""

from __future__ import annotations

from datetime import UTC, datetime

from davserver.dav.errors import DAVError
from davserver.ical.timerange import TimeRange


def parse_utc(value: str, condition: str | None = None) -> datetime:
    """A UTC date-time in iCalendar form (``20060104T000000Z``); otherwise 403 with
    ``condition`` (RFC 4791: a filter's time-range must be UTC date-times), or 400."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        reason = f"{value!r} is not a UTC date-time"
        raise DAVError(403 if condition else 400, reason, condition=condition) from exc


def parse_range(start: str | None, end: str | None, condition: str | None = None) -> TimeRange:
    """A time range from the attributes of a ``C:time-range`` element; a bad one is 403
    with ``condition`` when given (``valid-filter`` in a filter), else 400."""
    status = 403 if condition else 400
    if start is None and end is None:
        raise DAVError(status, "time-range needs a start or an end", condition=condition)
    rng = TimeRange(
        parse_utc(start, condition) if start else None, parse_utc(end, condition) if end else None
    )
    if rng.hi <= rng.lo:
        raise DAVError(status, "a time-range must end after it starts", condition=condition)
    return rng
