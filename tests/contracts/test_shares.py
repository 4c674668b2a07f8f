"""The ShareStore interface (davserver/state/shares.py), as every store of the shares made
through the protocol keeps it: a new store is one more line in ``STORES``, a function that
opens it at a place (a folder, or a database: opening.py). Two stores opened at one place
act as two processes (or hosts) sharing it, and opening the place again finds what was
stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.shares import PgShareStore
from davserver.state.shares import (
    DECLINED,
    READ_ONLY,
    READ_WRITE,
    TO_GROUP,
    TO_USER,
    Share,
    Shares,
    ShareStore,
    SQLiteShareStore,
)


def sqlite(place: Place) -> ShareStore:
    """The SQLite store in the state folder."""
    return SQLiteShareStore(place.folder / "shares.sqlite3")


@in_database
def postgres(place: Place) -> ShareStore:
    """The store several hosts share."""
    return PgShareStore(PgDatabase(place.url))


STORES: list[Callable[[Place], ShareStore]] = [sqlite, postgres]

Open = Opened[ShareStore]


@pytest.fixture(params=STORES, ids=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the store at one place."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(place))
    yield opened
    await opened.close_all()


def share(path: str, sharee: str = "bob", level: str = READ_ONLY, **fields: str) -> Share:
    """A share of ``path`` on the mount /cal (``fields`` change the others)."""
    values = {"mount": "/cal", "path": path, "kind": TO_USER, "sharee": sharee, "level": level}
    values.update(fields)
    return Share(**values)  # type: ignore[arg-type]  # the fields as given


async def test_nothing_is_stored_at_first(opener: Open) -> None:
    assert await opener().all() == []


async def test_a_share_comes_back_whole_and_its_level_changes(opener: Open) -> None:
    one, two = opener(), opener()
    given = [
        share("calendars/alice/work é"),
        share("calendars/alice/work é", sharee="team", kind=TO_GROUP),
        share("calendars/alice/work é", mount=""),
    ]
    for s in given:
        await one.put(s)
    assert set(await two.all()) == set(given)
    await two.put(share("calendars/alice/work é", level=READ_WRITE))
    found = await one.all()
    assert share("calendars/alice/work é", level=READ_WRITE) in found and len(found) == 3
    assert all(not s.fixed for s in found)


async def test_remove_drops_one_share(opener: Open) -> None:
    store = opener()
    kept = [share("cal", sharee="carol"), share("cal", sharee="bob", kind=TO_GROUP)]
    for s in [share("cal"), *kept]:
        await store.put(s)
    await store.remove("/cal", "cal", TO_USER, "bob")
    await store.remove("/cal", "cal", TO_USER, "nobody")  # nothing there: nothing done
    assert set(await store.all()) == set(kept)


async def test_drop_below_drops_the_collection_and_what_it_held_only(opener: Open) -> None:
    store = opener()
    gone = [share("home/a"), share("home/a/b"), share("home/a/b/c", sharee="carol")]
    kept = [
        share("home/a-2"), share("home/ab"), share("home"), share("home/a", mount="/other"),
        share("home/%"), share("home/_/x"), share("home/b/x"),
    ]  # fmt: skip
    for s in [*gone, *kept]:
        await store.put(s)
    await store.drop_below("/cal", "home/a")
    # Characters that are patterns elsewhere are themselves here.
    await store.drop_below("/cal", "home/_")
    kept.remove(share("home/_/x"))
    assert set(await store.all()) == set(kept)


async def test_shares_outlive_a_close(opener: Open) -> None:
    first = opener()
    await first.put(share("cal"))
    await opener.close(first)
    assert await opener().all() == [share("cal")]


async def test_a_users_no_is_kept_beside_the_shares(opener: Open) -> None:
    store = opener()
    given = [share("cal", sharee="team", kind=TO_GROUP), share("cal", kind=DECLINED)]
    for s in given:
        await store.put(s)
    assert set(await opener().all()) == set(given)
    await store.drop_below("/cal", "cal")
    assert await store.all() == []


class Team:
    """Groups: "team" is bob and carl."""

    async def of(self, user: str) -> frozenset[str]:
        return frozenset({"team"}) if user in ("bob", "carl") else frozenset()

    async def members(self, group: str) -> frozenset[str]:
        return frozenset({"bob", "carl"}) if group == "team" else frozenset()


async def test_what_shares_and_delegations_grant_over_the_store(opener: Open) -> None:
    shares = Shares([], opener(), None, Team())
    shares.imply("/cal", lambda p: ["principals/alice"] if p == "calendars/alice" else [])
    await shares.put(share("calendars/alice", level=READ_WRITE))  # a delegation
    await shares.put(share("calendars/alice/cal"))  # below it, no higher: the home decides
    await shares.put(share("calendars/dora/cal", sharee="team", kind=TO_GROUP))

    async def bobs() -> frozenset[str]:
        return await Team().of("bob")

    grants = await shares.grants("/cal", "bob", bobs)
    assert grants.roots == {
        "calendars/alice": READ_WRITE,
        "principals/alice": READ_ONLY,
        "calendars/dora/cal": READ_ONLY,
    }
    assert grants.level("calendars/alice/cal/x.ics") == READ_WRITE
    assert await shares.group_exists("team") and not await shares.group_exists("nobody")
    # bob turns the group's share down: carl keeps it; a second no finds nothing.
    assert await shares.decline("/cal", "calendars/dora/cal", "bob")
    assert "calendars/dora/cal" not in (await shares.grants("/cal", "bob", bobs)).roots
    assert "calendars/dora/cal" in await shares.reaching("/cal", "carl")
    assert not await shares.decline("/cal", "calendars/dora/cal", "bob")
    # A share of his own is dropped when he turns it down, and comes back when made again.
    await shares.put(share("calendars/dora/other"))
    assert await shares.decline("/cal", "calendars/dora/other", "bob")
    assert "calendars/dora/other" not in await shares.reaching("/cal", "bob")
    await shares.put(share("calendars/dora/cal"))
    assert "calendars/dora/cal" in await shares.reaching("/cal", "bob")
