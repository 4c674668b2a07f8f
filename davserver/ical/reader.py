"""iCalendar text to icalendar components: the one parser of the server.

It is icalendar's own, with two changes:

- **No time zone outlives the object it came in.** icalendar keeps each VTIMEZONE it parses
  whose TZID names no zone it knows, for the rest of the process, and reads that TZID in
  every later object by it: one user's "Customized Time Zone" would set the times of
  another user's event of the same TZID. Here icalendar resolves only TZIDs that name a
  zone of the database (or a Windows zone): those keep their zone, and icalendar's own
  table of them stays as small as the database. The values of any other TZID are left
  local, and :func:`.zones.govern` gives them the zone the object's own VTIMEZONE defines
  (RFC 5545 §3.2.19), wherever in the object that VTIMEZONE stands.
- **A VTIMEZONE seen before is not parsed again.** Clients send the same definition with
  every object (for a typical event, half of the lines to parse); a definition of the
  same text is copied from the last parse of it instead.

And one shortcut: icalendar splits a content line into name, parameters and value by
reading every character of it, the value's too (about 20 µs a line on average, a quarter
of an object's check). A line whose name, up to the first colon, is a plain token (no
parameters, quotes or backslashes: most lines, and the long DESCRIPTIONs) is split at
that colon instead (:class:`_Line`); what it gives is what icalendar gives
(tests/caldav/test_caldav_reader.py), and every other line is icalendar's to read.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator

import icalendar
from icalendar.parser.content_line import Contentline
from icalendar.parser.ical import ComponentIcalParser

from .tzdb import named

KEPT_ZONES = 64
"""How many VTIMEZONE texts are kept parsed (each parse of one is about a third of a
millisecond)."""
KEPT_ZONE_CHARS = 16 << 10
"""The longest VTIMEZONE text kept (real ones are a few hundred characters to a few
thousand): the kept ones hold at most about a megabyte of text."""

_TOKEN = re.compile(r"[\w.-]+")
"""A property name icalendar accepts as it is (its ``NAME``)."""
_COMPONENTS = icalendar.ComponentFactory()
_TYPES = icalendar.TypesFactory.instance()
_BEGIN_ZONE = Contentline("BEGIN:VTIMEZONE")  # type: ignore[no-untyped-call]


def read_all(data: bytes | str) -> list[icalendar.cal.Component]:
    """Every top-level component of ``data`` (raises what icalendar raises for text that
    is not iCalendar: ValueError and its kin). CPU work: off the event loop."""
    components: list[icalendar.cal.Component] = _Parser(data).parse()
    return components


def read(data: bytes | str) -> icalendar.Calendar:
    """The one component of ``data`` (a VCALENDAR, as a rule); ValueError when it holds
    none or several."""
    found = read_all(data)
    if len(found) != 1:
        raise ValueError(f"found {len(found)} components where one is allowed")
    component = found[0]
    return component  # type: ignore[return-value]


class _Parser(ComponentIcalParser):
    """icalendar's parser without its process-wide time zones, reusing the parse of a
    VTIMEZONE text it has seen."""

    def __init__(self, data: bytes | str | list[Contentline]) -> None:
        super().__init__(data, _COMPONENTS, _TYPES)

    def initialize_parsing(self) -> None:
        super().initialize_parsing()  # type: ignore[no-untyped-call]
        self._lines = _Lines(self._content_lines_iterator)
        self._content_lines_iterator = self._lines

    def handle_begin_component(self, vals: str) -> None:
        if len(self._stack) == 1 and vals.upper() == "VTIMEZONE" and self._zone_seen():
            return
        super().handle_begin_component(vals)

    def handle_end_component(self, vals: str) -> None:
        # icalendar's, but for the zone it would keep for the rest of the process.
        if not self._stack:
            raise ValueError("END encountered without an accompanying BEGIN!")
        component = self._stack.pop()
        if self._stack:
            self._stack[-1].add_component(component)
        else:
            self._components.append(component)

    def parse_and_add_property(
        self, name: str, params: icalendar.Parameters, val: str, tzid: str | None,
        line: Contentline,
    ) -> None:  # fmt: skip
        super().parse_and_add_property(
            name, params, val, tzid if tzid is not None and named(tzid) else None, line
        )

    def _zone_seen(self) -> bool:
        """Take the VTIMEZONE that begins here from an earlier parse of the same text;
        False (its lines left to parse) when there is none to take."""
        lines = _block(self._lines)
        zone = _zone(tuple(lines)) if lines[-1:] and _ends_zone(lines[-1]) else None
        if zone is None:
            self._lines.put_back(lines)
            return False
        self._stack[-1].add_component(_copy(zone))
        return True


class _Lines:
    """The content lines the parser iterates over, and those it was handed back."""

    def __init__(self, lines: Iterator[Contentline]) -> None:
        self._lines = lines
        self._back: list[Contentline] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> Contentline:
        if self._back:
            return self._back.pop()
        line = next(self._lines)
        if not line:
            return line  # the empty string icalendar ends the lines with
        strict: bool = getattr(line, "strict", False)
        return _Line(line, strict)  # type: ignore[no-untyped-call]

    def put_back(self, lines: list[Contentline]) -> None:
        """Have ``lines`` come next, in their order."""
        self._back.extend(reversed(lines))


class _Line(Contentline):
    """A content line split at its first colon when what comes before is a plain name."""

    __slots__ = ()

    def raw_parts(self) -> tuple[str, icalendar.Parameters, str]:
        colon = self.find(":")
        if colon > 0 and _TOKEN.fullmatch(self, 0, colon):
            return self[:colon], icalendar.Parameters(), self[colon + 1 :]
        parts: tuple[str, icalendar.Parameters, str] = super().raw_parts()
        return parts


def _block(lines: Iterator[Contentline]) -> list[Contentline]:
    """The lines of a VTIMEZONE after its BEGIN, up to its END (fewer when it is too long
    to keep or does not end)."""
    block: list[Contentline] = []
    depth = chars = 0
    for line in lines:
        block.append(line)
        chars += len(line)
        head = line[:6].upper()
        if head.startswith("BEGIN:"):
            depth += 1
        elif head.startswith("END:"):
            if depth == 0:
                break
            depth -= 1
        if chars > KEPT_ZONE_CHARS:
            break
    return block


def _ends_zone(line: str) -> bool:
    return line.upper().rstrip() == "END:VTIMEZONE"


@functools.lru_cache(maxsize=KEPT_ZONES)
def _zone(lines: tuple[Contentline, ...]) -> icalendar.cal.Component | None:
    """A VTIMEZONE parsed from the lines after its BEGIN (None: they are no VTIMEZONE
    alone, and the caller parses them in place, with whatever error that gives)."""
    try:
        found = _Parser([_BEGIN_ZONE, *lines]).parse()
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    if len(found) != 1 or found[0].name != "VTIMEZONE":
        return None
    zone: icalendar.cal.Component = found[0]
    return zone


def _copy(component: icalendar.cal.Component) -> icalendar.cal.Component:
    """A component of its own for the object (the kept one stays as it was parsed)."""
    twin = copy.copy(component)
    twin.subcomponents = [_copy(sub) for sub in component.subcomponents]
    twin.errors = list(component.errors)
    return twin
