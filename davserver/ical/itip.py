"""iTIP messages (RFC 5546) for implicit scheduling (RFC 6638): the REQUEST, CANCEL and
REPLY a change calls for, and what each does to the copies it reaches: an attendee's
copy made or cancelled, the organizer's copy told of a reply, SCHEDULE-STATUS set.

Pure functions of parsed objects (icalendar); instances an attendee replies to that the
organizer's copy does not override yet are made with recurring-ical-events.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import icalendar
import recurring_ical_events

from .meeting import InvalidMessage, Meeting, Rid, address, params, rid_of, scheduled, values
from .spans import moment
from .strict import NotOneCalendar, one_calendar
from .zones import govern

PRODID = "-//davserver//scheduling//EN"
# Parameters that steer the server's scheduling: kept in the stored copies, never sent.
SERVER_PARAMS = ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")
# What an organizer's change may touch without the attendees being told (RFC 6638 §3.2.10
# and §3.2.1.2: the organizer's own alarms, the stamps, the participation the attendees
# replied with, the server's status parameters).
_PRIVATE = ("DTSTAMP", "LAST-MODIFIED", "CREATED", "SEQUENCE", "TRANSP")
# What a REPLY carries of each instance replied to (RFC 5546 §3.2.3).
_REPLY_KEEP = ("UID", "RECURRENCE-ID", "SEQUENCE", "DTSTART", "DTEND", "DUE", "SUMMARY")


def _message(method: str, source: icalendar.Calendar) -> icalendar.Calendar:
    out = icalendar.Calendar()
    out.add("PRODID", PRODID)
    out.add("VERSION", "2.0")
    out.add("METHOD", method)
    for sub in source.subcomponents:
        if sub.name == "VTIMEZONE":
            out.add_component(copy.deepcopy(sub))
    return out


def _stamp(component: icalendar.cal.Component, now: datetime) -> None:
    component.pop("DTSTAMP", None)
    component.add("DTSTAMP", now.astimezone(UTC))


def _strip_server_params(component: icalendar.cal.Component) -> None:
    for name in ("ORGANIZER", "ATTENDEE"):
        for value in values(component, name):
            p = params(value)
            for key in SERVER_PARAMS:
                p.pop(key, None)


def _without_alarms(component: icalendar.cal.Component) -> icalendar.cal.Component:
    out = copy.deepcopy(component)
    out.subcomponents = [s for s in out.subcomponents if s.name != "VALARM"]
    return out


def _attends(component: icalendar.cal.Component, who: str) -> bool:
    return any(address(a) == who for a in values(component, "ATTENDEE"))


def serialize(calendar: icalendar.Calendar) -> bytes:
    """The object's iCalendar bytes."""
    data: bytes = calendar.to_ical()
    return data


def _rid_value(component: icalendar.cal.Component) -> object:
    """The RECURRENCE-ID of an override as its date or date-time."""
    return getattr(component.get("RECURRENCE-ID"), "dt", None)


def method_of(calendar: icalendar.Calendar) -> str:
    """The METHOD of a message ("" when it has none)."""
    return str(calendar.get("METHOD", "")).upper()


def request(calendar: icalendar.Calendar, who: str, now: datetime) -> icalendar.Calendar | None:
    """The REQUEST that brings ``who`` the components they attend (None: none). An
    attendee of the master who is left out of an override gets that instance excluded
    (EXDATE), as RFC 5546 §3.2.2 has it."""
    components = scheduled(calendar)
    theirs = [c for c in components if _attends(c, who)]
    if not theirs:
        return None
    out = _message("REQUEST", calendar)
    master_attended = any(rid_of(c) is None for c in theirs)
    excluded = [c for c in components if rid_of(c) is not None and c not in theirs]
    for component in theirs:
        sent = _without_alarms(component)
        _strip_server_params(sent)
        _stamp(sent, now)
        if master_attended and rid_of(component) is None:
            for override in excluded:
                sent.add("EXDATE", _rid_value(override))
        out.add_component(sent)
    return out


def cancel(
    calendar: icalendar.Calendar, who: str, now: datetime, rids: Iterable[Rid] | None = None
) -> icalendar.Calendar | None:
    """The CANCEL telling ``who`` that the components they attended (or those of
    ``rids``) are called off (None: they attended none)."""
    wanted = set(rids) if rids is not None else None
    theirs = [
        c
        for c in scheduled(calendar)
        if _attends(c, who) and (wanted is None or rid_of(c) in wanted)
    ]
    if not theirs:
        return None
    out = _message("CANCEL", calendar)
    for component in theirs:
        sent = _without_alarms(component)
        attendees = [a for a in values(sent, "ATTENDEE") if address(a) == who]
        sent.pop("ATTENDEE", None)
        for a in attendees:
            sent.add("ATTENDEE", a)
        sent.pop("STATUS", None)
        sent.add("STATUS", "CANCELLED")
        _strip_server_params(sent)
        _stamp(sent, now)
        out.add_component(sent)
    return out


def reply(
    calendar: icalendar.Calendar,
    who: str,
    now: datetime,
    rids: Iterable[Rid],
    partstat: str | None = None,
) -> icalendar.Calendar | None:
    """The REPLY of attendee ``who`` for the components ``rids`` of their copy, with
    the participation each says (or ``partstat`` for all: DECLINED when they deleted
    it). None when the copy has none of them."""
    wanted = set(rids)
    out = _message("REPLY", calendar)
    found = False
    for component in scheduled(calendar):
        if rid_of(component) not in wanted:
            continue
        mine = [a for a in values(component, "ATTENDEE") if address(a) == who]
        if not mine:
            continue
        sent = _without_alarms(component)
        for name in list(sent.keys()):
            if name not in _REPLY_KEEP and name != "ORGANIZER":
                sent.pop(name)
        attendee = copy.deepcopy(mine[0])
        if partstat is not None:
            params(attendee)["PARTSTAT"] = partstat
        sent.add("ATTENDEE", attendee)
        _strip_server_params(sent)
        _stamp(sent, now)
        out.add_component(sent)
        found = True
    return out if found else None


def significant(old: icalendar.Calendar, new: icalendar.Calendar) -> bool:
    """Whether an organizer's change is one the attendees must hear of: anything but the
    organizer's alarms, stamps, the participation the attendees replied with and the
    server's status parameters."""
    return _canonical(old) != _canonical(new)


def _canonical(calendar: icalendar.Calendar) -> list[bytes]:
    out = []
    for component in scheduled(calendar):
        c = _without_alarms(component)
        for name in _PRIVATE:
            c.pop(name, None)
        for value in values(c, "ATTENDEE"):
            params(value).pop("PARTSTAT", None)
            params(value).pop("RSVP", None)
        _strip_server_params(c)
        out.append(c.to_ical())
    return sorted(out)


_WHEN = ("DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE")


def rescheduled(old: icalendar.Calendar, new: icalendar.Calendar) -> bool:
    """Whether an organizer's change moves the meeting in time (its instances' times,
    its recurrence, which instances are overridden): the change after which the
    attendees' earlier answers no longer hold."""
    return _times(old) != _times(new)


def _times(calendar: icalendar.Calendar) -> dict[Rid, list[tuple[str, bytes]]]:
    out: dict[Rid, list[tuple[str, bytes]]] = {}
    for component in scheduled(calendar):
        found = out.setdefault(rid_of(component), [])
        for name in _WHEN:
            found.extend((name, _ical(value)) for value in values(component, name))
    return out


def _ical(value: object) -> bytes:
    to_ical = getattr(value, "to_ical", None)
    return to_ical() if callable(to_ical) else str(value).encode()


def keep_partstats(new: icalendar.Calendar, old: icalendar.Calendar, organizer: str) -> bool:
    """Give the attendees of ``new`` the participation they have in ``old`` (what their
    replies set), component by component; True when something changed."""
    known: dict[tuple[Rid, str], str] = {}
    for component in scheduled(old):
        rid = rid_of(component)
        for value in values(component, "ATTENDEE"):
            state = params(value).get("PARTSTAT")
            if state is not None:
                known[(rid, address(value))] = str(state)
    changed = False
    for component in scheduled(new):
        rid = rid_of(component)
        for value in values(component, "ATTENDEE"):
            who = address(value)
            state = known.get((rid, who))
            p = params(value)
            if who != organizer and state is not None and str(p.get("PARTSTAT", "")) != state:
                p["PARTSTAT"] = state
                changed = True
    return changed


def set_schedule_status(calendar: icalendar.Calendar, statuses: Mapping[str, str]) -> bool:
    """Set SCHEDULE-STATUS on the ATTENDEEs named in ``statuses``; True when it changed."""
    changed = False
    for component in scheduled(calendar):
        for value in values(component, "ATTENDEE"):
            status = statuses.get(address(value))
            if status is not None and params(value).get("SCHEDULE-STATUS") != status:
                params(value)["SCHEDULE-STATUS"] = status
                changed = True
    return changed


def set_organizer_status(calendar: icalendar.Calendar, status: str) -> bool:
    """Set SCHEDULE-STATUS on the ORGANIZER of every component; True when it changed."""
    changed = False
    for component in scheduled(calendar):
        organizer = component.get("ORGANIZER")
        if organizer is not None and params(organizer).get("SCHEDULE-STATUS") != status:
            params(organizer)["SCHEDULE-STATUS"] = status
            changed = True
    return changed


def attendee_copy(
    message: icalendar.Calendar, old: icalendar.Calendar | None
) -> icalendar.Calendar:
    """An attendee's copy after a REQUEST: the message's components (without METHOD),
    with the alarms the attendee had set on each kept."""
    out = icalendar.Calendar()
    for key, value in message.items():
        if key != "METHOD":
            out.add(key, value)
    alarms: dict[Rid, list[icalendar.cal.Component]] = {}
    if old is not None:
        for component in scheduled(old):
            found = [s for s in component.subcomponents if s.name == "VALARM"]
            if found:
                alarms[rid_of(component)] = found
    for sub in message.subcomponents:
        kept = copy.deepcopy(sub)
        for alarm in alarms.get(rid_of(sub), []) if sub.name != "VTIMEZONE" else []:
            kept.add_component(copy.deepcopy(alarm))
        out.add_component(kept)
    return out


def cancelled_copy(copy_: icalendar.Calendar, message: icalendar.Calendar) -> bool:
    """Apply a CANCEL to an attendee's copy: the whole meeting (a CANCEL of the master)
    or the instances it names marked CANCELLED, an instance the copy does not override
    excluded from the master. True when the copy changed."""
    rids = {rid_of(c) for c in scheduled(message)}
    components = scheduled(copy_)
    changed = False
    by_rid = {rid_of(c): c for c in components}
    for rid in rids if None not in rids else by_rid:
        target = by_rid.get(rid)
        if target is not None:
            if str(target.get("STATUS", "")).upper() != "CANCELLED":
                target.pop("STATUS", None)
                target.add("STATUS", "CANCELLED")
                changed = True
            continue
        master = by_rid.get(None)
        if master is not None and rid is not None:
            source = next(c for c in scheduled(message) if rid_of(c) == rid)
            master.add("EXDATE", _rid_value(source))
            changed = True
    return changed


def apply_reply(calendar: icalendar.Calendar, message: icalendar.Calendar) -> bool:
    """Apply an attendee's REPLY to the organizer's copy: their PARTSTAT in each
    component replied to (an instance the copy does not override yet becomes an
    override made from the master). True when the copy changed."""
    changed = False
    for sent in scheduled(message):
        attendees = values(sent, "ATTENDEE")
        if len(attendees) != 1:
            continue
        who = address(attendees[0])
        state = str(params(attendees[0]).get("PARTSTAT", "NEEDS-ACTION")).upper()
        rid = rid_of(sent)
        target = next((c for c in scheduled(calendar) if rid_of(c) == rid), None)
        if target is None and rid is not None:
            target = _instance(calendar, rid)
            if target is None:
                continue
            calendar.add_component(target)
        if target is None:
            continue
        for value in values(target, "ATTENDEE"):
            if address(value) == who and str(params(value).get("PARTSTAT", "")) != state:
                params(value)["PARTSTAT"] = state
                changed = True
    return changed


def _instance(calendar: icalendar.Calendar, rid: float) -> icalendar.cal.Component | None:
    """The instance of the master at ``rid`` as an override (computed by
    recurring-ical-events), or None when the master has no such instance."""
    master = next((c for c in scheduled(calendar) if rid_of(c) is None), None)
    if master is None:
        return None
    at = moment(rid)
    for occurrence in recurring_ical_events.of(calendar, components=[str(master.name)]).at(at):
        if rid_of(occurrence) == rid:
            # A copy: the library's instance shares property values with the master.
            found: icalendar.cal.Component = copy.deepcopy(occurrence)
            found.subcomponents = [s for s in found.subcomponents if s.name != "VALARM"]
            return found
    return None


def changed_partstats(old: Meeting | None, new: Meeting, who: str) -> list[Rid]:
    """The components whose participation ``who`` changed between two versions of their
    copy (with no earlier version: those where they answered something)."""
    now = new.partstats(who)
    before = old.partstats(who) if old is not None else {}
    out = []
    for rid, state in now.items():
        earlier = before.get(rid, before.get(None, "NEEDS-ACTION"))
        if state != earlier:
            out.append(rid)
    return sorted(out, key=lambda r: (r is not None, r or 0.0))


def now_utc() -> datetime:
    """The current time, as messages are stamped with it."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Posted:
    """An iTIP message a client POSTs to its outbox (RFC 6638 §5), checked in shape."""

    method: str
    component: str
    """VFREEBUSY, VEVENT or VTODO."""
    calendar: icalendar.Calendar
    uid: str
    organizer: str | None
    attendees: tuple[str, ...]
    """Every ATTENDEE of every component, once each, in order."""
    start: datetime | None = None
    end: datetime | None = None
    """The range a VFREEBUSY request asks about."""


POST_METHODS = {"VFREEBUSY": ("REQUEST",), "VEVENT": ("REQUEST", "CANCEL", "REPLY"),
                "VTODO": ("REQUEST", "CANCEL", "REPLY")}  # fmt: skip


def posted(data: bytes) -> Posted:
    """The message in a POST body; :class:`InvalidMessage` naming the precondition it
    fails: ``valid-calendar-data`` (not iCalendar), ``valid-scheduling-message`` (no
    METHOD, one it cannot take, components of several types or none, no ORGANIZER, a
    VFREEBUSY without its range). CPU work: off the event loop."""
    try:
        calendar = one_calendar(data)
    except NotOneCalendar as exc:
        raise InvalidMessage("valid-calendar-data", str(exc)) from exc
    govern(calendar, data)
    method = method_of(calendar)
    if not method:
        raise InvalidMessage("valid-scheduling-message", "an iTIP message needs a METHOD")
    main = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    kinds = {str(c.name) for c in main}
    if len(kinds) != 1:
        raise InvalidMessage("valid-scheduling-message", "one type of component is needed")
    kind = kinds.pop()
    if method not in POST_METHODS.get(kind, ()):
        raise InvalidMessage("valid-scheduling-message", f"{method} of {kind} is not handled")
    uids = {str(c.get("UID", "")) for c in main}
    if len(uids) != 1 or "" in uids:
        raise InvalidMessage("valid-scheduling-message", "the components need one shared UID")
    organizers = {address(o) for c in main if (o := c.get("ORGANIZER")) is not None}
    if len(organizers) != 1:
        raise InvalidMessage("valid-scheduling-message", "one ORGANIZER is needed")
    attendees = tuple(dict.fromkeys(address(a) for c in main for a in values(c, "ATTENDEE")))
    start = end = None
    if kind == "VFREEBUSY":
        if len(main) != 1:
            raise InvalidMessage("valid-scheduling-message", "one VFREEBUSY is needed")
        start, end = _range(main[0])
    return Posted(method, kind, calendar, uids.pop(), organizers.pop(), attendees, start, end)


def _range(component: icalendar.cal.Component) -> tuple[datetime, datetime]:
    """The UTC range of a free-busy request (DTSTART, DTEND)."""
    bounds = []
    for name in ("DTSTART", "DTEND"):
        value = getattr(component.get(name), "dt", None)
        if not isinstance(value, datetime):
            raise InvalidMessage("valid-scheduling-message", f"a date-time {name} is needed")
        bounds.append(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    start, end = bounds
    if end <= start:
        raise InvalidMessage("valid-scheduling-message", "DTEND must come after DTSTART")
    return start.astimezone(UTC), end.astimezone(UTC)
