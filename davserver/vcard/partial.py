"""Partial retrieval (RFC 6352 §10.4.2): the vCard with only the properties an
``address-data`` asks for, cut from the stored text. Kept lines are copied as stored
(folding and line breaks included); a ``novalue`` one keeps its group, name and
parameters and ends at the colon. BEGIN, VERSION and END are always there: the RFC lets a
partial answer be an invalid vCard (no UID, no FN), but without VERSION it would not be
readable as a vCard of any version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .lines import fold
from .parse import Property, VCard, split_name

ALWAYS_KEPT = frozenset({"VERSION"})
"""The properties a partial answer has whether asked for or not (besides BEGIN and END)."""


@dataclass(frozen=True, slots=True)
class PropRequest:
    """``<C:prop name="..." novalue="..."/>``: ``TEL`` matches in any group, ``item1.TEL``
    only there."""

    name: str
    novalue: bool = False


def partial(card: VCard, props: Sequence[PropRequest]) -> bytes:
    """The card with only ``props`` (and BEGIN, VERSION, END); the whole stored card when
    ``props`` is empty (an address-data without prop elements)."""
    if not props:
        return card.data
    wanted = [(*split_name(r.name), r.novalue) for r in props]
    out = [card.begin]
    for prop in card.properties:
        novalues = [nv for group, name, nv in wanted if prop.is_named(group, name)]
        if prop.name in ALWAYS_KEPT or (novalues and not all(novalues)):
            out.append(prop.source)
        elif novalues:
            out.append(_without_value(prop))
    out.append(card.end)
    return "".join(out).encode()


def _without_value(prop: Property) -> str:
    text = fold(prop.head + ":")
    return text if prop.source.endswith("\r\n") else text.replace("\r\n", "\n")
