"""The ``C:calendar-data`` a REPORT asks for: the whole object, some components and
properties of it (RFC 4791 §9.6), or its instances in a range expanded (§9.6.5)."""

from __future__ import annotations

from dataclasses import dataclass, field

import icalendar
from lxml import etree

from davserver.dav.xml import escape

from .names import c
from .timerange import TimeRange, as_utc, instances, parse_range


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

    @property
    def verbatim(self) -> bool:
        """Whether the stored bytes can be sent as they are."""
        return self.comp is None and self.expand is None


def _comp_spec(el: etree._Element) -> CompSpec:
    spec = CompSpec(el.get("name", "").upper())
    if el.find(c("allprop")) is None:
        names = {p.get("name", "").upper() for p in el.iterfind(c("prop"))}
        if names or el.find(c("comp")) is not None or el.find(c("allcomp")) is not None:
            spec.all_props = False
            spec.props = names
    if el.find(c("allcomp")) is None:
        subs = {s.get("name", "").upper(): _comp_spec(s) for s in el.iterfind(c("comp"))}
        if subs or el.find(c("prop")) is not None:
            spec.all_comps = False
            spec.comps = subs
    return spec


def parse(el: etree._Element) -> CalendarData:
    """Read a ``C:calendar-data`` element of a REPORT's ``D:prop``."""
    comp = el.find(c("comp"))
    expand = el.find(c("expand"))
    return CalendarData(
        comp=_comp_spec(comp) if comp is not None else None,
        expand=parse_range(expand.get("start"), expand.get("end")) if expand is not None else None,
    )


def _keep(component: icalendar.cal.Component, spec: CompSpec) -> icalendar.cal.Component:
    kept = component.__class__()
    kept.name = component.name
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


def _expanded(calendar: icalendar.Calendar, rng: TimeRange) -> icalendar.Calendar:
    """The instances in ``rng`` as separate components in UTC, without recurrence rules."""
    out = icalendar.Calendar()
    for name, value in calendar.property_items(recursive=False, sorted=False):
        if name not in ("BEGIN", "END"):
            out.add(name, value, encode=False)
    for kind in {sub.name for sub in calendar.subcomponents if sub.name != "VTIMEZONE"}:
        for occ in instances(calendar, kind, rng):
            recurring = "RRULE" in occ or "RDATE" in occ or "RECURRENCE-ID" in occ
            for key in ("RRULE", "RDATE", "EXDATE"):
                occ.pop(key, None)
            for key in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
                if key in occ and hasattr(occ[key].dt, "hour"):
                    occ[key] = icalendar.vDDDTypes(as_utc(occ[key].dt))
            if recurring and "RECURRENCE-ID" not in occ and "DTSTART" in occ:
                occ.add("RECURRENCE-ID", occ["DTSTART"].dt)
            out.add_component(occ)
    return out


def render(data: bytes, request: CalendarData) -> str:
    """The ``C:calendar-data`` element for a stored object and what was asked of it."""
    if request.verbatim:
        text = data.decode("utf-8", "replace")
    else:
        calendar = icalendar.Calendar.from_ical(data)
        if request.expand is not None:
            calendar = _expanded(calendar, request.expand)
        if request.comp is not None:
            calendar = _keep(calendar, request.comp)
        text = calendar.to_ical().decode("utf-8", "replace")
    return f"<C:calendar-data>{escape(text)}</C:calendar-data>"
