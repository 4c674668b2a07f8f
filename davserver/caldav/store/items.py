"""The items of one calendar or address book in memory: by name, by UID, and (calendar
objects) their instance spans sorted by start, so that a time-range query finds its answer
without looking at every item. Floating spans (in local wall time) are sorted apart: a
query finds them by its range widened by a day (no zone is further from UTC), then places
each candidate in the query's zone for the exact test."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo

from davserver import vcard
from davserver.ical.spans import DAY, EARLIEST, FLOATING, INF, LATEST, Span, absolute, overlaps
from davserver.ical.summary import Summary, summarize

BOOKS_DIR = ".addressbooks"
"""The inner folder of the address-book homes (see layout.py): its items are vCards."""
UNREADABLE = Summary(None, None)
"""The summary of a stored vCard that is not a valid one: no UID, matches no query."""

ItemSummary = Summary | vcard.Summary
"""What the index keeps of an item: a calendar object's summary (with its spans) or a
vCard's."""

LONG = 7 * 86400.0
"""Spans longer than this (and open ones) are kept apart and tested one by one, so that a
lookup by start only has to go back this far before the range."""
Row = tuple[float, str, float, int, int]
"""A span in a sorted list: (start, item name, end, flags, source)."""


def summarize_item(inner_path: str, data: bytes) -> ItemSummary:
    """The summary of the item stored at ``inner_path`` (CPU work: run it in the thread
    pool): a vCard's in an address book, a calendar object's elsewhere."""
    if not inner_path.startswith(BOOKS_DIR + "/"):
        return summarize(data)
    try:
        return vcard.summarize(vcard.parse(data))
    except vcard.VCardError:
        return UNREADABLE


@dataclass(frozen=True, slots=True)
class Item:
    """One calendar object or vCard resource as the index knows it."""

    etag: str
    summary: ItemSummary
    size: int = 0
    mtime: float = 0.0
    ctime: float = 0.0
    content_type: str | None = None

    @property
    def uid(self) -> str | None:
        """The item's UID (None when it has none, or is not iCalendar or vCard)."""
        return self.summary.uid

    @property
    def component(self) -> str | None:
        """The object's main component type (VEVENT, VTODO, ...; None for a vCard)."""
        return self.summary.component if isinstance(self.summary, Summary) else None

    @property
    def spans(self) -> tuple[Span, ...]:
        """The spans of a calendar object's instances (none for a vCard)."""
        return self.summary.spans if isinstance(self.summary, Summary) else ()

    def covers(self, lo: float, hi: float) -> bool:
        """Whether the spans alone answer a time-range test of [lo, hi)."""
        return isinstance(self.summary, Summary) and self.summary.covers(lo, hi)

    @property
    def card(self) -> vcard.Summary | None:
        """The vCard's summary (None when the item is not a valid vCard)."""
        return self.summary if isinstance(self.summary, vcard.Summary) else None


class CalendarItems:
    """A collection's items (a read-only mapping from name to :class:`Item`) with lookups
    by UID and, in a calendar, by time; change it only through :meth:`put` and
    :meth:`remove`."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._uids: dict[str, set[str]] = {}
        self._sorted: list[Row] = []
        self._long: dict[str, list[Span]] = {}
        self._floating: list[Row] = []
        self._floating_long: dict[str, list[Span]] = {}
        """Floating spans, kept apart the same way (their times are wall times)."""
        self._partial: set[str] = set()
        self.folders: set[str] = set()
        """Members that are collections (not items; a collection should have none)."""
        self.version = 0
        """Counts the changes (what is worked out from the items can tell it is current)."""

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
        self.version += 1
        self._items[name] = item
        summary = item.summary
        if summary.uid is not None:
            self._uids.setdefault(summary.uid, set()).add(name)
        if not isinstance(summary, Summary):
            return
        if summary.since > -INF or summary.until < INF:
            self._partial.add(name)
        for span in summary.spans:
            floats = span.flags & FLOATING
            if span.end - span.start > LONG:
                (self._floating_long if floats else self._long).setdefault(name, []).append(span)
            else:
                row = (span.start, name, span.end, span.flags, span.source)
                bisect.insort(self._floating if floats else self._sorted, row)

    def remove(self, name: str) -> None:
        """Forget an item (nothing happens when it is unknown)."""
        item = self._items.pop(name, None)
        if item is None:
            return
        self.version += 1
        summary = item.summary
        if summary.uid is not None:
            names = self._uids.get(summary.uid)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._uids[summary.uid]
        if not isinstance(summary, Summary):
            return
        self._partial.discard(name)
        self._long.pop(name, None)
        self._floating_long.pop(name, None)
        for span in summary.spans:
            if span.end - span.start <= LONG:
                _drop(self._floating if span.flags & FLOATING else self._sorted, span, name)

    # -- time ranges ---------------------------------------------------------------------

    def overlapping(
        self, lo: float, hi: float, zone: tzinfo | None = None
    ) -> tuple[set[str], set[str]]:
        """The names of the items with an instance in [lo, hi) by their spans (floating
        ones in ``zone``, None: UTC), and those whose spans cannot tell (a range beyond
        what was enumerated of them, with a day's margin: a floating instance's wall
        time may be that far from UTC)."""
        wide_lo, wide_hi = max(lo - DAY, EARLIEST.timestamp()), min(hi + DAY, LATEST.timestamp())
        unsure = {n for n in self._partial if not self._items[n].covers(wide_lo, wide_hi)}
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
        if self._floating or self._floating_long:
            self._floating_overlapping(lo, hi, zone, found)
        return found - unsure, unsure

    def _floating_overlapping(
        self, lo: float, hi: float, zone: tzinfo | None, found: set[str]
    ) -> None:
        """Add to ``found`` the items with a floating instance in [lo, hi), placed in
        ``zone``: the rows whose wall times lie within a day of the range are the
        candidates."""
        rows = self._floating
        i = bisect.bisect_left(rows, (lo - DAY - LONG,))
        end = len(rows)
        while i < end:
            row = rows[i]
            if row[0] > hi + DAY:
                break
            if row[1] not in found:
                span = absolute(Span(row[0], row[2], row[3], row[4]), zone)
                if overlaps(span, lo, hi):
                    found.add(row[1])
            i += 1
        for name, spans in self._floating_long.items():
            if name not in found and any(overlaps(absolute(s, zone), lo, hi) for s in spans):
                found.add(name)

    def spans_in(self, name: str, lo: float, hi: float) -> list[Span]:
        """The spans of one item that meet [lo, hi)."""
        item = self._items.get(name)
        if item is None:
            return []
        return [s for s in item.spans if overlaps(s, lo, hi)]


def _drop(rows: list[Row], span: Span, name: str) -> None:
    """Remove one span of the item ``name`` from a sorted list."""
    i = bisect.bisect_left(rows, (span.start, name))
    while i < len(rows) and rows[i][:2] == (span.start, name):
        if rows[i][2:4] == (span.end, span.flags):
            del rows[i]
            return
        i += 1
