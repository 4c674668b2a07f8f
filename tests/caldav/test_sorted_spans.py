"""The calendar's spans sorted by start in blocks (davserver/caldav/store/items.py's
SortedSpans), against a plain list: any mix of single inserts, batches and removals, with
blocks of a few rows so that every write crosses them, and starts that tie across
block boundaries."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from davserver.caldav.store import items
from davserver.caldav.store.items import SortedSpans, SpanRows
from davserver.ical.spans import Span

Row = tuple[str, Span]

spans = st.builds(
    lambda name, start, length, flags: (f"n{name}", Span(float(start), float(start + length), flags, 0)),
    st.integers(0, 30), st.integers(0, 40), st.integers(0, 5), st.sampled_from([0, 1]),
)  # fmt: skip
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), spans),
        st.tuples(st.just("merge"), st.lists(spans, max_size=40)),
        st.tuples(st.just("drop"), st.integers(0, 10**6)),
        st.tuples(st.just("query"), st.tuples(st.integers(-2, 45), st.integers(0, 20))),
    ),
    max_size=40,
)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 2 to 4 rows; a block that batches make longer than 8 rows is sorted and
    cut at once."""
    monkeypatch.setattr(items, "BLOCK", 2)
    monkeypatch.setattr(items, "UNSORTED_LIMIT", 8)


def _all(spans: SortedSpans) -> list[Row]:
    return list(spans.starting(float("-inf"), float("inf")))


@settings(max_examples=300, deadline=None)
@given(operations)
def test_blocks_hold_what_a_sorted_list_holds(ops: list[tuple[str, Any]]) -> None:
    sorted_spans = SortedSpans()
    model: list[Row] = []
    for op, arg in ops:
        if op == "add":
            name, span = arg
            sorted_spans.add(name, span)
            model.append((name, span))
        elif op == "merge":
            rows = SpanRows()
            for name, span in arg:
                rows.append(name, span)
            sorted_spans.merge(rows)
            model += arg
        elif op == "drop" and model:
            name, span = model.pop(arg % len(model))
            sorted_spans.drop(name, span)
        elif op == "query":
            lo, width = arg
            found = list(sorted_spans.starting(lo, lo + width))
            assert Counter(found) == Counter(r for r in model if lo <= r[1].start <= lo + width)
            assert [s.start for _, s in found] == sorted(s.start for _, s in found)
        every = _all(sorted_spans)
        assert len(sorted_spans) == len(model)
        assert Counter(every) == Counter(model)
        assert [s.start for _, s in every] == sorted(s.start for _, s in model)


def test_a_calendars_load_and_its_writes_keep_the_blocks_short() -> None:
    """Batches appended unsorted are sorted and cut when asked for; single writes then
    cut a block that grows past twice its size."""
    sorted_spans = SortedSpans()
    for batch in range(5):
        rows = SpanRows()
        for i in range(40):
            rows.append(f"b{batch}-{i}", Span(float((i * 7919 + batch) % 97), 100.0, 0, 0))
        sorted_spans.merge(rows)
    for i in range(30):
        sorted_spans.add(f"w{i}", Span(50.0, 60.0, 0, 0))
    sorted_spans.settle()
    blocks = sorted_spans._blocks
    assert all(1 <= len(b) <= 2 * items.BLOCK for b in blocks)
    assert list(sorted_spans._firsts) == [b.starts[0] for b in blocks]
    assert len(_all(sorted_spans)) == 230
