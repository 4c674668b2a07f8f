"""The ``C:calendar-data`` a REPORT asks for (RFC 4791 §9.6): the request element read into
a :class:`~davserver.ical.partial.CalendarData`, and the answer's element."""

from __future__ import annotations

from collections.abc import Sequence

from icalendar import Calendar
from lxml import etree

from davserver.dav.errors import DAVError
from davserver.dav.xml import escape
from davserver.ical.partial import CalendarData as CalendarData  # what parse() gives
from davserver.ical.partial import CompSpec, text
from davserver.ical.spans import Span
from davserver.ical.timerange import TimeRange

from .names import c
from .timerange import parse_range


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


def _range_of(el: etree._Element | None) -> TimeRange | None:
    return parse_range(el.get("start"), el.get("end")) if el is not None else None


def parse(el: etree._Element) -> CalendarData:
    """Read a ``C:calendar-data`` element of a REPORT's ``D:prop``: 403
    ``supported-calendar-data`` for a media type or version other than iCalendar 2.0."""
    media = el.get("content-type", "text/calendar").split(";")[0].strip().lower()
    version = el.get("version", "2.0").strip()
    if media != "text/calendar" or version != "2.0":
        raise DAVError(
            403, f"calendar data as {media} {version} is not supported",
            condition=c("supported-calendar-data"),
        )  # fmt: skip
    comp = el.find(c("comp"))
    return CalendarData(
        comp=_comp_spec(comp) if comp is not None else None,
        expand=_range_of(el.find(c("expand"))),
        limit=_range_of(el.find(c("limit-recurrence-set"))),
    )


def render(
    data: bytes,
    request: CalendarData,
    spans: Sequence[Span] | None = None,
    parsed: Calendar | None = None,
) -> str:
    """The ``C:calendar-data`` element for a stored object and what was asked of it (see
    :func:`davserver.ical.partial.text`)."""
    return f"<C:calendar-data>{escape(text(data, request, spans, parsed))}</C:calendar-data>"


def verbatim(data: bytes) -> str:
    """The ``C:calendar-data`` element of a stored object asked for whole: what
    :func:`render` gives for a request that is :attr:`~CalendarData.verbatim`, without
    looking at the request (asked for each of the hundred items of a multiget)."""
    return f"<C:calendar-data>{escape(data.decode('utf-8', 'replace'))}</C:calendar-data>"
