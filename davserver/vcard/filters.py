"""addressbook-query filters (RFC 6352 §10.5) as plain dataclasses, and their evaluation
against a parsed vCard or the :class:`~davserver.vcard.summary.Summary` of one.

The HTTP layer builds the dataclasses from the XML; they check themselves as they are
made (:class:`~.errors.UnsupportedCollation`, :class:`~.errors.InvalidFilter`), so a bad
filter is refused before any card is read. Readings of the RFC where it leaves room:

- A prop-filter with tests is met when one property of that name meets them (its
  text-matches and param-filters, any or all of them as its ``test`` says): "a property
  exists ... and it matches". A filter with no prop-filter matches every card.
- A text-match compares with the texts of a property
  (:func:`~davserver.vcard.values.match_texts`: each item of CATEGORIES and NICKNAME,
  else the unescaped value) and with each value of a parameter (TYPE values split at
  commas); it holds when one of them matches, and ``negate-condition`` turns that
  result over: ``CATEGORIES`` "not equals Family" holds for cards without that category.
- Names are compared as the stored card has them: a filter on KIND does not see a 3.0
  card's X-ADDRESSBOOKSERVER-KIND.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .collation import DEFAULT_COLLATION, key_function, match_function
from .errors import InvalidFilter
from .parse import VCard, parse, split_name
from .summary import Summary

TESTS = ("anyof", "allof")


@dataclass(frozen=True, slots=True)
class TextMatch:
    """``text-match``: a comparison of ``text`` with a property's or parameter's values."""

    text: str
    collation: str = DEFAULT_COLLATION
    match_type: str = "contains"
    """``equals``, ``contains``, ``starts-with`` or ``ends-with``."""
    negate: bool = False

    def __post_init__(self) -> None:
        key_function(self.collation)
        match_function(self.match_type)

    def matches(self, values: Iterable[str]) -> bool:
        """Whether one of ``values`` matches, then negated if asked."""
        key = key_function(self.collation)
        test = match_function(self.match_type)
        text = key(self.text)
        return any(test(key(value), text) for value in values) != self.negate


@dataclass(frozen=True, slots=True)
class ParamFilter:
    """``param-filter``: a test on a parameter of the property under test."""

    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None

    def __post_init__(self) -> None:
        if self.is_not_defined and self.text_match is not None:
            raise InvalidFilter(f"param-filter {self.name}: is-not-defined with text-match")


@dataclass(frozen=True, slots=True)
class PropFilter:
    """``prop-filter``: a test on the properties called ``name`` (``TEL``, ``item1.TEL``)."""

    name: str
    test: str = "anyof"
    is_not_defined: bool = False
    text_matches: tuple[TextMatch, ...] = ()
    param_filters: tuple[ParamFilter, ...] = ()

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise InvalidFilter(f"prop-filter test {self.test!r}")
        if not self.name:
            raise InvalidFilter("prop-filter without a name")
        if self.is_not_defined and (self.text_matches or self.param_filters):
            raise InvalidFilter(f"prop-filter {self.name}: is-not-defined with other tests")


@dataclass(frozen=True, slots=True)
class Filter:
    """``filter``: the prop-filters, any or all of which a card must meet."""

    prop_filters: tuple[PropFilter, ...] = ()
    test: str = "anyof"

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise InvalidFilter(f"filter test {self.test!r}")

    def names(self) -> frozenset[str]:
        """The property names it tests, upper-cased and without group."""
        return frozenset(split_name(p.name)[1] for p in self.prop_filters)


class _Testable(Protocol):
    """What the evaluation needs of a property: a Property or an IndexedProperty."""

    @property
    def texts(self) -> tuple[str, ...]: ...

    def param(self, name: str) -> tuple[str, ...] | None: ...

    def is_named(self, group: str | None, name: str) -> bool: ...


def matches(subject: VCard | Summary | bytes, flt: Filter) -> bool:
    """Whether a card (parsed, or its stored bytes) meets ``flt``. A :class:`Summary`
    must answer it (:meth:`Summary.answers`); ValueError otherwise. Bytes that are not a
    valid card raise :class:`~.errors.InvalidVCard` as :func:`~.parse.parse` does."""
    if isinstance(subject, bytes):
        subject = parse(subject)
    if isinstance(subject, Summary) and not subject.answers(flt):
        raise ValueError("the summary does not hold the properties the filter tests")
    if not flt.prop_filters:
        return True
    props: tuple[_Testable, ...] = subject.properties
    results = (_prop_filter(props, pf) for pf in flt.prop_filters)
    return any(results) if flt.test == "anyof" else all(results)


def _prop_filter(props: tuple[_Testable, ...], pf: PropFilter) -> bool:
    group, name = split_name(pf.name)
    named = [p for p in props if p.is_named(group, name)]
    if pf.is_not_defined:
        return not named
    if not pf.text_matches and not pf.param_filters:
        return bool(named)
    return any(_one_property(p, pf) for p in named)


def _one_property(prop: _Testable, pf: PropFilter) -> bool:
    results = _tests(prop, pf)
    return any(results) if pf.test == "anyof" else all(results)


def _tests(prop: _Testable, pf: PropFilter) -> Iterator[bool]:
    for tm in pf.text_matches:
        yield tm.matches(prop.texts)
    for param in pf.param_filters:
        values = prop.param(param.name)
        if param.is_not_defined:
            yield values is None
        elif values is None:
            yield False
        else:
            yield param.text_match is None or param.text_match.matches(values)
