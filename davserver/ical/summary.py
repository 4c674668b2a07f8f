"""What the calendar index keeps of one calendar object: UID, component type and the
spans of its instances, worked out once when the object is written or first seen.

Bounded recurrences (COUNT, UNTIL, RDATE) are enumerated whole. Unbounded ones are
enumerated up to a horizon and at most :data:`MAX_SPANS` instances; ``since`` and
``until`` then say which ranges the spans answer for, and a query outside them falls
back to evaluating the object itself.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator, Sequence

import icalendar
import recurring_ical_events

from .scan import scan_item
from .spans import (
    EARLIEST,
    INF,
    LATEST,
    Span,
    fixed_spans,
    kind_of,
    main_components,
    moment,
    occurrence_spans,
    pack,
    query,
    recurs,
    timestamp,
    unpack,
    unpack_near,
)
from .zones import parse

MAX_SPANS = 500
YEAR = 365 * 86400.0
HORIZON = 20 * YEAR
"""How far past now an unbounded recurrence is enumerated (at most)."""


class Summary:
    """The index's view of one object. Its spans are kept packed (:func:`~.spans.pack`,
    32 bytes each, the form the index stores): a calendar of 100,000 objects holds one
    summary each in every worker."""

    __slots__ = ("component", "packed", "since", "uid", "until")

    uid: str | None
    component: str | None
    packed: bytes
    """The spans, packed."""
    since: float
    until: float
    """The spans hold every instance that meets a range within [since, until)."""

    def __init__(
        self,
        uid: str | None,
        component: str | None,
        spans: Sequence[Span] | bytes = (),
        since: float = -INF,
        until: float = INF,
    ) -> None:
        self.uid = uid
        self.component = sys.intern(component) if component is not None else None
        self.packed = spans if isinstance(spans, bytes) else pack(spans)
        # The open ends most objects have, shared rather than a float each.
        self.since = -INF if since == -INF else since
        self.until = INF if until == INF else until

    @property
    def spans(self) -> tuple[Span, ...]:
        """The spans of the object's instances."""
        return unpack(self.packed) if self.packed else ()

    def spans_near(self, lo: float, hi: float) -> tuple[Span, ...]:
        """The spans that reach into [lo, hi] (see :func:`~davserver.ical.spans.unpack_near`)."""
        return unpack_near(self.packed, lo, hi) if self.packed else ()

    def covers(self, lo: float, hi: float) -> bool:
        """Whether the spans alone answer a time-range test of [lo, hi)."""
        return self.since <= lo and hi <= self.until

    def _key(self) -> tuple[object, ...]:
        return (self.uid, self.component, self.packed, self.since, self.until)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Summary) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Summary(uid={self.uid!r}, component={self.component!r}, spans={self.spans!r}, "
            f"since={self.since!r}, until={self.until!r})"
        )


def summarize(data: bytes, now: float | None = None) -> Summary:
    """The summary of a stored object (CPU work: run it in the thread pool). A file
    that is not iCalendar keeps the UID and component a plain scan finds, and no spans."""
    try:
        calendar = parse(data)
    except (ValueError, IndexError, KeyError, TypeError):
        uid, component = scan_item(data)
        return Summary(uid, component)
    return summarize_calendar(calendar, time.time() if now is None else now)


def summarize_calendar(calendar: icalendar.Calendar, now: float) -> Summary:
    """The summary of a parsed object (parsed by :func:`~.zones.parse`, or governed by
    :func:`~.zones.govern`: its own time zone definitions where they differ from the
    database's)."""
    components = main_components(calendar)
    if not components:
        return Summary(None, None)
    kind = kind_of(components[0])
    uid_prop = components[0].get("UID")
    uid = str(uid_prop) if uid_prop is not None else None
    own = [c for c in components if c.name == kind]
    if not recurs(own):
        spans = [s for s in fixed_spans(components) if components[s.source].name == kind]
        return Summary(uid, kind, tuple(spans))
    try:
        spans, since, until = _recurring(calendar, components, kind, now)
    except Exception:
        return Summary(uid, kind, (), INF, -INF)
    return Summary(uid, kind, tuple(spans), since, until)


def _bounded(components: list[icalendar.cal.Component]) -> bool:
    """Whether every rule ends after a known, small number of instances."""
    for component in components:
        rules = component.get("RRULE", [])
        for rule in rules if isinstance(rules, list) else [rules]:
            count = rule.get("COUNT")
            if not count or int(count[0]) > MAX_SPANS:
                return False
    return True


def _recurring(
    calendar: icalendar.Calendar, components: list[icalendar.cal.Component], kind: str, now: float
) -> tuple[list[Span], float, float]:
    q = query(calendar, kind)
    if _bounded([c for c in components if c.name == kind]):
        found = q._occurrences_between(EARLIEST, LATEST)
        spans = [span for span, _ in occurrence_spans(iter(found), components)]
        return spans, EARLIEST.timestamp(), LATEST.timestamp()
    spans, until = _walk(q, components, EARLIEST.timestamp(), now + HORIZON)
    if until < now + YEAR:  # too many instances before now: index the years around now
        since = now - YEAR
        spans, until = _walk(q, components, since, now + HORIZON)
        return spans, since, until
    return spans, EARLIEST.timestamp(), until


def _walk(
    q: recurring_ical_events.CalendarQuery,
    components: list[icalendar.cal.Component],
    since: float,
    horizon: float,
) -> tuple[list[Span], float]:
    """Spans of the instances from ``since`` on, in order of start, until the horizon or
    :data:`MAX_SPANS` of them; and the start before which they are complete."""
    occurrences = q._after(moment(since - 86400.0))
    spans: list[Span] = []
    for span, occ in occurrence_spans(itertools.islice(occurrences, 4 * MAX_SPANS), components):
        begin = timestamp(occ.start)  # type: ignore[attr-defined]
        if begin >= horizon or len(spans) == MAX_SPANS:
            return spans, min(begin, horizon)
        spans.append(span)
    if len(spans) < MAX_SPANS and _exhausted(occurrences):
        return spans, LATEST.timestamp()
    return spans, spans[-1].start if spans else since


def _exhausted(occurrences: Iterator[object]) -> bool:
    """Whether the library has no occurrence left."""
    return next(occurrences, None) is None
