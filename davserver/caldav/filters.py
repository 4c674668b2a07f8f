"""calendar-query filters in requests (RFC 4791 §9.7): the ``C:filter`` element read into
the filters of davserver.ical.filters, with the RFC's refusals (supported-collation,
valid-filter)."""

from __future__ import annotations

from lxml import etree

from davserver.dav.errors import DAVError
from davserver.ical.filters import (
    COLLATIONS,
    CompFilter,
    ParamFilter,
    PropFilter,
    TextMatch,
)
from davserver.ical.timerange import TimeRange

from .names import C, c
from .timerange import parse_range


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
