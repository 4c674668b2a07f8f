"""The lock index of processes sharing one state folder (LockManager over the SQLite
store, told of each other's changes by FileGenerations): what one releases, the others
stop showing and enforcing, even when they changed locks themselves meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from davserver.locks.manager import Lock, LockManager
from davserver.locks.sqlite_store import SQLiteLockStore
from davserver.state.generations import FileGenerations

NS = "/dav"


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[list[LockManager]]:
    """Two lock managers on one state folder, as two workers have them."""
    opened: list[tuple[LockManager, FileGenerations]] = []
    for _ in range(2):
        generations = FileGenerations(tmp_path / "generations")
        await generations.open()
        manager = LockManager(SQLiteLockStore(tmp_path / "locks.sqlite3"), generations)
        await manager.open()
        opened.append((manager, generations))
    yield [manager for manager, _ in opened]
    for manager, generations in opened:
        await manager.close()
        await generations.close()


async def take(manager: LockManager, root: str) -> Lock:
    return await manager.create(
        NS,
        root,
        scope="exclusive",
        depth="0",
        owner=b"",
        timeout=600,
        principal="alice",
        collection=False,
    )


async def test_a_release_elsewhere_is_seen_after_a_change_here(
    processes: list[LockManager],
) -> None:
    """The soak's lock left over: worker A took a lock, worker B released it (UNLOCK on
    a new connection), and A took another lock before its next request asked whether
    anything changed. A must still drop the released lock."""
    a, b = processes
    first = await take(a, "c04-1.bin")
    await b.sync()
    assert b.get(first.token) == first
    await b.release([first])
    await take(a, "c05-1.bin")  # a request of A's that began before B's UNLOCK
    await a.sync()
    assert a.covering(NS, "c04-1.bin") == []
    assert a.get(first.token) is None
    assert [lk.root for lk in a.covering(NS, "c05-1.bin")] == ["c05-1.bin"]


async def test_a_lock_taken_elsewhere_is_enforced_after_a_release_here(
    processes: list[LockManager],
) -> None:
    a, b = processes
    mine = await take(a, "mine.bin")
    theirs = await take(b, "theirs.bin")
    await a.release([mine])  # before A asked whether anything changed
    await a.sync(settle=True)
    assert a.covering(NS, "theirs.bin") == [theirs]
    await b.sync()
    assert b.covering(NS, "mine.bin") == []
