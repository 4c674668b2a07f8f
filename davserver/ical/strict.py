"""What RFC 5545 says a calendar object must not hold, found before it is stored:
bytes that are not UTF-8, control characters, escapes a TEXT value may not carry, and
properties whose values do not parse (an RRULE without a frequency or with a bad part,
a RECURRENCE-ID, DTSTART or EXDATE that is no date...). Each is a reason to refuse the
object as ``valid-calendar-data``; the parser alone accepts them all."""

from __future__ import annotations

import re

import icalendar

from .reader import read_all

_UNFOLD = re.compile(rb"\r?\n[ \t]")
# C0 controls but HTAB, and DEL: never in a content line (RFC 5545 §3.1).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# In TEXT values a backslash escapes only \, ;, , and n or N (RFC 5545 §3.3.11).
_BAD_ESCAPE = re.compile(rb"\\(?![\\;,nN])")
TEXT_PROPERTIES = frozenset(
    {
        b"CALSCALE", b"METHOD", b"PRODID", b"VERSION", b"CATEGORIES", b"CLASS", b"COMMENT",
        b"DESCRIPTION", b"LOCATION", b"RESOURCES", b"STATUS", b"SUMMARY", b"TRANSP",
        b"TZID", b"TZNAME", b"CONTACT", b"RELATED-TO", b"UID", b"ACTION",
    }
)  # fmt: skip
FREQUENCIES = frozenset({"SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"})


def text_problem(data: bytes) -> str | None:
    """Why the bytes of an object break RFC 5545's text rules (None: they do not)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    for number, line in enumerate(_UNFOLD.sub(b"", data).split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if _CONTROL.search(line):
            return f"a control character on line {number}"
        name, _, value = _split(line)
        if name.upper() in TEXT_PROPERTIES and _BAD_ESCAPE.search(value):
            return f"an escape TEXT values may not have, in {name.decode(errors='replace')}"
    return None


class NotOneCalendar(ValueError):
    """Bytes that are not one iCalendar object (the message says why)."""


def one_calendar(data: bytes) -> icalendar.Calendar:
    """The one VCALENDAR ``data`` holds, its text rules checked first;
    :class:`NotOneCalendar` when it breaks them, does not parse, or holds another number
    of objects. CPU work: off the event loop."""
    problem = text_problem(data)
    if problem is not None:
        raise NotOneCalendar(f"not valid iCalendar: {problem}")
    try:
        found = read_all(data)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise NotOneCalendar(f"not iCalendar: {exc}") from exc
    calendar = found[0] if len(found) == 1 else None
    if not isinstance(calendar, icalendar.Calendar):
        raise NotOneCalendar("expected exactly one VCALENDAR")
    return calendar


def _split(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(name, parameters, value) of a content line; quoted parameter values may hold ":"."""
    head_end = 0
    quoted = False
    for i, ch in enumerate(line):
        if ch == 0x22:  # "
            quoted = not quoted
        elif ch == 0x3A and not quoted:  # :
            head_end = i
            break
    else:
        return line, b"", b""
    head, value = line[:head_end], line[head_end + 1 :]
    name, _, params = head.partition(b";")
    return name.strip(), params, value


def value_problem(calendar: icalendar.Calendar) -> str | None:
    """Why a property value of the parsed object is not what its type allows."""
    for component in calendar.walk():
        errors = getattr(component, "errors", None)
        if errors:
            prop, message = errors[0]
            return f"{prop} of {component.name}: {message}"
        for name in ("RRULE", "EXRULE"):
            for rule in _all(component.get(name)):
                freq = rule.get("FREQ") if isinstance(rule, icalendar.vRecur) else None
                values = freq if isinstance(freq, list) else [freq]
                if not values or not all(str(v).upper() in FREQUENCIES for v in values):
                    return f"{name} of {component.name} has no valid FREQ"
    return None


def _all(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
