"""``C:expand`` of an event done on its text, with the instances the index already knows
(their spans): each instance is the text of the component it comes from (the master, or
its override) with DTSTART and DTEND set from the span in UTC, a RECURRENCE-ID added to
the master's instances of a recurring event, the recurrence properties and the
VTIMEZONEs dropped. That spares parsing the object, running the recurrence library and
writing the components out again, which is the whole cost of an expanded query; the
tests check it against :mod:`.expand`. Floating times are placed in the query's zone
(dates stay dates). Anything it does not handle (to-dos, a THISANDFUTURE override, a
TZID that is no IANA name or whose VTIMEZONE in the object differs from it, odd syntax)
goes there instead."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from .spans import Span, absolute, overlaps
from .timerange import TimeRange
from .tzdb import iana
from .zones import BROKEN, zone_of_text

_LINES = re.compile(r"\r?\n(?![ \t])")
_FOLD = re.compile(r"\r?\n[ \t]")
_DATETIME = re.compile(r"\d{8}T\d{6}Z?")
_DATE = re.compile(r"\d{8}")
_RECURRENCE = {"RRULE", "RDATE", "EXDATE", "EXRULE"}
_OTHER_MAIN = {"VTODO", "VJOURNAL", "VFREEBUSY"}


def _unfold(raw: str) -> str:
    """A content line without its folds."""
    return _FOLD.sub("", raw) if "\n" in raw else raw


def _key(line: str) -> str:
    return line.partition(":")[0].partition(";")[0].upper()


def _is_date(line: str) -> bool:
    return bool(_DATE.fullmatch(line.rpartition(":")[2]))


def _utc(line: str, floating: tzinfo | None, own: Mapping[str, str]) -> str | None:
    """A date-time property line with its value in UTC (a DATE stays; a floating value
    is taken in ``floating``; None: not here, as for a TZID whose VTIMEZONE in the
    object, ``own``, differs from the database's)."""
    head, _, value = line.partition(":")
    if '"' in head:
        return None
    name, *params = head.split(";")
    if _DATE.fullmatch(value):
        return line
    if not _DATETIME.fullmatch(value):
        return None
    zone: tzinfo | None = floating
    for param in params:
        key, _, val = param.partition("=")
        if key.upper() == "TZID":
            zone = iana(val)
            if zone is None or (val in own and not _governs(own[val], zone, value)):
                return None
        elif key.upper() != "VALUE":
            return None
    if value.endswith("Z"):
        return f"{name}:{value}"
    local = datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=zone or UTC)
    return f"{name}:{local.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _governs(definition: str, zone: tzinfo, value: str) -> bool:
    """Whether the database's ``zone`` is what the object's own VTIMEZONE (its text)
    says around the date-time ``value``."""
    moment = datetime.strptime(value[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    try:
        return zone_of_text(definition, moment, moment) is zone
    except BROKEN:
        return False


def _stamp(name: str, moment: float, is_date: bool) -> str:
    when = datetime.fromtimestamp(moment, UTC)
    if is_date:
        return f"{name};VALUE=DATE:{when:%Y%m%d}"
    return f"{name}:{when:%Y%m%dT%H%M%SZ}"


@dataclass(slots=True)
class _Event:
    """A VEVENT of the object, read once for all its instances: its content lines, each
    as written, unfolded, and with its property name ("" for its BEGIN and END and the
    lines of the components inside it, which are copied as they are)."""

    lines: list[tuple[str, str, str]] = field(default_factory=list)
    override: bool = False
    """It has a RECURRENCE-ID."""
    timed: bool = True
    """Its DTSTART is no DATE."""
    recurs: bool = False
    """It has a recurrence property (RRULE, RDATE, EXDATE, EXRULE)."""

    def add(self, raw: str, line: str, key: str, own_property: bool) -> None:
        """One more line; ``own_property``: a property of the VEVENT itself."""
        self.lines.append((raw, line, key if own_property else ""))
        if key == "RECURRENCE-ID":
            self.override = True
        elif key == "DTSTART" and _is_date(line):
            self.timed = False
        elif key in _RECURRENCE:
            self.recurs = True


def _instance(
    event: _Event, span: Span, recurring: bool, zone: tzinfo | None, own: Mapping[str, str]
) -> list[str] | None:
    """One instance of a VEVENT; a floating ``span`` is placed in ``zone``, but for
    dates."""
    placed = absolute(span, zone)
    out: list[str] = []
    for raw, line, key in event.lines:
        if not key:
            out.append(raw)
        elif key == "DTSTART":
            is_date = _is_date(line)
            start = span.start if is_date else placed.start
            out.append(_stamp("DTSTART", start, is_date))
            if recurring and not event.override:
                out.append(_stamp("RECURRENCE-ID", start, is_date))
        elif key == "DTEND":
            ends_on_date = _is_date(line)
            out.append(_stamp("DTEND", span.end if ends_on_date else placed.end, ends_on_date))
        # A DURATION of a timed instance becomes its DTEND in UTC, the end its span has:
        # the same instant the expansion by recurring-ical-events gives when the duration
        # spans a change of offset (added in wall time), where a DURATION after a start
        # in UTC would count exact hours.
        elif key == "DURATION" and event.timed and placed.end > placed.start:
            out.append(_stamp("DTEND", placed.end, False))
        elif key == "RECURRENCE-ID":
            if "THISANDFUTURE" in line.upper():
                return None
            converted = _utc(line, zone, own)
            if converted is None:
                return None
            out.append(converted)
        elif key not in _RECURRENCE:
            out.append(raw)
    return out


def _keep_zone(lines: list[str], own: dict[str, str]) -> None:
    """Note a VTIMEZONE's text (its raw lines) under its TZID."""
    for raw in lines:
        line = _unfold(raw)
        if _key(line) == "TZID":
            tzid = line.partition(":")[2]
            own[tzid] = "BEGIN:VCALENDAR\r\n" + "\r\n".join(lines) + "\r\nEND:VCALENDAR\r\n"
            return


def expand_known(
    data: bytes, spans: Sequence[Span], rng: TimeRange, zone: tzinfo | None = None
) -> str | None:
    """The expanded text of an object whose spans (from the index) cover the range, its
    floating times in ``zone`` (None: UTC); None when this path cannot do it."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    head: list[str] = []
    events: list[_Event] = []
    event: _Event | None = None
    zone_lines: list[str] = []
    own: dict[str, str] = {}
    """The object's VTIMEZONEs by TZID, each as a VCALENDAR of its own."""
    depth = 0
    skip = False
    for raw in _LINES.split(text.strip("\r\n")):
        line = _unfold(raw)
        key = _key(line)
        value = line.partition(":")[2].strip().upper() if key in ("BEGIN", "END") else ""
        if key == "BEGIN":
            depth += 1
            if depth == 2:
                if value in _OTHER_MAIN:
                    return None
                skip = value == "VTIMEZONE"
                event = _Event() if value == "VEVENT" else None
        if depth >= 2:
            if event is not None:
                event.add(raw, line, key, depth == 2 and key not in ("BEGIN", "END"))
            elif skip:
                zone_lines.append(raw)
            else:
                head.append(raw)
        elif key != "END" or depth != 1:
            head.append(raw)
        if key == "END":
            depth -= 1
            if depth == 1 and event is not None:
                events.append(event)
                event = None
            elif depth == 1 and skip:
                _keep_zone(zone_lines, own)
                zone_lines = []
    if depth != 0 or not head or _key(head[0]) != "BEGIN":
        return None
    recurring = len(events) > 1 or any(e.recurs for e in events)
    out = head
    lo, hi = rng.lo, rng.hi
    for span in [s for s in spans if overlaps(absolute(s, zone), lo, hi)]:
        if span.source >= len(events):
            return None
        instance = _instance(events[span.source], span, recurring, zone, own)
        if instance is None:
            return None
        out += instance
    out.append("END:VCALENDAR")
    return "\r\n".join(out) + "\r\n"
