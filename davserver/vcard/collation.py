"""The collations of text-match (RFC 6352 §8.3, RFC 4790) and its four match types.

``i;unicode-casemap`` (RFC 5051, the default) is approximated with the standard library:
NFKD, full case folding (``str.casefold``), NFKD again. RFC 5051 maps each character to
its simple titlecase before NFKD; full case folding differs in a few places, e.g. ``ß``
equals ``ss`` here (and ``ẞ``), as most users expect, while RFC 5051 keeps ``ß`` apart.
As in RFC 5051, accents are decomposed, so ``contains "e"`` finds ``é``.
``i;ascii-casemap`` folds only A-Z; ``i;octet`` compares as is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from .errors import InvalidFilter, UnsupportedCollation

DEFAULT_COLLATION = "i;unicode-casemap"

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def unicode_casemap(text: str) -> str:
    """The key ``i;unicode-casemap`` compares (see the module docstring)."""
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())


def ascii_casemap(text: str) -> str:
    """The key ``i;ascii-casemap`` compares: A-Z folded to a-z (RFC 4790 §9.2)."""
    return text.translate(_ASCII_LOWER)


def octet(text: str) -> str:
    """The key ``i;octet`` compares: the text itself."""
    return text


COLLATIONS: dict[str, Callable[[str], str]] = {
    "i;ascii-casemap": ascii_casemap,
    "i;octet": octet,
    "i;unicode-casemap": unicode_casemap,
}
"""The supported collations (for ``supported-collation-set``) and their keys."""

MATCH_TYPES: dict[str, Callable[[str, str], bool]] = {
    "equals": lambda value, text: value == text,
    "contains": lambda value, text: text in value,
    "starts-with": lambda value, text: value.startswith(text),
    "ends-with": lambda value, text: value.endswith(text),
}
"""The match types, each a test of (folded value, folded text)."""


def key_function(collation: str) -> Callable[[str], str]:
    """The key of ``collation`` (``default`` is i;unicode-casemap, RFC 6352 §8.3);
    :class:`~.errors.UnsupportedCollation` for one not supported."""
    try:
        return COLLATIONS[DEFAULT_COLLATION if collation == "default" else collation]
    except KeyError:
        raise UnsupportedCollation(f"collation {collation!r}") from None


def match_function(match_type: str) -> Callable[[str, str], bool]:
    """The test of ``match_type``; :class:`~.errors.InvalidFilter` for an unknown one."""
    try:
        return MATCH_TYPES[match_type]
    except KeyError:
        raise InvalidFilter(f"match-type {match_type!r}") from None
