"""When the instances of a calendar component happen, as "spans" the time-range test of
RFC 4791 §9.9 works on, and that test itself (:func:`overlaps`).

A span is ``(start, end, flags, source)``: POSIX seconds in UTC (``±inf`` for an open
side), whether each side is closed, and which main component of the object (by position)
the instance comes from (the master, or the override that replaced it). The row of
§9.9 is chosen from that component's own properties (DTEND or DURATION, DUE, COMPLETED,
CREATED), the times from the occurrence that recurring-ical-events computed, because the
library normalizes what it returns (DURATION becomes DTEND, VTODOs get made-up dates).

A span of floating times or dates (no TZID, no Z) is kept in local wall time, written as
if it were UTC, and flagged :data:`FLOATING`: when it happens depends on the time zone a
query is evaluated in (RFC 4791 §9.9: the query's ``timezone``, else the calendar's
``calendar-timezone``, else UTC). :func:`absolute` places it in a zone; every time-range
test is ``overlaps(absolute(span, zone), lo, hi)``. A span whose start and end differ in
kind (a floating start, a zoned end) is not flagged: its floating side counts as UTC.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import NamedTuple

import icalendar
import recurring_ical_events

INF = math.inf
END_CLOSED = 1
"""The range's start may equal the span's end (``start <= end`` rather than ``<``)."""
START_CLOSED = 2
"""The range's end may equal the span's start (``end >= start`` rather than ``>``)."""
FLOATING = 4
"""The span's times are local wall times (floating date-times, dates), not UTC."""
MAIN = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY")
RECURRENCE = ("RRULE", "RDATE", "RECURRENCE-ID")
DAY = 86400.0
# Ranges asked of recurring-ical-events: wider than the range tested, since its notion of
# overlap differs from §9.9's at the edges; the spans then decide.
MARGIN = timedelta(days=1)
# The years instances are computed in; open ends of a range stop here.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class Span(NamedTuple):
    """One instance, as the time-range test sees it."""

    start: float
    end: float
    flags: int
    source: int


def pack(spans: Iterable[Span]) -> bytes:
    """Spans as bytes: four doubles each (what the index stores, and keeps in memory)."""
    return array("d", [x for span in spans for x in span]).tobytes()


def unpack(packed: bytes) -> tuple[Span, ...]:
    """The spans :func:`pack` made."""
    v = array("d", packed)
    return tuple(Span(v[i], v[i + 1], int(v[i + 2]), int(v[i + 3])) for i in range(0, len(v), 4))


def unpack_near(packed: bytes, lo: float, hi: float) -> tuple[Span, ...]:
    """The spans :func:`pack` made that reach into [lo, hi] at all (end >= lo, start <=
    hi): every span :func:`overlaps` accepts for that range, and some at its very edges
    that it refuses, so a caller still tests each. Only these become tuples: an object
    that recurs daily has hundreds of spans, of which a week's query needs seven."""
    v = array("d", packed)
    return tuple(
        Span(v[i], v[i + 1], int(v[i + 2]), int(v[i + 3]))
        for i in range(0, len(v), 4)
        if v[i + 1] >= lo and v[i] <= hi
    )


def overlaps(span: Span | tuple[float, float, int, int], lo: float, hi: float) -> bool:
    """THE time-range test: whether an instance meets the range [lo, hi) (§9.9)."""
    start, end, flags = span[0], span[1], span[2]
    return (lo < end or ((flags & END_CLOSED) != 0 and lo == end)) and (
        hi > start or ((flags & START_CLOSED) != 0 and hi == start)
    )


def timestamp(value: date | datetime) -> float:
    """A DATE or DATE-TIME as POSIX seconds, floating values and dates taken as UTC (their
    wall time, as spans keep it)."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC).timestamp()
    return value.timestamp()


def floating(value: object) -> bool:
    """Whether a DATE or DATE-TIME is local wall time: a date, or a date-time without a
    zone."""
    if isinstance(value, datetime):
        return value.tzinfo is None
    return isinstance(value, date)


def in_zone(wall: float, zone: tzinfo | None) -> float:
    """The POSIX seconds of a wall time (written as if UTC) in ``zone`` (None: UTC). A wall
    time that a zone skips or repeats is taken with the offset before the change (RFC 5545
    §3.3.5, which zoneinfo's ``fold=0`` gives)."""
    if zone is None or math.isinf(wall):
        return wall
    return datetime.fromtimestamp(wall, UTC).replace(tzinfo=zone).timestamp()


def instant(value: date | datetime, zone: tzinfo | None) -> float:
    """A DATE or DATE-TIME as POSIX seconds, floating values and dates in ``zone``."""
    seconds = timestamp(value)
    return in_zone(seconds, zone) if floating(value) else seconds


def absolute(span: Span, zone: tzinfo | None) -> Span:
    """The span in UTC: a floating one placed in ``zone`` (None: UTC, where it is already)."""
    if zone is None or not span.flags & FLOATING:
        return span
    return Span(in_zone(span.start, zone), in_zone(span.end, zone), span.flags, span.source)


def _value(component: icalendar.cal.Component, name: str) -> float | None:
    prop = component.get(name)
    dt = getattr(prop, "dt", None)
    return timestamp(dt) if isinstance(dt, date) else None


def _between(start: float, end: float, flags: int, source: int) -> Span:
    """An instance from ``start`` to ``end``: a period when it lasts, else an instant."""
    if end > start:
        return Span(start, end, flags & ~START_CLOSED, source)
    return Span(start, start, flags | END_CLOSED, source)


def row_span(
    component: icalendar.cal.Component,
    start: date | datetime | None,
    end: date | datetime | None,
    source: int,
) -> Span | None:
    """The span of one instance of ``component`` starting at ``start`` and (as the
    recurrence library computed it) ending at ``end``; None when §9.9 says it never
    overlaps. Without ``start`` the component's own properties give the times. Flagged
    :data:`FLOATING` when the times it comes from are all floating."""
    span = _row_span(component, start, end, source)
    if span is None or not _floats(component, start, end):
        return span
    return span._replace(flags=span.flags | FLOATING)


def _dt(component: icalendar.cal.Component, name: str) -> object:
    return getattr(component.get(name), "dt", None)


def _floats(
    component: icalendar.cal.Component, start: date | datetime | None, end: date | datetime | None
) -> bool:
    """Whether the times an instance's span comes from are all floating (DTSTART, and
    DTEND or DUE; COMPLETED and CREATED are UTC)."""
    first: object = start if start is not None else _dt(component, "DTSTART")
    if first is None:
        return component.name == "VTODO" and floating(_dt(component, "DUE"))
    last: object = end if end is not None and start is not None else None
    if last is None:
        last = _dt(component, "DTEND") if "DTEND" in component else _dt(component, "DUE")
    return floating(first) and (last is None or floating(last))


def _row_span(
    component: icalendar.cal.Component,
    start: date | datetime | None,
    end: date | datetime | None,
    source: int,
) -> Span | None:
    kind = component.name
    dtstart = component.get("DTSTART")
    if dtstart is None:
        s = None
    elif start is not None:
        s = timestamp(start)
    else:
        s = timestamp(dtstart.dt)
    is_date = dtstart is not None and not isinstance(dtstart.dt, datetime)
    e = timestamp(end) if end is not None and start is not None else None
    if kind == "VEVENT":
        if s is None:
            return None
        return _between(s, e if e is not None else _event_end(component, s, is_date), 0, source)
    if kind == "VTODO":
        return _todo_span(component, s, e, source)
    if kind == "VJOURNAL":
        if s is None:
            return None
        return Span(s, s + DAY, 0, source) if is_date else Span(s, s, END_CLOSED, source)
    if kind == "VFREEBUSY" and s is not None and "DTEND" in component:
        e = _value(component, "DTEND")
        return Span(s, e if e is not None else s, END_CLOSED, source)
    return None


def _event_end(component: icalendar.cal.Component, s: float, is_date: bool) -> float:
    end = _value(component, "DTEND")
    if end is not None:
        return end
    duration = getattr(component.get("DURATION"), "dt", None)
    if isinstance(duration, timedelta):
        return s + duration.total_seconds()
    return s + DAY if is_date else s


def _todo_span(
    component: icalendar.cal.Component, s: float | None, e: float | None, source: int
) -> Span:
    """The VTODO table of §9.9, row by row."""
    both = END_CLOSED | START_CLOSED
    if s is not None and ("DURATION" in component or "DUE" in component):
        if e is None:
            e = _value(component, "DUE")
            duration = getattr(component.get("DURATION"), "dt", None)
            if e is None and isinstance(duration, timedelta):
                e = s + duration.total_seconds()
        e = s if e is None else e
        if (
            "DUE" in component
        ):  # (start < DUE or start <= DTSTART) and (end > DTSTART or end >= DUE)
            if e > s:
                return Span(s, e, 0, source)
            return Span(e, s, both, source)
        # DTSTART+DURATION: start <= DTSTART+DURATION and (end > DTSTART or end >= DTSTART+DURATION)
        return Span(s, e, END_CLOSED, source) if e > s else Span(s, s, both, source)
    if s is not None:  # start <= DTSTART and end > DTSTART
        return Span(s, s, END_CLOSED, source)
    due = _value(component, "DUE")
    if due is not None:  # start < DUE and end >= DUE
        return Span(due, due, START_CLOSED, source)
    completed, created = _value(component, "COMPLETED"), _value(component, "CREATED")
    if completed is not None and created is not None:
        return Span(min(completed, created), max(completed, created), both, source)
    if completed is not None:  # start <= COMPLETED and end >= COMPLETED
        return Span(completed, completed, both, source)
    if created is not None:  # end > CREATED
        return Span(created, INF, 0, source)
    return Span(-INF, INF, 0, source)


def _freebusy_spans(component: icalendar.cal.Component, source: int) -> list[Span]:
    """A VFREEBUSY without DTSTART and DTEND overlaps where one of its periods does."""
    out = []
    values = component.get("FREEBUSY", [])
    for prop in values if isinstance(values, list) else [values]:
        for period in getattr(prop, "dts", None) or [prop]:
            begin, finish = _period(getattr(period, "dt", period))
            if begin is not None and finish is not None:
                out.append(Span(begin, finish, 0, source))
    return out


def _period(value: object) -> tuple[float | None, float | None]:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], date):
        start = timestamp(value[0])
        other = value[1]
        if isinstance(other, timedelta):
            return start, start + other.total_seconds()
        if isinstance(other, date):
            return start, timestamp(other)
    return None, None


def main_components(calendar: icalendar.Calendar) -> list[icalendar.cal.Component]:
    """The main components of an object (VEVENT, VTODO, ...), in order; a span's
    ``source`` is a position in this list."""
    return [sub for sub in calendar.subcomponents if sub.name in MAIN]


def kind_of(component: icalendar.cal.Component) -> str:
    """The name of a parsed component (VEVENT, VALARM...): icalendar gives every class
    it parses into one, but types it optional for the base class."""
    name = component.name
    assert name is not None
    return name


def recurs(components: list[icalendar.cal.Component]) -> bool:
    """Whether these components need the recurrence library (a rule, extra dates or
    overridden instances)."""
    return len(components) > 1 or any(key in c for c in components for key in RECURRENCE)


def fixed_spans(components: list[icalendar.cal.Component]) -> list[Span]:
    """The spans of components that do not recur (each happens once)."""
    out: list[Span] = []
    for source, component in enumerate(components):
        if component.name == "VFREEBUSY" and "DTEND" not in component:
            out.extend(_freebusy_spans(component, source))
            continue
        span = row_span(component, None, None, source)
        if span is not None:
            out.append(span)
    return out


def occurrence_spans(
    occurrences: Iterator[object], components: list[icalendar.cal.Component]
) -> Iterator[tuple[Span, object]]:
    """The spans of occurrences the recurrence library found, each with its occurrence.

    The component an occurrence comes from (which decides the row of §9.9 and is the
    span's ``source``) is the library's ``Occurrence._adapter._component``: it has no
    public name for it, and the property tests would catch a change.
    """
    sources = {id(c): i for i, c in enumerate(components)}
    for occ in occurrences:
        component = occ._adapter._component  # type: ignore[attr-defined]
        source = sources.get(id(component))
        if source is None:
            continue
        span = row_span(component, occ.start, occ.end, source)  # type: ignore[attr-defined]
        if span is not None:
            yield span, occ


def query(calendar: icalendar.Calendar, kind: str) -> recurring_ical_events.CalendarQuery:
    """The recurrence library's view of the ``kind`` components of an object (series it
    cannot compute are left out rather than failing the whole object)."""
    return recurring_ical_events.of(calendar, components=[kind], skip_bad_series=True)


def occurrences_between(
    calendar: icalendar.Calendar, kind: str, lo: float, hi: float
) -> list[tuple[Span, object | None]]:
    """The instances of the ``kind`` components of an object that may meet [lo, hi) (a
    superset of those that do: :func:`overlaps` decides), each with the recurrence
    library's occurrence (None for a component that does not recur: it is its own
    instance)."""
    components = main_components(calendar)
    if not recurs([c for c in components if c.name == kind]):
        return [(s, None) for s in fixed_spans(components) if components[s.source].name == kind]
    if kind not in ("VEVENT", "VTODO", "VJOURNAL"):
        return []
    found = query(calendar, kind)._occurrences_between(moment(lo) - MARGIN, moment(hi) + MARGIN)
    return list(occurrence_spans(iter(found), components))


def spans_between(calendar: icalendar.Calendar, kind: str, lo: float, hi: float) -> list[Span]:
    """The spans of :func:`occurrences_between`."""
    return [span for span, _ in occurrences_between(calendar, kind, lo, hi)]


def moment(value: float) -> datetime:
    """POSIX seconds as a datetime the recurrence library accepts (clamped to the years
    it is asked about)."""
    clamped = min(max(value, EARLIEST.timestamp()), LATEST.timestamp())
    return datetime.fromtimestamp(clamped, UTC)
