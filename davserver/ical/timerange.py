"""Time ranges in UTC, as CalDAV filters and expansion test instances against them.
Open ends stop at the years instances are computed in (1900 to 2200)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from .spans import EARLIEST, LATEST


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


def as_utc(value: date | datetime, zone: tzinfo | None = None) -> datetime:
    """A DATE or DATE-TIME as a UTC instant (floating and all-day values in ``zone``,
    None: UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone or UTC).astimezone(UTC)
    return value.astimezone(UTC)
