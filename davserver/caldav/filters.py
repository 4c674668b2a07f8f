"""calendar-query filters (RFC 4791 §9.7): comp-filter, prop-filter, param-filter,
is-not-defined, text-match and time-range, evaluated against a parsed calendar object."""

from __future__ import annotations

from dataclasses import dataclass, field

import icalendar
from lxml import etree

from davserver.dav.errors import DAVError

from .names import C, c
from .timerange import TimeRange, as_utc, instances, parse_range

COLLATIONS = ("i;ascii-casemap", "i;octet")
# Components whose time-range test counts recurrence instances.
_SCHEDULED = {"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"}


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A substring test on a value."""

    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False

    def matches(self, value: str) -> bool:
        """Whether ``value`` passes (negation applied)."""
        if self.collation == "i;octet":
            found = self.text in value
        else:
            found = self.text.lower() in value.lower()
        return found != self.negate


@dataclass(frozen=True, slots=True)
class ParamFilter:
    """A test on a parameter of a property."""

    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass(frozen=True, slots=True)
class PropFilter:
    """A test on the properties of a component."""

    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    text_match: TextMatch | None = None
    params: tuple[ParamFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class CompFilter:
    """A test on the components named ``name``."""

    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    props: tuple[PropFilter, ...] = ()
    comps: tuple[CompFilter, ...] = field(default=())

    def component_names(self) -> set[str]:
        """The component types this filter can only be met by (empty: any)."""
        if self.is_not_defined:
            return set()
        return {sub.name for sub in self.comps if not sub.is_not_defined}


def _text_match(el: etree._Element | None) -> TextMatch | None:
    if el is None:
        return None
    collation = el.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise DAVError(403, f"collation {collation}", condition=f"{{{C}}}supported-collation")
    return TextMatch(el.text or "", collation, el.get("negate-condition", "no") == "yes")


def _time_range(el: etree._Element) -> TimeRange | None:
    tr = el.find(c("time-range"))
    return parse_range(tr.get("start"), tr.get("end")) if tr is not None else None


def parse_comp_filter(el: etree._Element) -> CompFilter:
    """Read a ``C:comp-filter`` element."""
    return CompFilter(
        name=el.get("name", "").upper(),
        is_not_defined=el.find(c("is-not-defined")) is not None,
        time_range=_time_range(el),
        props=tuple(_prop_filter(p) for p in el.iterfind(c("prop-filter"))),
        comps=tuple(parse_comp_filter(s) for s in el.iterfind(c("comp-filter"))),
    )


def _prop_filter(el: etree._Element) -> PropFilter:
    return PropFilter(
        name=el.get("name", "").upper(),
        is_not_defined=el.find(c("is-not-defined")) is not None,
        time_range=_time_range(el),
        text_match=_text_match(el.find(c("text-match"))),
        params=tuple(
            ParamFilter(
                name=p.get("name", "").upper(),
                is_not_defined=p.find(c("is-not-defined")) is not None,
                text_match=_text_match(p.find(c("text-match"))),
            )
            for p in el.iterfind(c("param-filter"))
        ),
    )


def parse_filter(el: etree._Element | None) -> CompFilter:
    """The top comp-filter of a ``C:filter`` element (which must test VCALENDAR)."""
    top = el.find(c("comp-filter")) if el is not None else None
    if top is None or top.get("name", "").upper() != "VCALENDAR":
        raise DAVError(403, "the filter must test VCALENDAR", condition=f"{{{C}}}valid-filter")
    return parse_comp_filter(top)


def matches(calendar: icalendar.Calendar, flt: CompFilter) -> bool:
    """Whether a calendar object resource passes the top filter."""
    return calendar.name == "VCALENDAR" and _component_passes(calendar, flt, calendar)


def _component_passes(
    component: icalendar.cal.Component, flt: CompFilter, calendar: icalendar.Calendar
) -> bool:
    for prop in flt.props:
        if not _prop_passes(component, prop):
            return False
    for sub in flt.comps:
        named = [s for s in component.subcomponents if s.name == sub.name]
        if sub.is_not_defined:
            if named:
                return False
            continue
        if not named:
            return False
        if sub.time_range is not None and sub.name in _SCHEDULED and component is calendar:
            # Recurring components: some instance must fall in the range and pass the rest.
            hits = instances(calendar, sub.name, sub.time_range)
            rest = CompFilter(sub.name, props=sub.props, comps=sub.comps)
            if not any(_component_passes(h, rest, calendar) for h in hits):
                return False
            continue
        if not any(_one_passes(s, sub, calendar) for s in named):
            return False
    return True


def _one_passes(
    component: icalendar.cal.Component, flt: CompFilter, calendar: icalendar.Calendar
) -> bool:
    if flt.time_range is not None and not _component_in_range(component, flt.time_range):
        return False
    return _component_passes(component, flt, calendar)


def _component_in_range(component: icalendar.cal.Component, rng: TimeRange) -> bool:
    """Time-range test of a component that is not expanded (VALARM and the like)."""
    if component.name == "VALARM":
        trigger = component.get("TRIGGER")
        if trigger is None:
            return False
        value = trigger.dt
        if hasattr(value, "total_seconds"):
            return True  # relative to its parent; answered by the parent's instances
        moment = as_utc(value)
        return rng.overlaps(moment, moment)
    start = component.get("DTSTART")
    if start is None:
        return False
    begin = as_utc(start.dt)
    end = component.get("DTEND")
    return rng.overlaps(begin, as_utc(end.dt) if end is not None else begin)


def _prop_passes(component: icalendar.cal.Component, flt: PropFilter) -> bool:
    values = component.get(flt.name)
    if values is None:
        return flt.is_not_defined
    if flt.is_not_defined:
        return False
    for value in values if isinstance(values, list) else [values]:
        if flt.time_range is not None:
            dt = getattr(value, "dt", None)
            if dt is None:
                continue
            moment = as_utc(dt)
            if not flt.time_range.overlaps(moment, moment):
                continue
        if flt.text_match is not None and not flt.text_match.matches(_text(value)):
            continue
        if all(_param_passes(value, p) for p in flt.params):
            return True
    return False


def _text(value: object) -> str:
    if isinstance(value, str):  # vText and friends: the unescaped text
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    to_ical = getattr(value, "to_ical", None)
    if to_ical is not None:
        raw = to_ical()
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return str(value)


def _param_passes(value: object, flt: ParamFilter) -> bool:
    params = getattr(value, "params", {}) or {}
    param = params.get(flt.name)
    if param is None:
        return flt.is_not_defined
    if flt.is_not_defined:
        return False
    if flt.text_match is None:
        return True
    values = param if isinstance(param, list) else [param]
    return any(flt.text_match.matches(str(v)) for v in values)
