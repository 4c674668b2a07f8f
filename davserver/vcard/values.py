"""Property values: the backslash escapes of text (RFC 6350 §3.4, RFC 2426 §4), lists and
structured values, and the texts a text-match compares with.

The escapes are the same in vCard 3.0 and 4.0: ``\\\\``, ``\\,``, ``\\;`` and ``\\n`` (or
``\\N``). A backslash before any other character is dropped (some 3.0 writers escape ``:``);
one at the very end is kept.
"""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\(.)")
_UNESCAPED = {"n": "\n", "N": "\n"}

LIST_PROPERTIES = frozenset({"CATEGORIES", "NICKNAME"})
"""Properties whose value is a comma-separated list of texts."""


def unescape(value: str) -> str:
    """The text a raw value stands for."""
    if "\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(1)), value)


def escape(text: str) -> str:
    """``text`` as a raw value of a text property."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def split_raw(value: str, separator: str) -> list[str]:
    """The raw parts of ``value`` between the separators (``,`` or ``;``) that are not
    escaped; each part keeps its escapes."""
    if separator not in value:
        return [value]
    parts: list[str] = []
    start = i = 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            i += 2
            continue
        if char == separator:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def match_texts(name: str, value: str) -> tuple[str, ...]:
    """What a text-match on property ``name`` compares with: each item of a list property
    (CATEGORIES, NICKNAME), else the whole value unescaped (a structured value such as N
    keeps its ``;`` between components)."""
    if name in LIST_PROPERTIES:
        return tuple(unescape(part) for part in split_raw(value, ","))
    return (unescape(value),)
