"""The items of one calendar or address book in memory: by name, by UID, and (calendar
objects) their instance spans sorted by start, so that a time-range query finds its answer
without looking at every item. Floating spans (in local wall time) are sorted apart: a
query finds them by its range widened by a day (no zone is further from UTC), then places
each candidate in the query's zone for the exact test."""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Iterable, Iterator
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

MERGE_BATCH = 4096
"""Items whose spans :meth:`CalendarItems.put_many` sorts in together."""
LONG = 7 * 86400.0
"""Spans longer than this (and open ones) are kept apart and tested one by one, so that a
lookup by start only has to go back this far before the range."""


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

    def spans_near(self, lo: float, hi: float) -> tuple[Span, ...]:
        """Those of :attr:`spans` that reach into [lo, hi] (see
        :func:`~davserver.ical.spans.unpack_near`)."""
        return self.summary.spans_near(lo, hi) if isinstance(self.summary, Summary) else ()

    def covers(self, lo: float, hi: float) -> bool:
        """Whether the spans alone answer a time-range test of [lo, hi)."""
        return isinstance(self.summary, Summary) and self.summary.covers(lo, hi)

    @property
    def card(self) -> vcard.Summary | None:
        """The vCard's summary (None when the item is not a valid vCard)."""
        return self.summary if isinstance(self.summary, vcard.Summary) else None


class SortedSpans:
    """Spans sorted by start, each with its item's name, in parallel arrays (about 30
    bytes a span rather than a tuple and its floats: 150)."""

    __slots__ = ("ends", "flags", "names", "sources", "starts")

    def __init__(self) -> None:
        self.starts = array("d")
        self.ends = array("d")
        self.flags = array("B")
        self.sources = array("I")
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: str, span: Span) -> None:
        """Insert one span of the item ``name``."""
        i = bisect.bisect_right(self.starts, span.start)
        self.starts.insert(i, span.start)
        self.ends.insert(i, span.end)
        self.flags.insert(i, span.flags)
        self.sources.insert(i, span.source)
        self.names.insert(i, name)

    def append(self, name: str, span: Span) -> None:
        """Add a span at the end, unsorted (for :meth:`merge`)."""
        self.starts.append(span.start)
        self.ends.append(span.end)
        self.flags.append(span.flags)
        self.sources.append(span.source)
        self.names.append(name)

    def _sort(self) -> None:
        order = sorted(range(len(self.names)), key=self.starts.__getitem__)
        # Each array rebuilt from a generator: no list of a float object per span.
        starts, ends, flags, sources = self.starts, self.ends, self.flags, self.sources
        self.starts = array("d", (starts[i] for i in order))
        self.ends = array("d", (ends[i] for i in order))
        self.flags = array("B", (flags[i] for i in order))
        self.sources = array("I", (sources[i] for i in order))
        self.names = [self.names[i] for i in order]

    def _adopt(self, other: SortedSpans) -> None:
        self.starts, self.ends, self.flags = other.starts, other.ends, other.flags
        self.sources, self.names = other.sources, other.names

    def merge(self, other: SortedSpans) -> None:
        """Take in the spans of ``other`` (appended unsorted; emptied): many at once cost
        one copy of the arrays rather than one each (an insertion moves the tail)."""
        if len(other) <= 8:
            for i in range(len(other)):
                self.add(other.names[i], Span(*other._row(i)))
            return
        other._sort()
        if not self.names:
            self._adopt(other)
            return
        out = SortedSpans()
        starts = self.starts
        done = 0
        for j in range(len(other)):
            i = bisect.bisect_right(starts, other.starts[j], done)
            if i > done:
                self._copy(out, done, i)
                done = i
            out.append(other.names[j], Span(*other._row(j)))
        self._copy(out, done, len(starts))
        self._adopt(out)

    def _copy(self, out: SortedSpans, lo: int, hi: int) -> None:
        """Append the rows ``lo`` to ``hi`` to ``out``."""
        out.starts.extend(self.starts[lo:hi])
        out.ends.extend(self.ends[lo:hi])
        out.flags.extend(self.flags[lo:hi])
        out.sources.extend(self.sources[lo:hi])
        out.names.extend(self.names[lo:hi])

    def _row(self, i: int) -> tuple[float, float, int, int]:
        return self.starts[i], self.ends[i], self.flags[i], self.sources[i]

    def drop(self, name: str, span: Span) -> None:
        """Remove one span of the item ``name``."""
        starts = self.starts
        i = bisect.bisect_left(starts, span.start)
        while i < len(starts) and starts[i] == span.start:
            if (
                self.names[i] == name
                and self.ends[i] == span.end
                and self.flags[i] == span.flags
                and self.sources[i] == span.source
            ):
                del starts[i], self.ends[i], self.flags[i], self.sources[i], self.names[i]
                return
            i += 1

    def starting(self, lo: float, hi: float) -> Iterator[tuple[str, Span]]:
        """The spans that start within [lo, hi], by start."""
        starts = self.starts
        i = bisect.bisect_left(starts, lo)
        end = bisect.bisect_right(starts, hi, i)
        ends, flags, sources, names = self.ends, self.flags, self.sources, self.names
        for j in range(i, end):
            yield names[j], Span(starts[j], ends[j], flags[j], sources[j])


class CalendarItems:
    """A collection's items (a read-only mapping from name to :class:`Item`) with lookups
    by UID and, in a calendar, by time; change it only through :meth:`put`,
    :meth:`put_many` and :meth:`remove`."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._uids: dict[str, str | set[str]] = {}
        """UID → the name of its item, or the names when several items share it."""
        self._sorted = SortedSpans()
        self._long: dict[str, list[Span]] = {}
        self._floating = SortedSpans()
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

    def lookup(self, names: list[str]) -> list[Item | None]:
        """The item called each of ``names`` (None where there is none), in one call."""
        get = self._items.get
        return [get(name) for name in names]

    def items(self) -> Iterator[tuple[str, Item]]:
        """(name, item) pairs."""
        return iter(self._items.items())

    def with_uid(self, uid: str) -> set[str]:
        """The names of the items with this UID."""
        names = self._uids.get(uid)
        if names is None:
            return set()
        return {names} if isinstance(names, str) else set(names)

    # -- changes -------------------------------------------------------------------------

    def put(self, name: str, item: Item) -> None:
        """Add or replace an item."""
        for span, floats in self._take(name, item):
            (self._floating if floats else self._sorted).add(name, span)

    def put_many(self, items: Iterable[tuple[str, Item]]) -> None:
        """Add or replace many items (a calendar loaded whole, or a scan's finds): their
        spans are sorted in at once."""
        # A few thousand at a time: sorting a whole calendar's spans at once would hold a
        # key and an index object for each of them meanwhile (30 MiB at 100,000 events).
        pairs = iter(items)
        while chunk := list(itertools.islice(pairs, MERGE_BATCH)):
            rows, floating = SortedSpans(), SortedSpans()
            for name, item in chunk:
                for span, floats in self._take(name, item):
                    (floating if floats else rows).append(name, span)
            self._sorted.merge(rows)
            self._floating.merge(floating)

    def _take(self, name: str, item: Item) -> Iterator[tuple[Span, bool]]:
        """Record an item but for its short spans, which it yields (with whether each
        floats) for the caller to sort in."""
        self.remove(name)
        self.version += 1
        self._items[name] = item
        summary = item.summary
        uid = summary.uid
        if uid is not None:
            known = self._uids.get(uid)
            if known is None:
                self._uids[uid] = name
            elif isinstance(known, str):
                self._uids[uid] = {known, name}
            else:
                known.add(name)
        if not isinstance(summary, Summary):
            return
        if summary.since > -INF or summary.until < INF:
            self._partial.add(name)
        for span in summary.spans:
            floats = bool(span.flags & FLOATING)
            if span.end - span.start > LONG:
                (self._floating_long if floats else self._long).setdefault(name, []).append(span)
            else:
                yield span, floats

    def remove(self, name: str) -> None:
        """Forget an item (nothing happens when it is unknown)."""
        item = self._items.pop(name, None)
        if item is None:
            return
        self.version += 1
        summary = item.summary
        uid = summary.uid
        if uid is not None:
            known = self._uids.get(uid)
            if known == name:
                del self._uids[uid]
            elif isinstance(known, set):
                known.discard(name)
                if len(known) == 1:
                    self._uids[uid] = known.pop()
        if not isinstance(summary, Summary):
            return
        self._partial.discard(name)
        self._long.pop(name, None)
        self._floating_long.pop(name, None)
        for span in summary.spans:
            if span.end - span.start <= LONG:
                (self._floating if span.flags & FLOATING else self._sorted).drop(name, span)

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
        starts, ends, flags, names = rows.starts, rows.ends, rows.flags, rows.names
        i = bisect.bisect_left(starts, lo - LONG)
        for j in range(i, bisect.bisect_right(starts, hi, i)):
            end = ends[j]
            if end < lo:  # ended before the range: no closed side can help
                continue
            name = names[j]
            if name not in found and overlaps((starts[j], end, flags[j], 0), lo, hi):
                found.add(name)
        for name, spans in self._long.items():
            if name not in found and any(overlaps(s, lo, hi) for s in spans):
                found.add(name)
        if len(self._floating) or self._floating_long:
            self._floating_overlapping(lo, hi, zone, found)
        return found - unsure, unsure

    def _floating_overlapping(
        self, lo: float, hi: float, zone: tzinfo | None, found: set[str]
    ) -> None:
        """Add to ``found`` the items with a floating instance in [lo, hi), placed in
        ``zone``: the rows whose wall times lie within a day of the range are the
        candidates."""
        for name, span in self._floating.starting(lo - DAY - LONG, hi + DAY):
            if name not in found and overlaps(absolute(span, zone), lo, hi):
                found.add(name)
        for name, spans in self._floating_long.items():
            if name not in found and any(overlaps(absolute(s, zone), lo, hi) for s in spans):
                found.add(name)
