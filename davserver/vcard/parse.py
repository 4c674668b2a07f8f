"""One vCard resource read and checked as RFC 6352 §6.3.2.1 wants for a PUT: UTF-8 without
control characters, well-formed content lines, exactly one BEGIN:VCARD ... END:VCARD,
VERSION 3.0 or 4.0, FN, exactly one non-empty UID, at most ``max_size`` octets.

Nothing is rewritten: a :class:`VCard` keeps the bytes it was read from, and each property
the text it was stored as, so partial answers can be cut from it. Lenient on what real
clients write (see :mod:`davserver.vcard.lines`; also VERSION anywhere in the card, N not
required in 3.0, a leading UTF-8 byte order mark ignored), strict on the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidVCard, TooLarge, UnsupportedVersion
from .lines import LogicalLine, SplitLine, decode_caret, logical_lines, split_line
from .values import match_texts, unescape

VERSIONS = ("3.0", "4.0")
"""The vCard versions stored and served."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
_VERSION_LINE = re.compile(r"(?i)VERSION[;:]")
_END_LINE = re.compile(r"(?i)END[;:]")
_BEGIN_LINE = re.compile(r"(?i)BEGIN:VCARD\s*")


@dataclass(frozen=True, slots=True)
class Param:
    """A property parameter."""

    name: str
    """Upper-cased."""
    values: tuple[str, ...]
    """Unquoted, RFC 6868 decoded in vCard 4.0."""


def param_values(params: Iterable[Param], name: str) -> tuple[str, ...] | None:
    """The values of every parameter called ``name`` (upper case) in order, None when
    there is none. TYPE values are split at commas, so ``TYPE="work,home"``,
    ``TYPE=work,home`` and ``TYPE=work;TYPE=home`` give the same."""
    found: list[str] | None = None
    for param in params:
        if param.name == name:
            found = found if found is not None else []
            if name == "TYPE":
                found += [part for value in param.values for part in value.split(",")]
            else:
                found += param.values
    return tuple(found) if found is not None else None


def split_name(name: str) -> tuple[str | None, str]:
    """A property name as a filter or a partial request gives it (``TEL``, ``item1.TEL``)
    as (group or None, name), upper-cased."""
    group, _, base = name.upper().rpartition(".")
    return group or None, base


@dataclass(frozen=True, slots=True)
class Property:
    """One content line of a vCard."""

    group: str | None
    """Upper-cased, None without one."""
    name: str
    """Upper-cased."""
    params: tuple[Param, ...]
    value: str
    """As written (unfolded), escapes untouched."""
    head: str
    """Group, name and parameters as written, up to the colon before the value."""
    source: str
    """The physical lines as stored, line breaks included."""

    @property
    def written_name(self) -> str:
        """Group and name as written (``item1.X-ABLabel``)."""
        return self.head.split(";", 1)[0]

    @property
    def text(self) -> str:
        """The value with its escapes resolved."""
        return unescape(self.value)

    @property
    def texts(self) -> tuple[str, ...]:
        """What a text-match compares with (:func:`~davserver.vcard.values.match_texts`)."""
        return match_texts(self.name, self.value)

    def param(self, name: str) -> tuple[str, ...] | None:
        """The values of parameter ``name`` (:func:`param_values`)."""
        return param_values(self.params, name.upper())

    def is_named(self, group: str | None, name: str) -> bool:
        """RFC 6352 §10.5.1: ``name`` matches in any group, ``group.name`` only there."""
        return self.name == name and (group is None or self.group == group)


@dataclass(frozen=True, slots=True)
class VCard:
    """A parsed, valid vCard resource."""

    data: bytes
    """The bytes it was read from, as they are stored."""
    version: str
    """``"3.0"`` or ``"4.0"``."""
    properties: tuple[Property, ...]
    """Every line between BEGIN and END in order, VERSION included."""
    begin: str
    """The BEGIN:VCARD line as stored."""
    end: str
    """The END:VCARD line as stored."""

    def find(self, name: str) -> tuple[Property, ...]:
        """The properties that ``name`` (``TEL`` or ``item1.TEL``) names."""
        group, base = split_name(name)
        return tuple(p for p in self.properties if p.is_named(group, base))

    @property
    def uid(self) -> str:
        """The UID (exactly one, not empty: :func:`parse` checks)."""
        return self.find("UID")[0].text

    @property
    def fn(self) -> str:
        """The first formatted name."""
        return self.find("FN")[0].text


def parse(data: bytes, *, max_size: int | None = None) -> VCard:
    """Read and check one vCard resource. Raises :class:`~.errors.TooLarge`,
    :class:`~.errors.UnsupportedVersion` (a version other than 3.0 and 4.0) or
    :class:`~.errors.InvalidVCard` (anything else wrong), each with a reason."""
    if max_size is not None and len(data) > max_size:
        raise TooLarge(f"{len(data)} octets, more than {max_size}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidVCard(f"not UTF-8 (octet {exc.start})") from exc
    text = text.removeprefix("\ufeff")
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise InvalidVCard(f"control character U+{ord(bad.group()[0]):04X} on line {line}")
    try:
        lines = logical_lines(text)
    except ValueError as exc:
        raise InvalidVCard(str(exc)) from exc
    if not lines or not _BEGIN_LINE.fullmatch(lines[0].text):
        raise InvalidVCard("does not start with BEGIN:VCARD")
    version = _version(lines)
    split = [_split(line) for line in lines]
    inner = _inner(split)
    caret = version == "4.0"
    properties = tuple(
        Property(
            group=s.group.upper() if s.group else None,
            name=s.name.upper(),
            params=tuple(
                Param(name.upper(), tuple(decode_caret(v) for v in values) if caret else values)
                for name, values in s.params
            ),
            value=s.value,
            head=s.head,
            source=line.source,
        )
        for line, s in zip(lines[1 : inner + 1], split[1 : inner + 1], strict=True)
    )
    card = VCard(data, version, properties, lines[0].source, lines[inner + 1].source)
    if not card.find("FN"):
        raise InvalidVCard("no FN")
    uids = card.find("UID")
    if len(uids) != 1 or not uids[0].text.strip():
        raise InvalidVCard(
            "no UID" if not uids else "more than one UID" if uids[1:] else "empty UID"
        )
    return card


def _split(line: LogicalLine) -> SplitLine:
    try:
        return split_line(line.text)
    except ValueError as exc:
        raise InvalidVCard(f"line {line.number}: {exc}") from exc


def _version(lines: list[LogicalLine]) -> str:
    """The VERSION (up to the first END), found before the other lines are taken apart,
    so that a vCard 2.1 is refused as an unsupported version, not for its 2.1 syntax."""
    found = []
    for line in lines:
        if _END_LINE.match(line.text):
            break
        if _VERSION_LINE.match(line.text):
            found.append(line)
    if not found:
        raise InvalidVCard("no VERSION")
    if len(found) > 1:
        raise InvalidVCard("more than one VERSION")
    version = _split(found[0]).value.strip()
    if version not in VERSIONS:
        raise UnsupportedVersion(f"vCard {version} (3.0 and 4.0 are supported)")
    return version


def _is(line: SplitLine, name: str) -> bool:
    return line.name.upper() == name and line.value.strip().upper() == "VCARD"


def _inner(lines: list[SplitLine]) -> int:
    """The number of lines between BEGIN:VCARD (the first line) and its END:VCARD (the
    last one); refuses nesting, a second vCard and anything outside."""
    for index, line in enumerate(lines[1:], 1):
        name = line.name.upper()
        if name == "BEGIN":
            raise InvalidVCard(f"BEGIN:{line.value} inside the vCard")
        if name == "END":
            if not _is(line, "END"):
                raise InvalidVCard(f"END:{line.value} inside the vCard")
            rest = lines[index + 1 :]
            if rest and _is(rest[0], "BEGIN"):
                raise InvalidVCard("more than one vCard in the resource")
            if rest:
                raise InvalidVCard("content after END:VCARD")
            return index - 1
    raise InvalidVCard("no END:VCARD")
