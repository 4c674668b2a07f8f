"""The Records interface (davserver/scheduling/records.py), as every store of the
scheduling records keeps it: a new store is one more line in ``STORES``, a function that
opens the records of a CalDAV mount at a place (a folder, or a database: opening.py).
Two stores opened at one place act as two processes (or hosts) sharing it, and opening
the place again finds what was recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.scheduling.pg_records import PgRecords
from davserver.scheduling.records import Record, Records, SQLiteRecords
from davserver.state.postgres.database import PgDatabase


def sqlite(place: Place, mount: str = "/caldav") -> Records:
    """The SQLite records in the state folder (a file per mount)."""
    return SQLiteRecords(place.folder / f"scheduling{mount.replace('/', '_')}.sqlite3")


@in_database
def postgres(place: Place, mount: str = "/caldav") -> Records:
    """The records several hosts share (a store per mount)."""
    return PgRecords(PgDatabase(place.url), mount)


STORES: list[Callable[..., Records]] = [sqlite, postgres]

Open = Opened[Records]


@pytest.fixture(params=STORES, ids=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the records at one place (of the mount given, /caldav by default)."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda mount="/caldav": request.param(place, mount))
    yield opened
    await opened.close_all()


def record(path: str, user: str = "ann", uid: str = "m1", role: str = "organizer") -> Record:
    """A record whose data names it (so that a replaced one differs)."""
    return Record(path, user, uid, role, f"BEGIN:VCALENDAR {path} {role}\r\n\x00é".encode())


async def test_nothing_is_recorded_at_first(opener: Open) -> None:
    records = opener()
    assert await records.get("ann/calendar/m1.ics") is None
    assert await records.find("ann", "m1", "organizer") is None
    assert await records.under("ann") == []


async def test_a_record_comes_back_whole_through_another_process(opener: Open) -> None:
    one, two = opener(), opener()
    given = record("ann/calendar/réunion é.ics")
    await one.put(given)
    assert await two.get(given.path) == given
    replaced = Record(given.path, "ann", "m2", "attendee", b"other bytes")
    await two.put(replaced)
    assert await one.get(given.path) == replaced
    assert await one.find("ann", "m1", "organizer") is None
    assert await one.find("ann", "m2", "attendee") == replaced


async def test_find_gives_the_first_copy_by_path_of_the_user_uid_and_role(opener: Open) -> None:
    records = opener()
    for r in [
        record("bob/calendar/z.ics", "bob", role="attendee"),
        record("bob/calendar/a.ics", "bob", role="attendee"),
        record("bob/calendar/B.ics", "bob", role="organizer"),
        record("bob/calendar/0.ics", "bob", uid="m2", role="attendee"),
        record("ann/calendar/0.ics", "ann", role="attendee"),
    ]:
        await records.put(r)
    assert await records.find("bob", "m1", "attendee") == record(
        "bob/calendar/a.ics", "bob", role="attendee"
    )
    assert await records.find("bob", "m1", "organizer") == record(
        "bob/calendar/B.ics", "bob", role="organizer"
    )
    assert await records.find("carol", "m1", "attendee") is None


async def test_under_names_what_lies_below_a_collection_only(opener: Open) -> None:
    records = opener()
    below = ["ann/work/a.ics", "ann/work/deeper/b.ics", "ann/work/é.ics"]
    others = ["ann/work.ics", "ann/work-2/c.ics", "ann/workx/d.ics", "ann/_/e.ics", "ann/%/f.ics"]
    for path in [*below, *others]:
        await records.put(record(path))
    assert [r.path for r in await records.under("ann/work")] == sorted(below)
    # Characters that are patterns elsewhere are themselves here.
    assert [r.path for r in await records.under("ann/_")] == ["ann/_/e.ics"]
    assert [r.path for r in await records.under("ann/%")] == ["ann/%/f.ics"]


async def test_delete_forgets_the_paths_named_only(opener: Open) -> None:
    records = opener()
    for path in ["a/1.ics", "a/2.ics", "a/3.ics"]:
        await records.put(record(path))
    await records.delete(["a/1.ics", "a/3.ics", "a/none.ics"])
    await records.delete([])
    assert [r.path for r in await records.under("a")] == ["a/2.ics"]


async def test_moving_a_resource_replaces_what_was_at_the_destination(opener: Open) -> None:
    records = opener()
    await records.put(record("ann/cal/a.ics"))
    await records.put(record("ann/cal/b.ics", uid="old"))
    await records.move("ann/cal/a.ics", "ann/cal/b.ics")
    assert await records.get("ann/cal/a.ics") is None
    moved = await records.get("ann/cal/b.ics")
    assert moved is not None and moved.uid == "m1" and moved.data == record("ann/cal/a.ics").data


async def test_moving_a_collection_moves_what_lies_below_it(opener: Open) -> None:
    records = opener()
    for path in ["ann/cal/a.ics", "ann/cal/sub/b.ics", "ann/cal-2/c.ics", "ann/new/old.ics"]:
        await records.put(record(path))
    await records.move("ann/cal", "ann/new")
    assert [r.path for r in await records.under("ann/new")] == [
        "ann/new/a.ics",
        "ann/new/sub/b.ics",
    ]
    assert await records.under("ann/cal") == []
    assert await records.get("ann/cal-2/c.ics") == record("ann/cal-2/c.ics")
    assert await records.get("ann/new/old.ics") is None  # the destination's were replaced
    assert (await records.get("ann/new/a.ics")) == Record(
        "ann/new/a.ics", "ann", "m1", "organizer", record("ann/cal/a.ics").data
    )


async def test_the_records_of_two_mounts_are_apart(opener: Open) -> None:
    one, two = opener("/caldav"), opener("/other")
    await one.put(record("ann/cal/a.ics"))
    assert await two.get("ann/cal/a.ics") is None
    assert await two.find("ann", "m1", "organizer") is None
    assert await two.under("ann") == []
    await two.put(record("ann/cal/a.ics", uid="elsewhere"))
    await two.delete(["ann/cal/a.ics"])
    assert await one.get("ann/cal/a.ics") == record("ann/cal/a.ics")


async def test_records_outlive_a_close(opener: Open) -> None:
    first = opener()
    await first.put(record("ann/cal/a.ics"))
    await opener.close(first)
    assert await opener().get("ann/cal/a.ics") == record("ann/cal/a.ics")
