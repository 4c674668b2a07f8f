"""Time ranges (RFC 4791 §9.9): parsing ``C:time-range`` (and ``C:expand``,
``C:limit-recurrence-set``, ``C:free-busy-query``) into the bounds the spans are tested
against. Open ends stop at the years instances are computed in (1900 to 2200)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from davserver.backends.calendar_spans import EARLIEST, LATEST
from davserver.dav.errors import DAVError


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end) in UTC; an open end is None."""

    start: datetime | None
    end: datetime | None

    @property
    def lo(self) -> float:
        """The start in POSIX seconds."""
        return (self.start or EARLIEST).timestamp()

    @property
    def hi(self) -> float:
        """The end in POSIX seconds."""
        return (self.end or LATEST).timestamp()


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


def as_utc(value: date | datetime) -> datetime:
    """A DATE or DATE-TIME as a UTC instant (floating and all-day values taken as UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
