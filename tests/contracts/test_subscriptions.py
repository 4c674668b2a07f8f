"""The SubscriptionStore interface (davserver/state/subscriptions.py), as every store of
WebDAV-Push subscriptions keeps it.

Each test runs once per store in ``STORES``: a new store is one more line there, a
function that opens it at a place (a folder, or a database: opening.py) so that opening
the same place again finds what was registered, and two stores open at one place act as
two processes (or hosts) sharing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.subscriptions import PgSubscriptionStore
from davserver.state.subscriptions import (
    INFINITE,
    NONE,
    LimitReached,
    SQLiteSubscriptionStore,
    Subscription,
    SubscriptionStore,
)


def sqlite(place: Place) -> SubscriptionStore:
    """The SQLite store in the state folder."""
    return SQLiteSubscriptionStore(place.folder / "push.sqlite3")


@in_database
def postgres(place: Place) -> SubscriptionStore:
    """The store several hosts share."""
    return PgSubscriptionStore(PgDatabase(place.url))


STORES = [
    pytest.param(sqlite, id="sqlite"),
    pytest.param(postgres, id="postgres"),
]

Open = Opened[SubscriptionStore]


def sub(sub_id: str, path: str = "docs", **fields: object) -> Subscription:
    """A subscription with every field set (``fields`` change some)."""
    values: dict[str, object] = {
        "id": sub_id,
        "mount": "/dav",
        "path": path,
        "owner": "alice",
        "endpoint": f"https://push.example/{sub_id}",
        "public_key": "BCVxsr7N_key",
        "auth": "BTBZMqHH6r4Tts7J_aSIgg",
        "content": 1,
        "properties": NONE,
        "expires": time.time() + 3600,
    }
    values.update(fields)
    return Subscription(**values)  # type: ignore[arg-type]  # the fields as given


@pytest.fixture(params=STORES)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the store at one place."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(place))
    yield opened
    await opened.close_all()


async def test_a_subscription_comes_back_whole(opener: Open) -> None:
    store = opener()
    given = sub("a", path="folder/é x", properties=INFINITE, content=INFINITE)
    assert await store.register(given, 10) == (given, True)
    assert await store.get("a") == given
    assert await store.get("nope") is None


async def test_the_same_endpoint_on_a_collection_is_updated(opener: Open) -> None:
    store = opener()
    await store.register(sub("a"), 10)
    again = sub("b", content=INFINITE, auth="new", owner="bob", endpoint="https://push.example/a")
    stored, new = await store.register(again, 10)
    assert not new and stored == dataclasses.replace(again, id="a")
    assert await store.get("a") == stored and await store.get("b") is None
    # The same endpoint on another collection is another subscription.
    other, new = await store.register(sub("c", path="other", endpoint=again.endpoint), 10)
    assert new and other.id == "c"


async def test_the_limit_counts_live_subscriptions_of_the_owner(opener: Open) -> None:
    store = opener()
    await store.register(sub("a"), 2)
    await store.register(sub("b"), 2)
    await store.register(sub("old", expires=time.time() - 1), 100)
    with pytest.raises(LimitReached):
        await store.register(sub("c"), 2)
    await store.register(sub("c", owner="bob"), 2)
    # An update is no new subscription.
    assert (await store.register(sub("x", endpoint="https://push.example/a"), 2))[1] is False
    assert await store.get("c") is not None and await store.get("old") is None


async def test_delete(opener: Open) -> None:
    store = opener()
    await store.register(sub("a"), 10)
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    assert await store.get("a") is None


async def test_at_below_and_collections(opener: Open) -> None:
    store = opener()
    for given in (
        sub("root", path=""), sub("docs", path="docs", content=NONE, properties=0),
        sub("deep", path="docs/sub", content=INFINITE), sub("sibling", path="docs-2"),
        sub("elsewhere", path="docs", mount="/cal"), sub("gone", path="docs/x", expires=1.0),
    ):  # fmt: skip
        await store.register(given, 100)
    assert {s.id for s in await store.at("/dav", ["docs/sub", "docs", ""])} == {
        "root", "docs", "deep"
    }  # fmt: skip
    assert await store.at("/dav", []) == []
    assert {s.id for s in await store.below("/dav", "docs")} == {"deep"}
    assert {s.id for s in await store.below("/dav", "")} == {"docs", "deep", "sibling"}
    assert await store.collections("/dav") == [
        ("", 1), ("docs", NONE), ("docs-2", 1), ("docs/sub", INFINITE)
    ]  # fmt: skip
    many = [f"p{i}" for i in range(1200)] + ["docs"]
    assert [s.id for s in await store.at("/dav", many)] == ["docs"]


async def test_owners_and_dropping_an_owner(opener: Open) -> None:
    store = opener()
    for given in (
        sub("a1"), sub("a2", path="docs/sub"), sub("a-cal", mount="/cal"),
        sub("b1", owner="bob"), sub("anon", owner=""), sub("c-old", owner="carol", expires=1.0),
    ):  # fmt: skip
        await store.register(given, 100)
    assert await store.owners("/dav") == ["", "alice", "bob"]
    assert await store.owners("/cal") == ["alice"]
    assert await store.drop_owner("/dav", "alice") == 2
    assert await store.owners("/dav") == ["", "bob"]
    assert await store.get("a1") is None and await store.get("a-cal") is not None
    assert await store.drop_owner("/dav", "alice") == 0
    assert await store.drop_owner("/dav", "carol") == 0  # only expired ones


async def test_expired_ones_are_never_answered_and_purged(opener: Open) -> None:
    store = opener()
    await store.register(sub("a", expires=time.time() + 0.2), 10)
    await store.register(sub("b"), 10)
    await asyncio.sleep(0.3)
    assert await store.get("a") is None
    assert [s.id for s in await store.at("/dav", ["docs"])] == ["b"]
    assert await store.delete("a") is False
    assert await store.purge() == 1
    # Its endpoint may be registered afresh.
    assert (await store.register(sub("a2", endpoint="https://push.example/a"), 10))[1] is True


async def test_subscriptions_outlive_a_close_and_are_shared(opener: Open) -> None:
    first = opener()
    second = opener()
    stored, _ = await first.register(sub("a"), 10)
    assert await second.get("a") == stored
    await opener.close(first)
    again = opener()
    assert await again.get("a") is not None
    # Two processes registering one endpoint at once: one subscription.
    results = await asyncio.gather(
        *(store.register(sub(f"r{i}", endpoint="https://push.example/race"), 100)
          for i, store in enumerate((second, again) * 5))
    )  # fmt: skip
    assert sum(new for _, new in results) == 1
    assert len({stored.id for stored, _ in results}) == 1
