"""The calendar index (ItemIndex, davserver/caldav/store/index.py), as every index keeps it:
the items of each calendar, the change log that sync tokens and ctags count in, and both
outliving a restart.

Each test runs once per index in ``INDEXES``: a new index is one more line there, a
function that opens it at a place (a folder, or a database: opening.py) so that opening
the same place again finds what was recorded; two indexes open at one place act as two
processes (or hosts) sharing it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.caldav.store.index import CalendarIndex, ItemIndex
from davserver.caldav.store.items import CalendarItems, Item
from davserver.caldav.store.pg_index import PgCalendarIndex
from davserver.ical.spans import Span, overlaps
from davserver.ical.summary import Summary
from davserver.state.postgres.database import PgDatabase


def sqlite(place: Place) -> ItemIndex:
    """The SQLite index in the state folder."""
    return CalendarIndex(place.folder / "caldav.sqlite3")


@in_database
def postgres(place: Place) -> ItemIndex:
    """The index several hosts share (one CalDAV mount's part of the shared tables)."""
    return PgCalendarIndex(PgDatabase(place.url), "/caldav")


INDEXES = [
    pytest.param(sqlite, id="sqlite"),
    pytest.param(postgres, id="postgres"),
]

Open = Opened[ItemIndex]
CAL = "alice/calendar"


def item(etag: str, uid: str = "uid-1", start: float = 1000.0) -> Item:
    """An indexed event with one instance, and every resource fact set."""
    summary = Summary(uid, "VEVENT", (Span(start, start + 3600, 0, 0),), 0.0, 2e9)
    return Item(etag, summary, 120, 1_700_000_000.5, 1_600_000_000.25, "text/calendar")


@pytest.fixture(params=INDEXES)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the index at one place (or another)."""
    here = place_for(request, tmp_path)
    opened = Opened(lambda place=here: request.param(place), here)
    yield opened
    await opened.close_all()


def as_dict(items: CalendarItems) -> dict[str, Item]:
    return dict(items.items())


async def test_a_new_index_knows_nothing(opener: Open) -> None:
    index = opener()
    assert as_dict(await index.items(CAL)) == {}
    assert (await index.token(CAL), await index.newest()) == (0, 0)
    assert await index.changes_since(CAL, 0) == []
    epoch = await index.epoch()
    assert isinstance(epoch, str) and epoch


async def test_items_are_kept_with_every_fact(opener: Open) -> None:
    index = opener()
    assert index.cached(CAL) is None
    await index.update(CAL, {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2", 5000.0)}, [])
    items = await index.items(CAL)
    assert as_dict(items) == {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2", 5000.0)}
    assert index.cached(CAL) is items
    assert items.with_uid("uid-2") == {"b.ics"}
    await index.update(CAL, {"a.ics": item('"3"')}, ["b.ics"])
    assert as_dict(await index.items(CAL)) == {"a.ics": item('"3"')}
    assert as_dict(await index.items("alice/other")) == {}


async def test_every_change_moves_the_calendars_token(opener: Open) -> None:
    index = opener()
    tokens = [await index.token(CAL)]
    await index.update(CAL, {"a.ics": item('"1"')}, [])
    tokens.append(await index.token(CAL))
    await index.update(CAL, {}, [], touched=True)  # the calendar's own properties
    tokens.append(await index.token(CAL))
    await index.update(CAL, {}, ["a.ics"])
    tokens.append(await index.token(CAL))
    assert tokens == sorted(set(tokens))
    assert await index.newest() == tokens[-1]


async def test_what_does_not_count_leaves_the_token(opener: Open) -> None:
    index = opener()
    await index.update(CAL, {"a.ics": item('"1"')}, [])
    token = await index.token(CAL)
    await index.update(CAL, {}, [])
    await index.update(CAL, {"a.ics": item('"1"', start=9.0)}, [], quiet=frozenset({"a.ics"}))
    assert await index.token(CAL) == token
    assert (await index.items(CAL))["a.ics"] == item('"1"', start=9.0)


async def test_changes_since_name_each_items_latest_change(opener: Open) -> None:
    index = opener()
    await index.update(CAL, {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2")}, [])
    start = await index.token(CAL)
    await index.update(CAL, {"a.ics": item('"3"')}, [])
    await index.update(CAL, {"c.ics": item('"4"', "uid-3")}, [])
    await index.update(CAL, {}, ["a.ics"], touched=True)
    changes = await index.changes_since(CAL, start)
    assert [(name, deleted) for _, name, deleted in changes] == [
        ("c.ics", False),
        ("a.ics", True),
    ]
    numbers = [seq for seq, _, _ in changes]
    assert numbers == sorted(numbers) and numbers[0] > start
    assert numbers[-1] <= await index.token(CAL)
    everything = await index.changes_since(CAL, 0)
    assert {name for _, name, _ in everything} == {"a.ics", "b.ics", "c.ics"}


async def test_calendars_count_apart_and_newest_covers_all(opener: Open) -> None:
    index = opener()
    await index.update(CAL, {"a.ics": item('"1"')}, [])
    token = await index.token(CAL)
    await index.update("bob/calendar", {"b.ics": item('"2"')}, [])
    assert await index.token(CAL) == token
    assert await index.newest() == await index.token("bob/calendar") > token
    assert await index.changes_since(CAL, token) == []


async def test_a_forgotten_calendar_logs_its_items_deleted(opener: Open) -> None:
    index = opener()
    await index.update(CAL, {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2")}, [])
    token = await index.token(CAL)
    await index.forget(CAL)
    assert await index.token(CAL) > token  # a calendar made again has a new ctag
    changes = await index.changes_since(CAL, token)
    assert sorted((name, deleted) for _, name, deleted in changes) == [
        ("a.ics", True),
        ("b.ics", True),
    ]
    assert as_dict(await index.items(CAL)) == {}


async def test_a_forgotten_home_takes_its_calendars_only(opener: Open) -> None:
    index = opener()
    await index.update("al/calendar", {"a.ics": item('"1"')}, [])
    await index.update("al/tasks", {"t.ics": item('"2"')}, [])
    await index.update("alice/calendar", {"x.ics": item('"3"')}, [])
    tokens = {c: await index.token(c) for c in ("al/calendar", "al/tasks", "alice/calendar")}
    await index.items("al/calendar")  # in memory too
    await index.forget_home("al")
    for calendar in ("al/calendar", "al/tasks"):
        assert as_dict(await index.items(calendar)) == {}
        changes = await index.changes_since(calendar, tokens[calendar])
        assert [deleted for _, _, deleted in changes] == [True]
    assert as_dict(await index.items("alice/calendar")) == {"x.ics": item('"3"')}
    assert await index.token("alice/calendar") == tokens["alice/calendar"]


async def test_the_index_outlives_its_closing(opener: Open) -> None:
    index = opener()
    await index.update(CAL, {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2")}, [])
    await index.update(CAL, {}, ["b.ics"], touched=True)
    facts = (
        await index.epoch(),
        await index.token(CAL),
        await index.newest(),
        await index.changes_since(CAL, 0),
    )
    await opener.close(index)
    again = opener()
    assert as_dict(await again.items(CAL)) == {"a.ics": item('"1"')}
    assert (
        await again.epoch(),
        await again.token(CAL),
        await again.newest(),
        await again.changes_since(CAL, 0),
    ) == facts
    await again.update(CAL, {"c.ics": item('"3"')}, [])
    assert await again.token(CAL) > facts[1]


async def test_another_index_has_another_epoch(opener: Open) -> None:
    assert opener.place is not None
    one, other = opener(), opener(opener.place.elsewhere())
    await one.update(CAL, {"a.ics": item('"1"')}, [])
    await other.update(CAL, {"a.ics": item('"1"')}, [])
    assert await one.epoch() != await other.epoch()


async def test_concurrent_updates_are_all_recorded(opener: Open) -> None:
    index = opener()
    await asyncio.gather(
        *(index.update(CAL, {f"e{i}.ics": item(f'"{i}"', f"uid-{i}")}, []) for i in range(20))
    )
    assert sorted(as_dict(await index.items(CAL))) == sorted(f"e{i}.ics" for i in range(20))
    changes = await index.changes_since(CAL, 0)
    assert len({seq for seq, _, _ in changes}) == 20


async def test_indexes_at_one_place_share_items_and_tokens(opener: Open) -> None:
    one, other = opener(), opener()  # two processes sharing the state folder
    await one.update(CAL, {"a.ics": item('"1"')}, [])
    await one.update("al/tasks", {"t.ics": item('"2"')}, [])
    assert as_dict(await other.items(CAL)) == {"a.ics": item('"1"')}
    assert as_dict(await other.items("al/tasks")) == {"t.ics": item('"2"')}
    await one.update(CAL, {"b.ics": item('"3"', "uid-2")}, [])
    await one.update("al/tasks", {}, ["t.ics"])
    assert await other.token(CAL) == await one.token(CAL)
    assert await other.newest() == await one.newest()
    assert await other.epoch() == await one.epoch()
    other.uncache(CAL)  # what another process's change event tells it
    assert other.cached(CAL) is None
    assert sorted(as_dict(await other.items(CAL))) == ["a.ics", "b.ics"]
    other.uncache_home("al")
    assert other.cached("al/tasks") is None and other.cached(CAL) is not None
    assert as_dict(await other.items("al/tasks")) == {}


async def test_an_index_reads_again_only_the_items_another_changed(opener: Open) -> None:
    one, other = opener(), opener()  # two processes sharing the state
    await one.update(CAL, {"a.ics": item('"1"'), "b.ics": item('"2"', "uid-2")}, [])
    before = await other.items(CAL)
    await one.update(CAL, {"a.ics": item('"3"'), "c.ics": item('"4"', "uid-4")}, ["b.ics"])
    other.uncache(CAL, ["a.ics", "b.ics", "c.ics"])  # what the change events name
    after = await other.items(CAL)
    assert after is before  # the rest of memory kept
    assert as_dict(after) == {"a.ics": item('"3"'), "c.ics": item('"4"', "uid-4")}
    assert after.with_uid("uid-2") == set() and after.with_uid("uid-4") == {"c.ics"}
    other.uncache("al/never-read", ["x.ics"])  # nothing in memory: nothing to do
    assert other.cached("al/never-read") is None


def overlap_by_hand(items: dict[str, Item], lo: float, hi: float) -> set[str]:
    """The items with a span meeting [lo, hi), looked at one by one."""
    return {n for n, i in items.items() if any(overlaps(s, lo, hi) for s in i.spans)}


async def test_a_calendar_loaded_whole_answers_by_time_like_one_built_item_by_item(
    opener: Open,
) -> None:
    # Enough spans that a load sorts them all at once; some items share a UID, some
    # have several spans, some a long one, some share a start.
    rng = random.Random(21)
    written: dict[str, Item] = {}
    for n in range(300):
        starts = sorted(rng.uniform(0, 1e7) for _ in range(rng.choice((1, 1, 3))))
        if n % 50 == 0:
            starts = [1e6]
        spans = tuple(Span(s, s + rng.choice((3600, 30 * 86400)), n % 3, 0) for s in starts)
        summary = Summary(f"uid-{n // 2}", "VEVENT", spans, -1e9, 2e9)
        written[f"{n}.ics"] = Item(f'"{n}"', summary, 100, 1.0, 1.0, "text/calendar")
    one = opener()
    await one.update(CAL, written, [])
    loaded = await opener().items(CAL)  # another process: from the rows
    assert as_dict(loaded) == written
    built = CalendarItems()  # item by item
    for name, it in written.items():
        built.put(name, it)
    merged = CalendarItems()  # some, then the rest merged in
    merged.put_many(list(written.items())[:100])
    merged.put_many(list(written.items())[100:])
    for items in (loaded, built, merged):
        for lo in (0.0, 1e6, 2.5e6, 9e6):
            hi = lo + rng.choice((86400.0, 7 * 86400.0))
            assert items.overlapping(lo, hi) == (overlap_by_hand(written, lo, hi), set())
        assert items.with_uid("uid-3") == {"6.ics", "7.ics"}
        items.remove("6.ics")
        assert items.with_uid("uid-3") == {"7.ics"}
        assert items.with_uid("uid-0") == {"0.ics", "1.ics"}
    del written["6.ics"]
    for items in (loaded, built, merged):
        for name in list(written)[::7]:
            items.remove(name)
        left = {n: i for n, i in written.items() if n in items}
        assert as_dict(items) == left
        assert items.overlapping(0.0, 1e7) == (overlap_by_hand(left, 0.0, 1e7), set())
        assert items.overlapping(1e6, 1e6 + 1) == (overlap_by_hand(left, 1e6, 1e6 + 1), set())
