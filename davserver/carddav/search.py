"""The fast path of addressbook-query for what clients send while a user types: one
prop-filter with one text-match (a name, an address, a number; not negated, no group, no
param-filter) on a property the index's summaries keep.

For each address book, property and collation, the folded texts of every card are kept
joined in one string (``\\0`` between them: no text holds one), so a search is a few
``str.find`` calls in C instead of a comparison per card in Python. The folded texts of a
card are kept with the card's index entry and worked out again only when it changes; the
string is joined again (a few milliseconds for 10,000 cards) when the address book has
changed since.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from davserver import vcard
from davserver.caldav.store.items import CalendarItems, Item
from davserver.runtime.threads import offload
from davserver.vcard.collation import key_function
from davserver.vcard.parse import split_name

MAX_BOOKS = 64
"""Address books whose search strings are kept (the most recently searched)."""


@dataclass(frozen=True, slots=True)
class _Column:
    """The folded texts of one property of every card of one address book."""

    version: int
    folds: dict[str, tuple[Item, tuple[str, ...]]]
    text: str
    starts: list[int]
    owners: list[str]


def simple(flt: vcard.Filter) -> tuple[str, vcard.TextMatch] | None:
    """(property name, text-match) when ``flt`` is one the fast path answers."""
    if len(flt.prop_filters) != 1:
        return None
    pf = flt.prop_filters[0]
    group, name = split_name(pf.name)
    if (
        group is not None or name not in vcard.INDEXED or pf.is_not_defined
        or pf.param_filters or len(pf.text_matches) != 1 or pf.text_matches[0].negate
    ):  # fmt: skip
        return None
    return name, pf.text_matches[0]


def _build(
    items: list[tuple[str, Item]], name: str, collation: str, old: _Column | None, version: int
) -> _Column:
    key = key_function(collation)
    folds: dict[str, tuple[Item, tuple[str, ...]]] = {}
    pieces: list[str] = [""]
    starts: list[int] = []
    owners: list[str] = []
    at = 1
    for item_name, item in items:
        card = item.card
        if card is None:
            continue
        known = old.folds.get(item_name) if old is not None else None
        if known is not None and known[0] is item:
            texts = known[1]
        else:
            texts = tuple(key(t) for p in card.properties if p.name == name for t in p.texts)
        folds[item_name] = (item, texts)
        for text in texts:
            pieces.append(text)
            starts.append(at)
            owners.append(item_name)
            at += len(text) + 1
    pieces.append("")
    return _Column(version, folds, "\0".join(pieces), starts, owners)


class Search:
    """The search strings of the address books of one store."""

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str, str], _Column] = {}

    async def find(
        self, book: str, items: CalendarItems, name: str, tm: vcard.TextMatch
    ) -> set[str]:
        """The names of the cards of ``book`` with a ``name`` property ``tm`` matches."""
        collation = "i;unicode-casemap" if tm.collation == "default" else tm.collation
        where = (book, name, collation)
        column = self._columns.pop(where, None)
        if column is None or column.version != items.version:
            snapshot = list(items.items())
            column = await offload(_build, snapshot, name, collation, column, items.version)
        self._columns[where] = column  # the most recently used last
        while len(self._columns) > MAX_BOOKS * 4:
            del self._columns[next(iter(self._columns))]
        return _matching(column, key_function(collation)(tm.text), tm.match_type)


def _matching(column: _Column, needle: str, match_type: str) -> set[str]:
    """The owners of the texts that ``needle`` (folded) matches."""
    if not needle and match_type != "equals":
        return set(column.owners)
    pattern = {
        "equals": f"\0{needle}\0", "starts-with": f"\0{needle}",
        "ends-with": f"{needle}\0", "contains": needle,
    }[match_type]  # fmt: skip
    shift = 1 if match_type in ("equals", "starts-with") else 0
    text, starts, owners = column.text, column.starts, column.owners
    found: set[str] = set()
    pos = text.find(pattern)
    while pos >= 0:
        i = bisect.bisect_right(starts, pos + shift) - 1
        if i >= 0:
            found.add(owners[i])
        pos = text.find(pattern, pos + 1)
    return found
