"""Partial retrieval of calendar objects (RFC 4791 §9.6): some components and properties
of an object, its instances in a range expanded (§9.6.5), or only the overrides that
matter in a range (limit-recurrence-set, §9.6.6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TypeVar

import icalendar

from .expand import expanded
from .expand_text import expand_known
from .spans import END_CLOSED, Span, absolute, instant, overlaps, row_span
from .timerange import TimeRange
from .zones import parse

_C = TypeVar("_C", bound=icalendar.cal.Component)


@dataclass(slots=True)
class CompSpec:
    """Which properties and subcomponents of a component to keep."""

    name: str
    all_props: bool = True
    props: set[str] = field(default_factory=set)
    all_comps: bool = True
    comps: dict[str, CompSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CalendarData:
    """A parsed ``C:calendar-data`` request element."""

    comp: CompSpec | None = None
    expand: TimeRange | None = None
    limit: TimeRange | None = None
    zone: tzinfo | None = None
    """The zone floating times and dates are taken in for ``expand`` and ``limit``
    (None: UTC); the request's ``timezone``, else the calendar's."""

    @property
    def verbatim(self) -> bool:
        """Whether the stored bytes can be sent as they are."""
        return self.comp is None and self.expand is None and self.limit is None


def _keep(component: _C, spec: CompSpec) -> _C:
    kept = component.__class__()
    for name, value in component.property_items(recursive=False, sorted=False):
        if name in ("BEGIN", "END"):
            continue
        if spec.all_props or name in spec.props:
            kept.add(name, value, encode=False)
    for sub in component.subcomponents:
        if spec.all_comps:
            kept.add_component(sub)
        elif sub.name in spec.comps:
            kept.add_component(_keep(sub, spec.comps[sub.name]))
    return kept


def _limited(
    calendar: icalendar.Calendar, rng: TimeRange, zone: tzinfo | None
) -> icalendar.Calendar:
    """The object with only the overridden instances that matter in the range: those
    that happen in it, were moved out of it, or (THISANDFUTURE) change it."""
    out = icalendar.Calendar()
    for name, value in calendar.property_items(recursive=False, sorted=False):
        if name not in ("BEGIN", "END"):
            out.add(name, value, encode=False)
    for sub in calendar.subcomponents:
        if "RECURRENCE-ID" not in sub or _override_matters(sub, rng, zone):
            out.add_component(sub)
    return out


def _override_matters(
    component: icalendar.cal.Component, rng: TimeRange, zone: tzinfo | None
) -> bool:
    rid = component.get("RECURRENCE-ID")
    moment = instant(rid.dt, zone)
    if str(rid.params.get("RANGE", "")).upper() == "THISANDFUTURE" and moment < rng.hi:
        return True
    span = row_span(component, None, None, 0)
    was = Span(moment, moment, END_CLOSED, 0)
    if overlaps(was, rng.lo, rng.hi):
        return True
    return span is not None and overlaps(absolute(span, zone), rng.lo, rng.hi)


def text(
    data: bytes,
    request: CalendarData,
    spans: Sequence[Span] | None = None,
    parsed: icalendar.Calendar | None = None,
) -> str:
    """The iCalendar text of a stored object as the request asks for it (parsing, when
    needed, is CPU work: run it off the event loop). ``spans``: the index's spans of the
    object when they cover the expand range (it then expands without parsing when it
    can); ``parsed``: the object parsed from ``data`` already (it is not changed)."""
    found = None
    if request.verbatim:
        found = data.decode("utf-8", "replace")
    elif request.expand is not None and request.comp is None and spans is not None:
        found = expand_known(data, spans, request.expand, request.zone)
    if found is None:
        calendar = parsed if parsed is not None else parse(data)
        if request.expand is not None:
            calendar = expanded(calendar, request.expand, request.zone)
        elif request.limit is not None:
            calendar = _limited(calendar, request.limit, request.zone)
        if request.comp is not None:
            calendar = _keep(calendar, request.comp)
        found = calendar.to_ical().decode("utf-8", "replace")
    return found
