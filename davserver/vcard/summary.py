"""What an address book index keeps of a vCard: its UID, version, kind, names, and the
properties queries usually test (:data:`INDEXED`), enough to answer such an
addressbook-query without reading the card (:meth:`Summary.answers`). It travels as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .parse import Param, VCard, param_values
from .values import split_raw, unescape

if TYPE_CHECKING:
    from .filters import Filter

INDEXED = frozenset(
    {
        "UID",
        "FN",
        "N",
        "NICKNAME",
        "EMAIL",
        "TEL",
        "ORG",
        "CATEGORIES",
        "KIND",
        "X-ADDRESSBOOKSERVER-KIND",
        "MEMBER",
        "X-ADDRESSBOOKSERVER-MEMBER",
    }
)
"""The properties a summary keeps (names, addresses, numbers, groups): what iOS, macOS,
Evolution and DAVx5 search for."""

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class IndexedProperty:
    """A property as a summary keeps it: what filters test."""

    group: str | None
    name: str
    texts: tuple[str, ...]
    """What a text-match compares with."""
    params: tuple[Param, ...]
    """One per name, values merged as :func:`~davserver.vcard.parse.param_values` does."""

    def param(self, name: str) -> tuple[str, ...] | None:
        """The values of parameter ``name`` (as :meth:`Property.param`)."""
        return param_values(self.params, name.upper())

    def is_named(self, group: str | None, name: str) -> bool:
        """As :meth:`Property.is_named`."""
        return self.name == name and (group is None or self.group == group)


@dataclass(frozen=True, slots=True)
class Summary:
    """The summary of one vCard."""

    uid: str
    version: str
    kind: str
    """``individual`` (the default), ``group``, ``org``, ``location`` or another value, from
    KIND or Apple's X-ADDRESSBOOKSERVER-KIND, lower-cased."""
    fn: str
    n: tuple[str, ...]
    """The components of N (family, given, additional, prefixes, suffixes), if any."""
    properties: tuple[IndexedProperty, ...]
    """The :data:`INDEXED` properties, in the card's order."""

    def texts(self, *names: str) -> tuple[str, ...]:
        """The texts of the properties with these names, in order."""
        return tuple(t for p in self.properties if p.name in names for t in p.texts)

    @property
    def emails(self) -> tuple[str, ...]:
        """Every EMAIL."""
        return self.texts("EMAIL")

    @property
    def tels(self) -> tuple[str, ...]:
        """Every TEL."""
        return self.texts("TEL")

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category (DAVx5's groups as categories)."""
        return self.texts("CATEGORIES")

    @property
    def members(self) -> tuple[str, ...]:
        """A group's members (MEMBER or X-ADDRESSBOOKSERVER-MEMBER), usually urn:uuid URIs."""
        return self.texts("MEMBER", "X-ADDRESSBOOKSERVER-MEMBER")

    def answers(self, flt: Filter) -> bool:
        """Whether ``flt`` tests only properties the summary keeps."""
        return flt.names() <= INDEXED

    def to_json(self) -> str:
        """The summary as a JSON text (for the index)."""
        return json.dumps(
            {
                "format": _FORMAT,
                "uid": self.uid,
                "version": self.version,
                "kind": self.kind,
                "fn": self.fn,
                "n": self.n,
                "properties": [
                    [p.group, p.name, p.texts, [[q.name, q.values] for q in p.params]]
                    for p in self.properties
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Summary:
        """The summary :meth:`to_json` gave; ValueError for anything else (an index
        written by another format is rebuilt from the cards)."""
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw["format"] != _FORMAT:
                raise ValueError(f"summary format {raw['format']}")
            return cls(
                uid=_str(raw["uid"]),
                version=_str(raw["version"]),
                kind=_str(raw["kind"]),
                fn=_str(raw["fn"]),
                n=_strs(raw["n"]),
                properties=tuple(
                    IndexedProperty(
                        None if group is None else _str(group),
                        _str(name),
                        _strs(texts),
                        tuple(Param(_str(pn), _strs(pv)) for pn, pv in params),
                    )
                    for group, name, texts, params in raw["properties"]
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a summary: {exc!r}") from exc


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _strs(values: object) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise TypeError(f"{values!r} is not a list")
    return tuple(_str(v) for v in values)


def summarize(card: VCard) -> Summary:
    """The summary of a parsed card."""
    kinds = card.find("KIND") or card.find("X-ADDRESSBOOKSERVER-KIND")
    names = card.find("N")
    return Summary(
        uid=card.uid,
        version=card.version,
        kind=kinds[0].text.strip().lower() if kinds else "individual",
        fn=card.fn,
        n=tuple(unescape(part) for part in split_raw(names[0].value, ";")) if names else (),
        properties=tuple(
            IndexedProperty(p.group, p.name, p.texts, _merged(p.params))
            for p in card.properties
            if p.name in INDEXED
        ),
    )


def _merged(params: tuple[Param, ...]) -> tuple[Param, ...]:
    """One Param per name, so that ``TYPE=a,b``, ``TYPE="a,b"`` and ``TYPE=a;TYPE=b``
    give the same summary."""
    names = dict.fromkeys(p.name for p in params)
    return tuple(Param(name, param_values(params, name) or ()) for name in names)
