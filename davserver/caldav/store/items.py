"""The items of one calendar in memory: by name, by UID, and their instance spans sorted
by start, so that a time-range query finds its answer without looking at every item."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from davserver.ical.spans import INF, Span, overlaps
from davserver.ical.summary import Summary

LONG = 7 * 86400.0
"""Spans longer than this (and open ones) are kept apart and tested one by one, so that a
lookup by start only has to go back this far before the range."""


@dataclass(frozen=True, slots=True)
class Item:
    """One calendar object resource as the index knows it."""

    etag: str
    summary: Summary
    size: int = 0
    mtime: float = 0.0
    ctime: float = 0.0
    content_type: str | None = None

    @property
    def uid(self) -> str | None:
        """The object's UID (None when it has none, or is not iCalendar)."""
        return self.summary.uid

    @property
    def component(self) -> str | None:
        """The object's main component type (VEVENT, VTODO, ...)."""
        return self.summary.component


class CalendarItems:
    """A calendar's items (a read-only mapping from name to :class:`Item`) with lookups
    by UID and by time; change it only through :meth:`put` and :meth:`remove`."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._uids: dict[str, set[str]] = {}
        self._sorted: list[tuple[float, str, float, int, int]] = []
        self._long: dict[str, list[Span]] = {}
        self._partial: set[str] = set()
        self.folders: set[str] = set()
        """Members that are collections (not items; a calendar should have none)."""

    # -- the mapping ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> Item:
        return self._items[name]

    def get(self, name: str) -> Item | None:
        """The item called ``name``, if any."""
        return self._items.get(name)

    def items(self) -> Iterator[tuple[str, Item]]:
        """(name, item) pairs."""
        return iter(self._items.items())

    def with_uid(self, uid: str) -> set[str]:
        """The names of the items with this UID."""
        return self._uids.get(uid, set())

    # -- changes -------------------------------------------------------------------------

    def put(self, name: str, item: Item) -> None:
        """Add or replace an item."""
        self.remove(name)
        self._items[name] = item
        summary = item.summary
        if summary.uid is not None:
            self._uids.setdefault(summary.uid, set()).add(name)
        if summary.since > -INF or summary.until < INF:
            self._partial.add(name)
        for span in summary.spans:
            if span.end - span.start > LONG:
                self._long.setdefault(name, []).append(span)
            else:
                bisect.insort(self._sorted, (span.start, name, span.end, span.flags, span.source))

    def remove(self, name: str) -> None:
        """Forget an item (nothing happens when it is unknown)."""
        item = self._items.pop(name, None)
        if item is None:
            return
        summary = item.summary
        if summary.uid is not None:
            names = self._uids.get(summary.uid)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._uids[summary.uid]
        self._partial.discard(name)
        self._long.pop(name, None)
        for span in summary.spans:
            if span.end - span.start <= LONG:
                i = bisect.bisect_left(self._sorted, (span.start, name))
                while i < len(self._sorted) and self._sorted[i][:2] == (span.start, name):
                    if self._sorted[i][2:4] == (span.end, span.flags):
                        del self._sorted[i]
                        break
                    i += 1

    # -- time ranges ---------------------------------------------------------------------

    def overlapping(self, lo: float, hi: float) -> tuple[set[str], set[str]]:
        """The names of the items with an instance in [lo, hi) by their spans, and those
        whose spans cannot tell (a range beyond what was enumerated of them)."""
        unsure = {n for n in self._partial if not self._items[n].summary.covers(lo, hi)}
        found: set[str] = set()
        rows = self._sorted
        i = bisect.bisect_left(rows, (lo - LONG,))
        end = len(rows)
        while i < end:
            row = rows[i]
            if row[0] > hi:
                break
            if row[1] not in found and overlaps((row[0], row[2], row[3], row[4]), lo, hi):
                found.add(row[1])
            i += 1
        for name, spans in self._long.items():
            if name not in found and any(overlaps(s, lo, hi) for s in spans):
                found.add(name)
        return found - unsure, unsure

    def spans_in(self, name: str, lo: float, hi: float) -> list[Span]:
        """The spans of one item that meet [lo, hi)."""
        item = self._items.get(name)
        if item is None:
            return []
        return [s for s in item.summary.spans if overlaps(s, lo, hi)]
