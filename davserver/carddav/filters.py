"""addressbook-query requests (RFC 6352 §8.6, §10.5): the ``CR:filter`` element read into
the filters of :mod:`davserver.vcard.filters`, and the ``CR:limit``, with the RFC's
refusals (supported-collation 403, a malformed filter 400)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from davserver import vcard
from davserver.caldav.sync import parse_limit
from davserver.dav.errors import DAVError

from .names import cr
from .put import refusal


@dataclass(frozen=True, slots=True)
class Query:
    """What an addressbook-query asks: the filter, and at most ``limit`` results."""

    filter: vcard.Filter
    limit: int | None


def _text_match(el: etree._Element) -> vcard.TextMatch:
    return vcard.TextMatch(
        el.text or "",
        el.get("collation", "i;unicode-casemap"),
        el.get("match-type", "contains"),
        el.get("negate-condition", "no") == "yes",
    )


def _param_filter(el: etree._Element) -> vcard.ParamFilter:
    tm = el.find(cr("text-match"))
    return vcard.ParamFilter(
        el.get("name", "").strip(),
        el.find(cr("is-not-defined")) is not None,
        _text_match(tm) if tm is not None else None,
    )


def _prop_filter(el: etree._Element) -> vcard.PropFilter:
    return vcard.PropFilter(
        el.get("name", "").strip(),
        el.get("test", "anyof"),
        el.find(cr("is-not-defined")) is not None,
        tuple(_text_match(t) for t in el.iterfind(cr("text-match"))),
        tuple(_param_filter(p) for p in el.iterfind(cr("param-filter"))),
    )


def parse_query(root: etree._Element) -> Query:
    """Read an ``addressbook-query`` body (a filter is required)."""
    el = root.find(cr("filter"))
    if el is None:
        raise DAVError(400, "addressbook-query without a filter")
    try:
        flt = vcard.Filter(
            tuple(_prop_filter(p) for p in el.iterfind(cr("prop-filter"))),
            el.get("test", "anyof"),
        )
    except vcard.VCardError as exc:
        raise refusal(exc) from exc
    return Query(flt, parse_limit(root.find(f"{cr('limit')}/{cr('nresults')}")))
