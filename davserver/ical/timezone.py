"""Time zones given as iCalendar text: a calendar's ``calendar-timezone`` property and the
``timezone`` of a calendar-query are a VCALENDAR holding exactly one VTIMEZONE."""

from __future__ import annotations

from .reader import read


def timezone_problem(text: str) -> str | None:
    """Why ``text`` is not one VCALENDAR with exactly one VTIMEZONE (None: it is). Parsing
    is CPU work: call it off the event loop."""
    try:
        calendar = read(text)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        return f"not iCalendar: {exc}"
    if calendar.name != "VCALENDAR":
        return "not a VCALENDAR"
    zones = [s for s in calendar.subcomponents if s.name == "VTIMEZONE"]
    if len(zones) != 1:
        return f"{len(zones)} VTIMEZONE components instead of one"
    if "TZID" not in zones[0]:
        return "a VTIMEZONE without TZID"
    errors = [e for part in calendar.walk() for e in getattr(part, "errors", [])]
    if errors:
        return f"{errors[0][0]}: {errors[0][1]}"
    return None
