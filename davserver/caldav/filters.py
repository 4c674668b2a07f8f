"""calendar-query filters in requests (RFC 4791 §9.7): the ``C:filter`` element read into
the filters of davserver.ical.filters, with the RFC's refusals: ``supported-collation``,
and ``valid-filter`` for anything the grammar of §9.7 does not allow (a component or
property without a name, is-not-defined beside other tests, a time-range on VCALENDAR,
a time-range that is not in UTC date-times, two text-matches or time-ranges in one
filter, an unknown element)."""

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

VALID_FILTER = f"{{{C}}}valid-filter"
_COMP_CHILDREN = frozenset(
    {c("is-not-defined"), c("time-range"), c("prop-filter"), c("comp-filter")}
)
_PROP_CHILDREN = frozenset(
    {c("is-not-defined"), c("time-range"), c("text-match"), c("param-filter")}
)
_PARAM_CHILDREN = frozenset({c("is-not-defined"), c("text-match")})


def _invalid(reason: str) -> DAVError:
    return DAVError(403, reason, condition=VALID_FILTER)


def _checked(el: etree._Element, allowed: frozenset[str]) -> str:
    """The element's name attribute, once its children follow §9.7's grammar."""
    name = el.get("name", "").strip()
    if not name:
        raise _invalid(f"{etree.QName(el).localname} without a name")
    children = [ch.tag for ch in el if isinstance(ch.tag, str)]
    unknown = [t for t in children if t not in allowed]
    if unknown:
        raise _invalid(f"{unknown[0]} is not allowed in {etree.QName(el).localname}")
    for once in (c("is-not-defined"), c("time-range"), c("text-match")):
        if children.count(once) > 1:
            raise _invalid(f"more than one {etree.QName(once).localname}")
    if c("is-not-defined") in children and len(children) > 1:
        raise _invalid("is-not-defined stands alone")
    return name.upper()


def _text_match(el: etree._Element | None) -> TextMatch | None:
    if el is None:
        return None
    collation = el.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise DAVError(403, f"collation {collation}", condition=f"{{{C}}}supported-collation")
    return TextMatch(el.text or "", collation, el.get("negate-condition", "no") == "yes")


def _time_range(el: etree._Element) -> TimeRange | None:
    tr = el.find(c("time-range"))
    if tr is None:
        return None
    return parse_range(tr.get("start"), tr.get("end"), VALID_FILTER)


def parse_comp_filter(el: etree._Element, top: bool = False) -> CompFilter:
    """Read a ``C:comp-filter`` element (``top``: the VCALENDAR one)."""
    name = _checked(el, _COMP_CHILDREN)
    if top and el.find(c("time-range")) is not None:
        raise _invalid("a time-range cannot test VCALENDAR")
    return CompFilter(
        name=name,
        is_not_defined=el.find(c("is-not-defined")) is not None,
        time_range=_time_range(el),
        props=tuple(_prop_filter(p) for p in el.iterfind(c("prop-filter"))),
        comps=tuple(parse_comp_filter(s) for s in el.iterfind(c("comp-filter"))),
    )


def _prop_filter(el: etree._Element) -> PropFilter:
    name = _checked(el, _PROP_CHILDREN)
    if el.find(c("time-range")) is not None and el.find(c("text-match")) is not None:
        raise _invalid("a prop-filter tests a time-range or a text, not both")
    return PropFilter(
        name=name,
        is_not_defined=el.find(c("is-not-defined")) is not None,
        time_range=_time_range(el),
        text_match=_text_match(el.find(c("text-match"))),
        params=tuple(
            ParamFilter(
                name=_checked(p, _PARAM_CHILDREN),
                is_not_defined=p.find(c("is-not-defined")) is not None,
                text_match=_text_match(p.find(c("text-match"))),
            )
            for p in el.iterfind(c("param-filter"))
        ),
    )


def parse_filter(el: etree._Element | None) -> CompFilter:
    """The top comp-filter of a ``C:filter`` element (which must test VCALENDAR)."""
    tops = [ch for ch in el if isinstance(ch.tag, str)] if el is not None else []
    if len(tops) != 1 or tops[0].tag != c("comp-filter"):
        raise _invalid("a filter holds one comp-filter")
    top = tops[0]
    if top.get("name", "").upper() != "VCALENDAR":
        raise _invalid("the filter must test VCALENDAR")
    return parse_comp_filter(top, top=True)
