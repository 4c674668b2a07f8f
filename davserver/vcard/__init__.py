"""vCard for CardDAV (RFC 6352), bytes and Python objects in and out, nothing of HTTP,
XML or storage:

- :func:`parse` checks one resource as a PUT must (valid-address-data,
  supported-address-data, max-resource-size, one vCard, a UID) and keeps its bytes;
- :func:`summarize` gives what an index keeps and most queries need (:class:`Summary`);
- :func:`convert` gives a card in vCard 3.0 or 4.0 (address-data ``version``, Accept);
- :func:`partial` cuts the properties an address-data ``prop`` list asks for;
- :func:`matches` evaluates an addressbook-query :class:`Filter`.

Why our own parser rather than a library: vobject (what Radicale uses) reads vCard 4.0
only as 3.0 and loses data in doing so (a 4.0 PHOTO ``data:`` URI comes back cut at its
comma and its semicolon escaped), writes properties in its own order, and silently takes
the first of several vCards; its 4.0 support is an open pull request. Its fork vobjectx
behaves the same, and the other PyPI packages handle one version only or are
unmaintained. vCard is a line format with a small grammar (RFC 6350 §3.3, RFC 2425
§5.8): reading it ourselves lets us keep every stored byte, find each property's own
text for partial answers, and be lenient exactly where real clients need it.
"""

from .collation import COLLATIONS
from .convert import convert
from .errors import (
    ConversionError,
    InvalidFilter,
    InvalidVCard,
    TooLarge,
    UnsupportedCollation,
    UnsupportedVersion,
    VCardError,
)
from .filters import Filter, ParamFilter, PropFilter, TextMatch, matches
from .parse import VERSIONS, Param, Property, VCard, parse
from .partial import PropRequest, partial
from .summary import INDEXED, IndexedProperty, Summary, summarize

__all__ = [
    "COLLATIONS",
    "INDEXED",
    "VERSIONS",
    "ConversionError",
    "Filter",
    "IndexedProperty",
    "InvalidFilter",
    "InvalidVCard",
    "Param",
    "ParamFilter",
    "PropFilter",
    "PropRequest",
    "Property",
    "Summary",
    "TextMatch",
    "TooLarge",
    "UnsupportedCollation",
    "UnsupportedVersion",
    "VCard",
    "VCardError",
    "convert",
    "matches",
    "parse",
    "partial",
    "summarize",
]
