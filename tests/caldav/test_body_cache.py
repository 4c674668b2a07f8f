"""The body cache (davserver/caldav/store/cache.py): its budget counts each entry's
bookkeeping as well as its bytes, and the least recently used go first; renderings of the
bytes are kept with their ETag, in a budget of their own."""

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


def test_a_rendering_is_made_once_and_kept_with_its_etag_in_its_own_budget() -> None:
    made: list[bytes] = []

    def render(data: bytes) -> str:
        made.append(data)
        return f"<x>{data.decode()}</x>"

    cache = BodyCache(limit=16 * 1000, texts=3 * (10 + ENTRY))
    assert cache.rendered("a", '"1"', render) is None  # no bytes cached: nothing rendered
    cache.put("a", '"1"', b"one")
    assert cache.rendered("a", '"1"', render) == "<x>one</x>"
    assert cache.rendered("a", '"1"', render) == "<x>one</x>" and made == [b"one"]
    assert cache.rendered("a", '"2"', render) is None  # another ETag
    assert cache.rendered("a", '"1"', lambda d: "other") == "other"  # another rendering
    cache.put("a", '"2"', b"two")  # new bytes: the old rendering is not given again
    assert cache.rendered("a", '"2"', render) == "<x>two</x>" and made[-1] == b"two"
    for name in "bcd":  # three renderings fit: the least recently used goes
        cache.put(name, '"1"', name.encode() * 3)
        cache.rendered(name, '"1"', render)
    made.clear()
    assert cache.rendered("a", '"2"', render) == "<x>two</x>" and made == [b"two"]
    assert cache.rendered("d", '"1"', render) == "<x>ddd</x>" and made == [b"two"]
    assert cache.rendered("c", '"1"', render) == "<x>ccc</x>" and made == [b"two"]
    assert cache.rendered("b", '"1"', render) == "<x>bbb</x>" and made == [b"two", b"bbb"]
    assert cache.get("a", '"2"') == b"two"  # the bytes stay in theirs
    cache.drop("d")
    assert cache.rendered("d", '"1"', render) is None
