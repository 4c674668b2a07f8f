"""``C:expand`` (RFC 4791 §9.6.5): the instances of an object that meet a range, each a
component of its own with its times in UTC (floating ones placed in the query's zone;
dates stay dates), overrides applied, without recurrence properties or VTIMEZONEs. Which
instances meet the range is the time-range test's answer (the same spans); their contents
come from recurring-ical-events."""

from __future__ import annotations

from datetime import datetime, tzinfo

import icalendar

from .spans import absolute, kind_of, main_components, occurrences_between, overlaps
from .timerange import TimeRange, as_utc

_RECURRENCE = ("RRULE", "RDATE", "EXDATE", "EXRULE")
_TIMES = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID")


def expanded(
    calendar: icalendar.Calendar, rng: TimeRange, zone: tzinfo | None = None
) -> icalendar.Calendar:
    """The instances of ``calendar`` in ``rng`` as separate components in UTC (floating
    times in ``zone``, None: UTC)."""
    out = icalendar.Calendar()
    for name, value in calendar.property_items(recursive=False, sorted=False):
        if name not in ("BEGIN", "END"):
            out.add(name, value, encode=False)
    main = main_components(calendar)
    for kind in dict.fromkeys(kind_of(m) for m in main):
        for span, occ in occurrences_between(calendar, kind, rng.lo, rng.hi):
            if not overlaps(absolute(span, zone), rng.lo, rng.hi):
                continue
            if occ is None:
                out.add_component(_in_utc(main[span.source].copy(), zone, recurring=False))
                _copy_subcomponents(main[span.source], out.subcomponents[-1])
            else:
                instance = occ.as_component(False)  # type: ignore[attr-defined]
                out.add_component(_in_utc(instance, zone, recurring=True))
    return out


def _copy_subcomponents(source: icalendar.cal.Component, copy: icalendar.cal.Component) -> None:
    """``Component.copy()`` leaves the subcomponents (VALARMs) behind."""
    for sub in source.subcomponents:
        copy.add_component(sub)


def _in_utc(
    component: icalendar.cal.Component, zone: tzinfo | None, *, recurring: bool
) -> icalendar.cal.Component:
    """An instance with recurrence properties dropped and date-times in UTC."""
    for key in _RECURRENCE:
        component.pop(key, None)
    for key in _TIMES:
        prop = component.get(key)
        if prop is not None and isinstance(prop.dt, datetime):
            component[key] = icalendar.vDDDTypes(as_utc(prop.dt, zone))
    if not recurring:
        component.pop("RECURRENCE-ID", None)
    return component
