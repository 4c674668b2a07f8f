"""Who organizes and who attends a calendar object (RFC 5546, RFC 6638 §3.1): the
ORGANIZER and the ATTENDEEs of each of its components, read once from a parsed object.

A component is named by its RECURRENCE-ID as POSIX seconds (:data:`Rid`; None for the
master), so that an override written with a TZID in one copy and in UTC in another is
the same instance. Calendar user addresses are compared in the form :func:`address`
gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import icalendar

from .spans import timestamp

SCHEDULED = ("VEVENT", "VTODO")
"""The components implicit scheduling handles (RFC 6638 §3.1)."""
Rid = float | None
"""An instance (its RECURRENCE-ID in POSIX seconds), or None for the master."""


class InvalidMessage(ValueError):
    """An object or iTIP message that scheduling cannot take; ``condition`` is the local
    name of the CalDAV precondition it fails."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(reason)
        self.condition = condition
        self.reason = reason


def address(value: object) -> str:
    """A calendar user address in the form addresses are compared in: ``mailto:`` and
    the mail address folded to lower case, other URIs as given (without spaces)."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        return "mailto:" + text[7:].strip().lower()
    return text


def params(prop: object) -> icalendar.Parameters:
    """The parameters of a property value (an empty set for a value without any)."""
    found = getattr(prop, "params", None)
    return found if found is not None else icalendar.Parameters()


def values(component: icalendar.cal.Component, name: str) -> list[object]:
    """Every value of a property that may occur more than once."""
    found = component.get(name)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def rid_of(component: icalendar.cal.Component) -> Rid:
    """The instance a component overrides (None: the master)."""
    prop = component.get("RECURRENCE-ID")
    dt = getattr(prop, "dt", None)
    return timestamp(dt) if dt is not None else None


def scheduled(calendar: icalendar.Calendar) -> list[icalendar.cal.Component]:
    """The VEVENT and VTODO components of an object, in order."""
    return [c for c in calendar.subcomponents if c.name in SCHEDULED]


@dataclass(frozen=True, slots=True)
class Attendee:
    """One ATTENDEE of one component."""

    address: str
    partstat: str = "NEEDS-ACTION"
    agent: str = "SERVER"
    """SCHEDULE-AGENT: SERVER (the server delivers), CLIENT or NONE (it does not)."""
    force: bool = False
    """SCHEDULE-FORCE-SEND=REQUEST: deliver even when nothing changed."""


@dataclass(frozen=True, slots=True)
class Meeting:
    """The scheduling view of one calendar object: its UID, main component type,
    organizer, and the attendees of each component (the master and the overrides)."""

    uid: str
    component: str
    organizer: str
    organizer_agent: str
    attendees: dict[Rid, dict[str, Attendee]] = field(default_factory=dict)
    status: str = ""
    """The master's STATUS (CANCELLED: the organizer called it off)."""

    def everyone(self) -> set[str]:
        """The addresses attending some component."""
        return {a for found in self.attendees.values() for a in found}

    def instances_of(self, who: str) -> set[Rid]:
        """The components ``who`` attends."""
        return {rid for rid, found in self.attendees.items() if who in found}

    def partstats(self, who: str) -> dict[Rid, str]:
        """``who``'s participation in each component they attend."""
        return {rid: found[who].partstat for rid, found in self.attendees.items() if who in found}

    def attendee(self, who: str) -> Attendee | None:
        """``who`` as the master lists them (else as the first component that does)."""
        for found in self.attendees.values():
            if who in found:
                return found[who]
        return None


def meeting(calendar: icalendar.Calendar) -> Meeting | None:
    """The meeting an object holds, or None when it is no scheduling object (no
    ORGANIZER, or no event or task). :class:`InvalidMessage` when its components name
    different organizers (RFC 6638 §3.2.4.1, same-organizer-in-all-components)."""
    components = scheduled(calendar)
    if not components:
        return None
    organizers = {address(o) for c in components if (o := c.get("ORGANIZER")) is not None}
    if not organizers:
        return None
    if len(organizers) > 1:
        raise InvalidMessage(
            "same-organizer-in-all-components", "the components name different organizers"
        )
    organizer = organizers.pop()
    first = next(c for c in components if c.get("ORGANIZER") is not None)
    agent = str(params(first.get("ORGANIZER")).get("SCHEDULE-AGENT", "SERVER")).upper()
    attendees: dict[Rid, dict[str, Attendee]] = {}
    status = ""
    for component in components:
        rid = rid_of(component)
        if rid is None:
            status = str(component.get("STATUS", "")).upper()
        found = attendees.setdefault(rid, {})
        for value in values(component, "ATTENDEE"):
            p = params(value)
            who = address(value)
            found[who] = Attendee(
                who,
                str(p.get("PARTSTAT", "NEEDS-ACTION")).upper(),
                str(p.get("SCHEDULE-AGENT", "SERVER")).upper(),
                str(p.get("SCHEDULE-FORCE-SEND", "")).upper() == "REQUEST",
            )
    uid = str(first.get("UID", ""))
    return Meeting(uid, str(first.name), organizer, agent, attendees, status)


def role(found: Meeting, mine: set[str]) -> str | None:
    """What a user with the addresses ``mine`` is to a meeting: ``organizer``,
    ``attendee``, or None (neither: it is no scheduling object of theirs)."""
    if found.organizer in mine:
        return "organizer"
    if found.everyone() & mine:
        return "attendee"
    return None
