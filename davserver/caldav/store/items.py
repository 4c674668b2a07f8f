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
BLOCK = 1024
"""Rows of a block of :class:`SortedSpans` (from this to twice as many)."""
ADD_ONE_BY_ONE = 8
"""Spans are inserted one by one while they number less than an eighth of those held (an
insertion moves part of one block; a merge sorts each block it reaches again)."""
UNSORTED_LIMIT = 64 * BLOCK
"""Rows a block may reach unsorted during a merge before it is sorted and cut (a sort
holds a key object for each of its rows)."""
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


class SpanRows:
    """Spans, each with its item's name, in parallel arrays (about 30 bytes a span rather
    than a tuple and its floats: 150): one block of :class:`SortedSpans`, or a batch of
    spans to be sorted in."""

    __slots__ = ("ends", "flags", "names", "sources", "starts")

    def __init__(self) -> None:
        self.starts = array("d")
        self.ends = array("d")
        self.flags = array("B")
        self.sources = array("I")
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self.names)

    def append(self, name: str, span: Span) -> None:
        """Add a span at the end."""
        self.starts.append(span.start)
        self.ends.append(span.end)
        self.flags.append(span.flags)
        self.sources.append(span.source)
        self.names.append(name)

    def insert(self, name: str, span: Span) -> None:
        """Insert a span after those that start when it does or before."""
        i = bisect.bisect_right(self.starts, span.start)
        self.starts.insert(i, span.start)
        self.ends.insert(i, span.end)
        self.flags.insert(i, span.flags)
        self.sources.insert(i, span.source)
        self.names.insert(i, name)

    def remove(self, i: int) -> None:
        """Remove the span at ``i``."""
        del self.starts[i], self.ends[i], self.flags[i], self.sources[i], self.names[i]

    def row(self, i: int) -> Span:
        """The span at ``i``."""
        return Span(self.starts[i], self.ends[i], self.flags[i], self.sources[i])

    def sort(self) -> None:
        """Order the spans by start."""
        order = sorted(range(len(self.names)), key=self.starts.__getitem__)
        # Each array rebuilt from a generator: no list of a float object per span.
        starts, ends, flags, sources = self.starts, self.ends, self.flags, self.sources
        self.starts = array("d", (starts[i] for i in order))
        self.ends = array("d", (ends[i] for i in order))
        self.flags = array("B", (flags[i] for i in order))
        self.sources = array("I", (sources[i] for i in order))
        self.names = [self.names[i] for i in order]

    def piece(self, lo: int, hi: int) -> SpanRows:
        """The rows ``lo`` to ``hi`` as rows of their own."""
        out = SpanRows()
        out.starts, out.ends = self.starts[lo:hi], self.ends[lo:hi]
        out.flags, out.sources = self.flags[lo:hi], self.sources[lo:hi]
        out.names = self.names[lo:hi]
        return out


class SortedSpans:
    """Spans sorted by start, each with its item's name, in blocks of :data:`BLOCK` to
    twice that many rows (:class:`SpanRows`), each block's starts between its first and
    the next block's: a write moves the rows of one block, not every span of the calendar
    (the benchmark's calendar of 100,000 events has some 400,000; one array of them was
    copied whole for each recurring object written: about 13 ms).

    Many spans at once (:meth:`merge`, a calendar loaded) are appended to the blocks their
    starts fall in and each such block is sorted once, when next asked for
    (:meth:`settle`): the batches of a load do not sort every block again each."""

    __slots__ = ("_blocks", "_firsts", "_len", "_unsorted")

    def __init__(self) -> None:
        self._blocks: list[SpanRows] = []
        self._firsts = array("d")
        """The lowest start of each block."""
        self._len = 0
        self._unsorted: set[SpanRows] = set()
        """The blocks that :meth:`merge` appended to."""

    def __len__(self) -> int:
        return self._len

    def add(self, name: str, span: Span) -> None:
        """Insert one span of the item ``name``."""
        self.settle()
        if not self._blocks:
            self._blocks.append(SpanRows())
            self._firsts.append(span.start)
        b = max(bisect.bisect_right(self._firsts, span.start) - 1, 0)
        block = self._blocks[b]
        block.insert(name, span)
        self._firsts[b] = block.starts[0]
        self._len += 1
        if len(block) > 2 * BLOCK:
            self._split(b)

    def merge(self, rows: SpanRows) -> None:
        """Take in the spans of ``rows`` (in any order; taken over): a few are inserted
        one by one; many are sorted and appended to the blocks they fall in, which
        :meth:`settle` sorts."""
        if len(rows) * ADD_ONE_BY_ONE < self._len and not self._unsorted:
            for i in range(len(rows)):
                self.add(rows.names[i], rows.row(i))
            return
        if not rows:
            return
        rows.sort()
        self._len += len(rows)
        if not self._blocks:
            self._blocks.append(rows)
            self._firsts.append(rows.starts[0])
            self._split(0)
            return
        firsts, starts = self._firsts, rows.starts
        hi = len(starts)
        for b in range(len(self._blocks) - 1, -1, -1):  # from the last: cuts move none before
            lo = bisect.bisect_left(starts, firsts[b], 0, hi) if b else 0
            if lo == hi:
                continue
            block = _joined(self._blocks[b], rows.piece(lo, hi))
            hi = lo
            if len(block) > UNSORTED_LIMIT:
                self._unsorted.discard(block)
                block.sort()
                firsts[b] = block.starts[0]
                self._split(b)
            else:
                self._unsorted.add(block)

    def settle(self) -> None:
        """Sort the blocks :meth:`merge` appended to (and cut those grown too long)."""
        if not self._unsorted:
            return
        for b in range(len(self._blocks) - 1, -1, -1):  # from the last: cuts move none before
            block = self._blocks[b]
            if block in self._unsorted:
                block.sort()
                self._firsts[b] = block.starts[0]  # the first block takes lower ones
                self._split(b)
        self._unsorted.clear()

    def _split(self, b: int) -> None:
        """Cut block ``b`` (sorted) in pieces of :data:`BLOCK` rows when it is longer
        than twice that."""
        block = self._blocks[b]
        if len(block) <= 2 * BLOCK:
            return
        pieces = [block.piece(i, i + BLOCK) for i in range(0, len(block), BLOCK)]
        if len(pieces[-1]) < BLOCK // 2:
            last = pieces.pop()
            pieces[-1] = _joined(pieces[-1], last)
        self._blocks[b : b + 1] = pieces
        self._firsts[b : b + 1] = array("d", (p.starts[0] for p in pieces))

    def drop(self, name: str, span: Span) -> None:
        """Remove one span of the item ``name``."""
        self.settle()
        firsts, start = self._firsts, span.start
        b = max(bisect.bisect_left(firsts, start) - 1, 0)
        while b < len(self._blocks) and (b == 0 or firsts[b] <= start):
            block = self._blocks[b]
            starts = block.starts
            i = bisect.bisect_left(starts, start)
            while i < len(starts) and starts[i] == start:
                if block.names[i] == name and block.row(i) == span:
                    self._take_out(b, i)
                    return
                i += 1
            if i < len(starts):
                return  # past the start
            b += 1

    def _take_out(self, b: int, i: int) -> None:
        block = self._blocks[b]
        block.remove(i)
        self._len -= 1
        if not block:
            del self._blocks[b], self._firsts[b]
        elif i == 0:
            self._firsts[b] = block.starts[0]

    def around(self, lo: float, hi: float) -> Iterator[tuple[SpanRows, int, int]]:
        """The rows whose start lies within [lo, hi]: per block, the block and the
        range of its indexes."""
        self.settle()
        b = max(bisect.bisect_left(self._firsts, lo) - 1, 0)
        for block in itertools.islice(self._blocks, b, None):
            starts = block.starts
            if starts[0] > hi:
                return
            i = bisect.bisect_left(starts, lo)
            end = bisect.bisect_right(starts, hi, i)
            if i < end:
                yield block, i, end

    def starting(self, lo: float, hi: float) -> Iterator[tuple[str, Span]]:
        """The spans that start within [lo, hi], by start."""
        for block, i, end in self.around(lo, hi):
            names, starts, ends = block.names, block.starts, block.ends
            flags, sources = block.flags, block.sources
            for j in range(i, end):
                yield names[j], Span(starts[j], ends[j], flags[j], sources[j])


def _joined(first: SpanRows, second: SpanRows) -> SpanRows:
    """The rows of ``first`` then ``second`` (in order already)."""
    first.starts.extend(second.starts)
    first.ends.extend(second.ends)
    first.flags.extend(second.flags)
    first.sources.extend(second.sources)
    first.names.extend(second.names)
    return first


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
            rows, floating = SpanRows(), SpanRows()
            for name, item in chunk:
                for span, floats in self._take(name, item):
                    (floating if floats else rows).append(name, span)
            self._sorted.merge(rows)
            self._floating.merge(floating)
        self._sorted.settle()
        self._floating.settle()

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
        for rows, i, last in self._sorted.around(lo - LONG, hi):
            starts, ends, flags, names = rows.starts, rows.ends, rows.flags, rows.names
            for j in range(i, last):
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
