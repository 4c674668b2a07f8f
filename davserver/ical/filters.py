"""calendar-query filters (RFC 4791 §9.7): comp-filter, prop-filter, param-filter,
is-not-defined, text-match and time-range, evaluated against a parsed calendar object.

Every time-range test goes through :func:`~davserver.ical.spans.overlaps`, the one
function the index uses too, with floating times and dates placed in the zone the query
is evaluated in (:func:`~davserver.ical.spans.absolute`). The instances of the main
components come from the index's spans when the caller passes them (they cover the
range), else from the recurrence library for the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo

import icalendar

from .spans import (
    END_CLOSED,
    MAIN,
    Span,
    absolute,
    instant,
    kind_of,
    main_components,
    overlaps,
    row_span,
    spans_between,
)
from .timerange import TimeRange

COLLATIONS = ("i;ascii-casemap", "i;octet")
# How far beyond a range the instances of a component are looked at for its alarms (an
# alarm rings before or after its instance; this bounds the offsets considered).
ALARM_REACH = timedelta(days=366).total_seconds()


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
            found = _ascii_fold(self.text) in _ascii_fold(value)
        return found != self.negate


def _ascii_fold(value: str) -> str:
    """i;ascii-casemap: only A-Z fold to a-z (RFC 4790 §9.2)."""
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


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

    @property
    def only_time(self) -> bool:
        """Whether nothing but the component's existence and time range is tested."""
        return not self.is_not_defined and not self.props and not self.comps


@dataclass(slots=True)
class _Object:
    """A calendar object under evaluation: its main components, the index's spans, and
    the zone its floating times are in."""

    calendar: icalendar.Calendar
    main: list[icalendar.cal.Component]
    spans: Sequence[Span] | None
    zone: tzinfo | None

    def instances(self, kind: str, lo: float, hi: float) -> list[Span]:
        """The spans (in UTC) of the ``kind`` instances that may meet [lo, hi)."""
        if self.spans is not None:
            found = [s for s in self.spans if self.main[s.source].name == kind]
        else:
            found = spans_between(self.calendar, kind, lo, hi)
        return [absolute(s, self.zone) for s in found]


def matches(
    calendar: icalendar.Calendar,
    flt: CompFilter,
    spans: Sequence[Span] | None = None,
    zone: tzinfo | None = None,
) -> bool:
    """Whether a calendar object resource passes the top filter. ``spans`` are the
    index's spans of its main components, when they answer every range of the filter;
    floating times and dates are taken in ``zone`` (None: UTC)."""
    if calendar.name != "VCALENDAR" or flt.is_not_defined:
        return False
    obj = _Object(calendar, main_components(calendar), spans, zone)
    if not all(_prop_passes(obj, calendar, p) for p in flt.props):
        return False
    for sub in flt.comps:
        if sub.name in MAIN:
            ok = _main_passes(obj, sub)
        else:
            named = [s for s in calendar.subcomponents if s.name == sub.name]
            ok = (
                not named
                if sub.is_not_defined
                else any(_passes(obj, s, sub, None, None) for s in named)
            )
        if not ok:
            return False
    return True


def _main_passes(obj: _Object, flt: CompFilter) -> bool:
    """The test of one main component type (VEVENT, VTODO, ...): with a time range, some
    instance in it whose component passes the rest."""
    positions = [i for i, m in enumerate(obj.main) if m.name == flt.name]
    if flt.is_not_defined:
        return not positions
    if not positions:
        return False
    rng = flt.time_range
    if rng is None:
        return any(_passes(obj, obj.main[i], flt, i, None) for i in positions)
    hits = [s for s in obj.instances(flt.name, rng.lo, rng.hi) if overlaps(s, rng.lo, rng.hi)]
    return any(_passes(obj, obj.main[s.source], flt, s.source, s) for s in hits)


def _passes(
    obj: _Object,
    component: icalendar.cal.Component,
    flt: CompFilter,
    position: int | None,
    instance: Span | None,
) -> bool:
    """Properties and subcomponents of one component (its time range already tested
    when it is a main component)."""
    if position is None and flt.time_range is not None:
        span = row_span(component, None, None, 0)
        if span is None or not overlaps(
            absolute(span, obj.zone), flt.time_range.lo, flt.time_range.hi
        ):
            return False
    if not all(_prop_passes(obj, component, p) for p in flt.props):
        return False
    for sub in flt.comps:
        named = [s for s in component.subcomponents if s.name == sub.name]
        if sub.is_not_defined:
            if named:
                return False
            continue
        if sub.name == "VALARM" and sub.time_range is not None:
            rest = CompFilter(sub.name, props=sub.props, comps=sub.comps)
            named = [a for a in named if _alarm_rings(obj, a, position, instance, sub.time_range)]
            if not any(_passes(obj, a, rest, None, None) for a in named):
                return False
        elif not any(_passes(obj, s, sub, None, None) for s in named):
            return False
    return True


def _alarm_rings(
    obj: _Object,
    alarm: icalendar.cal.Component,
    position: int | None,
    instance: Span | None,
    rng: TimeRange,
) -> bool:
    """Whether an alarm triggers in the range: for the one instance being tested, or
    for any instance of its component (§9.9: start <= trigger < end)."""
    trigger = alarm.get("TRIGGER")
    value = getattr(trigger, "dt", None)
    if value is None:
        return False
    if instance is not None:
        instances = [instance]
    elif position is not None:
        kind = kind_of(obj.main[position])
        lo, hi = rng.lo - ALARM_REACH, rng.hi + ALARM_REACH
        instances = [s for s in obj.instances(kind, lo, hi) if s.source == position]
    else:
        return False
    repeat = int(alarm.get("REPEAT", 0) or 0)
    step = getattr(alarm.get("DURATION"), "dt", None)
    for span in instances:
        if isinstance(value, timedelta):
            related = str(trigger.params.get("RELATED", "START")).upper()
            first = (span.end if related == "END" else span.start) + value.total_seconds()
        elif isinstance(value, date):
            first = instant(value, obj.zone)
        else:
            return False
        times = [first]
        if isinstance(step, timedelta):
            times += [first + k * step.total_seconds() for k in range(1, min(repeat, 1000) + 1)]
        if any(overlaps(Span(t, t, END_CLOSED, 0), rng.lo, rng.hi) for t in times):
            return True
    return False


def _prop_passes(obj: _Object, component: icalendar.cal.Component, flt: PropFilter) -> bool:
    values = component.get(flt.name)
    if values is None:
        return flt.is_not_defined
    if flt.is_not_defined:
        return False
    for value in values if isinstance(values, list) else [values]:
        if flt.time_range is not None:
            dt = getattr(value, "dt", None)
            if not isinstance(dt, date):
                continue
            moment = instant(dt, obj.zone)
            if not overlaps(
                Span(moment, moment, END_CLOSED, 0), flt.time_range.lo, flt.time_range.hi
            ):
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
