"""Which time zone definition governs a TZID: the VTIMEZONE an object (or a query, or a
calendar's ``calendar-timezone``) carries, as RFC 5545 says, wherever it differs from the
database's zone of the same name.

icalendar resolves the names of the zone database (and Windows names) through the
database and ignores the object's own VTIMEZONE; most clients copy the database, so both
agree and the database's zone (fast, exact at gaps and folds) is kept. Where they differ
in the years the object is about (a deliberately different definition, or a zone whose
rules changed), and for a TZID the database does not know ("Customized Time Zone"), the
object's VTIMEZONE is turned into a tzinfo by icalendar (``Timezone.to_tz``) and put on
the object's values, so that the recurrence library and everything else compute with it.
The object's own: no definition outlives the object it came in (:mod:`.reader`).

Agreement is decided on the VTIMEZONE's own transitions (three hours before and after
each) and on two days of each month in the years asked about, comparing the offsets it
gives with the database's: a different offset, or a change on another day, differs; a
change placed an hour or two apart does not (icalendar's own ``Timezone.from_tzid``
writes each change at the local time after it rather than before, RFC 5545 §3.6.5), and
only times in that hour would tell. The verdicts, and the zones made from VTIMEZONEs, are
kept per definition text.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import dateutil.rrule
import dateutil.tz
import icalendar
from icalendar.timezone import tzp

from .reader import read
from .tzdb import database_zone

TIMES = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "EXDATE", "RDATE")
"""The properties of a component whose values may carry a TZID."""
SPAN_YEARS = 20
"""How many years past its first value a recurring object is compared over."""
FIRST_YEAR, LAST_YEAR = 1900, 2199
NEAR = timedelta(hours=3)
"""How far from each of its changes a VTIMEZONE is compared with the database."""
MAX_CHANGES = 5000
"""The most changes of offset a VTIMEZONE's rules may make for the server to compute with
it (a zone of two changes a year from 1601 to 2199 makes 1,200): icalendar lists them all,
and a rule of one an hour would take seconds and gigabytes. One that makes more is a
definition the server cannot work with, like one icalendar cannot read."""
BROKEN = (ValueError, KeyError, TypeError, IndexError, AttributeError)
"""What icalendar raises for a VTIMEZONE it cannot make a zone of."""


class Definition:
    """One VTIMEZONE: its transitions, and the tzinfo icalendar makes of it (once)."""

    def __init__(self, vtimezone: icalendar.cal.Component) -> None:
        if not isinstance(vtimezone, icalendar.Timezone):
            raise ValueError(f"{vtimezone.name} is not a VTIMEZONE")
        self.vtimezone = vtimezone
        self.tzid = str(vtimezone.get("TZID", ""))
        _limit_changes(vtimezone)
        times, infos = vtimezone.get_transitions()
        self.times = times
        self.offsets = [info[0] for info in infos]
        recurs = any("RRULE" in sub for sub in vtimezone.subcomponents)
        # Rules are expanded up to some year only: past it, nothing is known to differ.
        self.until = times[-1] if recurs and times else datetime(LAST_YEAR + 1, 1, 1)
        self._verdicts: dict[tuple[int, int], bool] = {}
        self._tz: tzinfo | None = None

    @property
    def tz(self) -> tzinfo:
        """The zone the VTIMEZONE defines."""
        if self._tz is None:
            self._tz = self.vtimezone.to_tz(lookup_tzid=False)
        return self._tz

    def _offset(self, moment: datetime) -> timedelta | None:
        """The VTIMEZONE's offset at a naive UTC moment (None before it starts)."""
        i = bisect.bisect_right(self.times, moment) - 1
        return self.offsets[i] if i >= 0 else None

    def _samples(self, first: int, last: int) -> Iterator[datetime]:
        lo, hi = datetime(first, 1, 1), min(datetime(last + 1, 1, 1), self.until)
        for moment in self.times[bisect.bisect_left(self.times, lo) :]:
            if moment >= hi:
                break
            yield moment - NEAR
            yield moment + NEAR
        for year in range(first, last + 1):
            for month in range(1, 13):
                for day in (1, 15):
                    moment = datetime(year, month, day, 12)
                    if moment < hi:
                        yield moment

    def agrees(self, zone: ZoneInfo, first: int, last: int) -> bool:
        """Whether the database's ``zone`` gives the offsets the VTIMEZONE gives in the
        years ``first`` to ``last``."""
        key = (first, last)
        known = self._verdicts.get(key)
        if known is None:
            known = True
            for moment in self._samples(first, last):
                own = self._offset(moment)
                if (
                    own is not None
                    and moment.replace(tzinfo=UTC).astimezone(zone).utcoffset() != own
                ):
                    known = False
                    break
            if len(self._verdicts) < 64:
                self._verdicts[key] = known
        return known

    def governing(self, first: int, last: int) -> tzinfo:
        """The zone to compute with in those years: the database's when it agrees."""
        zone = database_zone(self.tzid)
        if zone is not None and self.agrees(zone, first, last):
            return zone
        return self.tz


def _limit_changes(vtimezone: icalendar.cal.Component) -> None:
    """ValueError when the VTIMEZONE's observances make more than :data:`MAX_CHANGES`
    changes of offset as icalendar expands them (a rule up to its UNTIL or COUNT, else to
    2038): found by counting to that number, before icalendar is asked to list them all."""
    total = 0
    for observance in vtimezone.subcomponents:
        rule, start = observance.get("RRULE"), observance.get("DTSTART")
        offset = getattr(observance.get("TZOFFSETFROM"), "td", None)
        if rule is None or not isinstance(getattr(start, "dt", None), datetime):
            continue
        if not isinstance(offset, timedelta):
            raise ValueError("an observance without TZOFFSETFROM")
        # As icalendar does: the start at the offset before the change.
        before = dateutil.tz.tzoffset(None, offset)
        expanded = dateutil.rrule.rrulestr(
            rule.to_ical().decode(), dtstart=start.dt.replace(tzinfo=before)
        )
        if not isinstance(expanded, dateutil.rrule.rrule):
            raise ValueError("an observance of several rules")
        tzp.fix_rrule_until(expanded, rule)
        total += sum(1 for _ in itertools.islice(expanded, MAX_CHANGES - total + 1))
        if total > MAX_CHANGES:
            raise ValueError(f"{vtimezone.get('TZID', '')} changes offset over {MAX_CHANGES} times")


_BLOCK = re.compile(rb"^BEGIN:VTIMEZONE\r?$.*?^END:VTIMEZONE\r?$", re.DOTALL | re.MULTILINE | re.I)


KEPT_DEFINITION_BYTES = 64 << 10
"""The longest VTIMEZONE text (or text of a query's ``timezone``) whose zone is kept for
the next object or query that sends it (real ones are a few hundred bytes to a few
kilobytes): what is kept stays under about 32 MiB, whatever clients send."""


def _definition(text: bytes) -> Definition:
    """The definition in a VTIMEZONE's text (its BEGIN and END lines included)."""
    return _kept_definition(text) if len(text) <= KEPT_DEFINITION_BYTES else _parsed(text)


@functools.lru_cache(maxsize=256)
def _kept_definition(text: bytes) -> Definition:
    return _parsed(text)


def _parsed(text: bytes) -> Definition:
    calendar = read(b"BEGIN:VCALENDAR\r\n" + text.strip() + b"\r\nEND:VCALENDAR\r\n")
    return Definition(calendar.subcomponents[0])


def _texts(calendar: icalendar.Calendar, data: bytes | str) -> list[bytes]:
    """The text of each VTIMEZONE of a calendar, from the bytes it was parsed from (in
    the same order; written out again when the two do not line up)."""
    raw = data.encode() if isinstance(data, str) else data
    zones = [z for z in calendar.subcomponents if z.name == "VTIMEZONE"]
    found = _BLOCK.findall(raw)
    if len(found) == len(zones):
        return found
    return [z.to_ical() for z in zones]


def _years(value: date, first: int, last: int) -> tuple[int, int]:
    return min(first, value.year), max(last, value.year)


def _values(prop: object) -> list[object]:
    dts = getattr(prop, "dts", None)
    return list(dts) if dts is not None else [prop]


def govern(calendar: icalendar.Calendar, data: bytes | str) -> None:
    """Give each date-time value with a TZID the zone that governs it (``data``: the text
    the object was parsed from; CPU work, off the event loop): the object's own VTIMEZONE
    of that TZID wherever it differs from the database's zone the TZID names, or when the
    TZID names none; else the database's zone. The values of a TZID that is neither stay
    in local time (floating), as icalendar reads them."""
    zones = [z for z in calendar.subcomponents if z.name == "VTIMEZONE"]
    texts = (
        dict(zip((str(z.get("TZID", "")) for z in zones), _texts(calendar, data), strict=True))
        if zones
        else {}
    )
    found: dict[str, list[object]] = {}
    span: dict[str, tuple[int, int]] = {}
    recurring = False
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            continue
        recurring = recurring or "RRULE" in component
        for name in TIMES:
            props = component.get(name)
            for prop in props if isinstance(props, list) else [props] if props is not None else []:
                tzid = str(getattr(prop, "params", {}).get("TZID", ""))
                if not tzid:
                    continue
                for value in _values(prop):
                    dt = getattr(value, "dt", None)
                    # icalendar's reading of a zone's name stands unless the object
                    # defines that name itself.
                    if isinstance(dt, datetime) and (dt.tzinfo is None or tzid in texts):
                        found.setdefault(tzid, []).append(value)
                        span[tzid] = _years(dt, *span.get(tzid, (LAST_YEAR, FIRST_YEAR)))
    for tzid, values in found.items():
        zone: tzinfo | None = database_zone(tzid)
        text = texts.get(tzid)
        if text is not None:
            first, last = span[tzid]
            if recurring:
                last = max(last, first + SPAN_YEARS)
            first, last = max(first, FIRST_YEAR), min(last, LAST_YEAR)
            # A definition icalendar cannot work with leaves the database's zone.
            with contextlib.suppress(*BROKEN):
                zone = _definition(text).governing(first, last)
        if zone is None:
            continue
        for value in values:
            dt = value.dt  # type: ignore[attr-defined]
            if dt.tzinfo is not zone:
                value.dt = dt.replace(tzinfo=zone)  # type: ignore[attr-defined]


def parse(data: bytes | str) -> icalendar.Calendar:
    """A calendar object parsed, its own time zone definitions governing its values
    (raises what icalendar raises for text that is not iCalendar)."""
    calendar = read(data)
    govern(calendar, data)
    return calendar


@functools.lru_cache(maxsize=256)
def _kept_zone_of_text(text: str, first: int, last: int) -> tzinfo | None:
    return _zone_of_text(text, first, last)


def _zone_of_text(text: str, first: int, last: int) -> tzinfo | None:
    try:
        calendar = read(text)
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    zones = _texts(calendar, text)
    if len(zones) != 1:
        return None
    try:
        return _definition(zones[0]).governing(first, last)
    except BROKEN:
        tzid = [str(z.get("TZID", "")) for z in calendar.subcomponents if z.name == "VTIMEZONE"]
        return database_zone(tzid[0])


def zone_of_text(text: str, lo: float, hi: float) -> tzinfo | None:
    """The zone a VCALENDAR holding one VTIMEZONE defines (a query's ``timezone``, a
    calendar's ``calendar-timezone``), to compute with for times between ``lo`` and
    ``hi`` (POSIX seconds); None for text that is no such thing."""
    first = datetime.fromtimestamp(max(lo, -2208988800.0), UTC).year - 1
    last = datetime.fromtimestamp(min(hi, 7258118400.0), UTC).year + 1
    years = max(first, FIRST_YEAR), min(last, LAST_YEAR)
    if len(text) <= KEPT_DEFINITION_BYTES:
        return _kept_zone_of_text(text, *years)
    return _zone_of_text(text, *years)
