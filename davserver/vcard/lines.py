"""vCard content lines (RFC 6350 §3.3, RFC 2425 §5.8.1): a text split into logical lines
(unfolded), one logical line split into group, name, parameters and value, and the way
back (a line rendered and folded for a given version).

Lenient where real writers are sloppy: a bare LF ends a line as CRLF does, blank lines are
skipped, names may hold ``_``, and a parameter without ``=`` (``TEL;CELL:``, vCard 2.1
style) is read as a TYPE value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NAME = re.compile(r"(?:([A-Za-z0-9_-]+)\.)?([A-Za-z0-9_-]+)")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_-]+")
_UNQUOTED = re.compile(r'[^";:,]*')
_CARET = re.compile(r"\^([\^nN'])")
_CARET_DECODED = {"^": "^", "n": "\n", "N": "\n", "'": '"'}
_NEEDS_QUOTES = re.compile(r"[;:,]")


class Unrepresentable(ValueError):
    """Something the target vCard version has no way to say."""


RawParams = tuple[tuple[str, tuple[str, ...]], ...]
"""Parameters as written: (name, values) pairs, values unquoted, RFC 6868 not decoded."""


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """One content line: the physical lines it was folded into, joined."""

    number: int
    """The number of its first physical line (1 = the first line of the data)."""
    text: str
    """Unfolded, without its line break."""
    source: str
    """The physical lines exactly as they are in the data, line breaks included."""


@dataclass(frozen=True, slots=True)
class SplitLine:
    """A logical line taken apart."""

    group: str | None
    name: str
    params: RawParams
    value: str
    """Everything after the colon that ends the parameters, escapes untouched."""
    head: str
    """Everything before that colon, as written."""


def logical_lines(text: str) -> list[LogicalLine]:
    """Unfold ``text``: a line that starts with a space or a tab continues the one before,
    without that first character. Raises ValueError for a continuation with nothing to
    continue."""
    lines: list[tuple[int, list[str], list[str]]] = []
    physical = text.split("\n")
    last = len(physical) - 1
    for index, body in enumerate(physical):
        source = body if index == last else body + "\n"
        body = body.removesuffix("\r")
        if body[:1] in (" ", "\t"):
            if not lines:
                raise ValueError(f"line {index + 1}: a continuation with no line before it")
            lines[-1][1].append(body[1:])
            lines[-1][2].append(source)
        elif body:
            lines.append((index + 1, [body], [source]))
    return [LogicalLine(n, "".join(texts), "".join(sources)) for n, texts, sources in lines]


def split_line(text: str) -> SplitLine:
    """Take ``[group "."] name *(";" param) ":" value`` apart; ValueError if it is not."""
    match = _NAME.match(text)
    if match is None:
        raise ValueError("no property name")
    group, name = match.group(1), match.group(2)
    pos = match.end()
    params: list[tuple[str, tuple[str, ...]]] = []
    while pos < len(text) and text[pos] == ";":
        found = _PARAM_NAME.match(text, pos + 1)
        if found is None:
            raise ValueError(f"no parameter name at column {pos + 2}")
        pos = found.end()
        if pos < len(text) and text[pos] == "=":
            values, pos = _param_values(text, pos + 1)
            params.append((found.group(), values))
        else:
            params.append(("TYPE", (found.group(),)))
    if pos >= len(text) or text[pos] != ":":
        raise ValueError(f"expected ':' at column {pos + 1}")
    return SplitLine(group, name, tuple(params), text[pos + 1 :], text[:pos])


def _param_values(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    values: list[str] = []
    while True:
        if text.startswith('"', pos):
            close = text.find('"', pos + 1)
            if close < 0:
                raise ValueError(f"unterminated quoted parameter value at column {pos + 1}")
            values.append(text[pos + 1 : close])
            pos = close + 1
        else:
            found = _UNQUOTED.match(text, pos)
            assert found is not None  # the pattern matches the empty string
            values.append(found.group())
            pos = found.end()
            if text.startswith('"', pos):
                raise ValueError(f"a quote inside a parameter value at column {pos + 1}")
        if not text.startswith(",", pos):
            return tuple(values), pos
        pos += 1


def decode_caret(value: str) -> str:
    """RFC 6868 (vCard 4.0 parameter values): ``^^`` ``^n`` ``^'`` to ``^``, newline, ``"``."""
    return _CARET.sub(lambda m: _CARET_DECODED[m.group(1)], value) if "^" in value else value


def render(
    written_name: str, params: Sequence[tuple[str, Sequence[str]]], value: str, version: str
) -> str:
    """One content line for a vCard of ``version``, folded, ending in CRLF. Raises
    :class:`Unrepresentable` for a parameter value vCard 3.0 cannot hold (a newline or a
    quote)."""
    parts = [written_name]
    for name, values in params:
        parts.append(f";{name}=" + ",".join(_param_value(v, version) for v in values))
    return fold("".join(parts) + ":" + value)


def _param_value(value: str, version: str) -> str:
    if version == "4.0":
        value = value.replace("^", "^^").replace("\n", "^n").replace('"', "^'")
    elif "\n" in value or '"' in value:
        raise Unrepresentable("a newline or a quote in a vCard 3.0 parameter value")
    return f'"{value}"' if _NEEDS_QUOTES.search(value) else value


def fold(line: str, limit: int = 75) -> str:
    """``line`` cut into physical lines of at most ``limit`` octets (a continuation's
    leading space included), never inside a UTF-8 sequence, each ending in CRLF."""
    if line.isascii():
        pieces = [line[:limit]]
        pieces += [line[i : i + limit - 1] for i in range(limit, len(line), limit - 1)]
        return "\r\n ".join(pieces) + "\r\n"
    out: list[str] = []
    chunk: list[str] = []
    size, room = 0, limit
    for char in line:
        width = len(char.encode())
        if size + width > room:
            out.append("".join(chunk))
            chunk, size, room = [], 0, limit - 1
        chunk.append(char)
        size += width
    out.append("".join(chunk))
    return "\r\n ".join(out) + "\r\n"
