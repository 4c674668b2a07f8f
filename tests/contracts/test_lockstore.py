"""The LockStore interface (davserver/locks/manager.py), as every lock store keeps it.

Each test runs once per store in ``STORES``: a new store is one more line there, a
function that opens it at a place (a folder, or a database: opening.py) so that opening
the same place again finds what was saved, and two stores open at one place act as two
processes (or hosts) sharing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.locks.manager import Lock, LockStore
from davserver.locks.pg_store import PgLockStore
from davserver.locks.sqlite_store import SQLiteLockStore
from davserver.state.postgres.database import PgDatabase


def sqlite(place: Place) -> LockStore:
    """The SQLite store in the state folder."""
    return SQLiteLockStore(place.folder / "locks.sqlite3")


@in_database
def postgres(place: Place) -> LockStore:
    """The store several hosts share."""
    return PgLockStore(PgDatabase(place.url))


STORES = [
    pytest.param(sqlite, id="sqlite"),
    pytest.param(postgres, id="postgres"),
]

Open = Opened[LockStore]


def lock(token: str, **fields: object) -> Lock:
    """A lock with every field set (``fields`` change some)."""
    values: dict[str, object] = {
        "token": token,
        "namespace": "/dav",
        "root": "folder/é file.txt",
        "scope": "exclusive",
        "depth": "infinity",
        "owner": b'<D:owner xmlns:D="DAV:"><D:href>mailto:a@example.org</D:href></D:owner>',
        "timeout": 3600,
        "expires": time.time() + 3600,
        "principal": "alice",
        "collection": False,
    }
    values.update(fields)
    return Lock(**values)


@pytest.fixture(params=STORES)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the store at one place."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(place))
    yield opened
    await opened.close_all()


def by_token(locks: list[Lock]) -> dict[str, Lock]:
    return {lk.token: lk for lk in locks}


async def test_a_new_store_holds_no_lock(opener: Open) -> None:
    assert await opener().load() == []


async def test_a_saved_lock_comes_back_whole(opener: Open) -> None:
    store = opener()
    saved = [
        lock("opaquelocktoken:1"),
        lock("opaquelocktoken:2", scope="shared", depth="0", collection=True, root=""),
        lock("opaquelocktoken:3", namespace="/other", principal="", owner=b""),
    ]
    for each in saved:
        await store.save(each)
    assert by_token(await store.load()) == by_token(saved)


async def test_saving_a_token_again_replaces_the_lock(opener: Open) -> None:
    store = opener()
    await store.save(lock("t", timeout=60, expires=1000.0))
    await store.save(lock("t", timeout=120, expires=2000.0))
    (found,) = await store.load()
    assert (found.timeout, found.expires) == (120, 2000.0)


async def test_expired_locks_are_loaded_too(opener: Open) -> None:
    store = opener()
    await store.save(lock("old", expires=time.time() - 10))
    assert [lk.token for lk in await store.load()] == ["old"]


async def test_delete_forgets_the_tokens_given(opener: Open) -> None:
    store = opener()
    for token in ("a", "b", "c"):
        await store.save(lock(token))
    await store.delete(t for t in ("a", "c", "unknown"))
    await store.delete([])
    assert [lk.token for lk in await store.load()] == ["b"]


async def test_locks_outlive_the_store_being_closed(opener: Open) -> None:
    first = opener()
    kept = lock("kept")
    await first.save(kept)
    await first.save(lock("dropped"))
    await first.delete(["dropped"])
    await opener.close(first)
    assert await opener().load() == [kept]


async def test_concurrent_saves_are_all_kept(opener: Open) -> None:
    store = opener()
    await asyncio.gather(*(store.save(lock(f"t{i}", root=f"r{i}")) for i in range(50)))
    found = by_token(await store.load())
    assert sorted(found) == sorted(f"t{i}" for i in range(50))
    assert all(found[f"t{i}"].root == f"r{i}" for i in range(50))


def same_root(new: Lock) -> Callable[[list[Lock]], Lock | None]:
    """A conflict rule: any live lock on the same root is in the way."""

    def conflicts(live: list[Lock]) -> Lock | None:
        return next((other for other in live if other.root == new.root), None)

    return conflicts


async def test_insert_unless_inserts_when_nothing_is_in_the_way(opener: Open) -> None:
    store = opener()
    new = lock("new", root="a")
    seen: list[list[Lock]] = []

    def conflicts(live: list[Lock]) -> Lock | None:
        seen.append(live)
        return None

    await store.save(lock("other", root="b"))
    await store.save(lock("elsewhere", root="a", namespace="/another-mount"))
    assert await store.insert_unless(new, conflicts, time.time()) is None
    assert [[lk.token for lk in live] for live in seen] == [["other"]]  # its namespace only
    assert by_token(await store.load())["new"] == new


async def test_insert_unless_returns_the_lock_in_the_way_and_inserts_nothing(
    opener: Open,
) -> None:
    store = opener()
    there = lock("there", root="a")
    await store.save(there)
    new = lock("new", root="a")
    assert await store.insert_unless(new, same_root(new), time.time()) == there
    assert await store.load() == [there]


async def test_insert_unless_drops_expired_locks_first(opener: Open) -> None:
    store = opener()
    now = time.time()
    await store.save(lock("expired", root="a", expires=now - 1))
    await store.save(lock("expired-elsewhere", namespace="/other", expires=now - 1))
    new = lock("new", root="a")
    assert await store.insert_unless(new, same_root(new), now) is None
    assert [lk.token for lk in await store.load()] == ["new"]


async def test_of_two_stores_taking_one_root_at_once_one_gets_it(opener: Open) -> None:
    one, other = opener(), opener()  # two processes sharing the place
    await one.load()
    await other.load()
    mine, theirs = lock("mine", root="a"), lock("theirs", root="a")
    results = await asyncio.gather(
        one.insert_unless(mine, same_root(mine), time.time()),
        other.insert_unless(theirs, same_root(theirs), time.time()),
    )
    (kept,) = await one.load()
    assert sorted(r is None for r in results) == [False, True]
    assert next(r for r in results if r is not None) == kept


async def test_renew_gives_a_live_lock_a_new_expiry(opener: Open) -> None:
    store = opener()
    now = time.time()
    await store.save(lock("t", timeout=60, expires=now + 60))
    renewed = await store.renew("t", 600, now + 600, now)
    assert renewed == lock("t", timeout=600, expires=now + 600)
    assert await store.load() == [renewed]


async def test_renew_brings_back_no_lock_that_expired_or_was_released(opener: Open) -> None:
    store = opener()
    now = time.time()
    await store.save(lock("expired", expires=now - 1))
    await store.save(lock("released"))
    await store.delete(["released"])
    assert await store.renew("expired", 600, now + 600, now) is None
    assert await store.renew("released", 600, now + 600, now) is None
    assert await store.renew("unknown", 600, now + 600, now) is None
    assert [(lk.token, lk.expires) for lk in await store.load()] == [("expired", now - 1)]
