"""The body cache (davserver/caldav/store/cache.py): its budget counts each entry's
bookkeeping as well as its bytes, and the least recently used go first."""

from __future__ import annotations

from davserver.caldav.store.cache import ENTRY, BodyCache


def test_the_budget_counts_bookkeeping_and_drops_the_least_recently_used() -> None:
    body = b"x" * 100
    names = [f"{i}.ics" for i in range(20)]
    cache = BodyCache(limit=len(names) * (len(body) + ENTRY))
    for name in names:
        cache.put(name, '"1"', body)
    assert cache.get(names[0], '"1"') == body  # now the most recently used
    cache.put("one-more.ics", '"1"', body)  # the budget is full: the oldest use goes
    assert cache.get(names[1], '"1"') is None
    assert all(cache.get(n, '"1"') == body for n in [names[0], *names[2:], "one-more.ics"])


def test_a_moved_etag_misses_and_a_large_body_is_not_kept() -> None:
    cache = BodyCache(limit=16 * 1000)
    cache.put("a", '"1"', b"old")
    assert cache.get("a", '"2"') is None
    cache.put("a", '"2"', b"new")
    assert cache.get("a", '"2"') == b"new" and cache.get("a", '"1"') is None
    cache.put("big", '"1"', b"x" * 1001)  # more than a sixteenth of the budget
    assert cache.get("big", '"1"') is None
    cache.drop("a")
    assert cache.get("a", '"2"') is None
