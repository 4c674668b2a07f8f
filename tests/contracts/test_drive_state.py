"""What a QuotaCounters and a ChecksumStore (davserver/state) must do, whatever keeps
them: a new implementation (PostgreSQL...) is one more line in the lists below. Two
instances opened at one place act as two processes sharing the state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from davserver.state.checksums import ChecksumStore, SQLiteChecksums
from davserver.state.quota import QuotaCounters, SQLiteQuota

QUOTAS: list[Callable[[Path], QuotaCounters]] = [lambda where: SQLiteQuota(where / "q.sqlite3")]
CHECKSUMS: list[Callable[[Path], ChecksumStore]] = [
    lambda where: SQLiteChecksums(where / "c.sqlite3")
]


@pytest.fixture(params=QUOTAS, ids=["sqlite"])
async def counters(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[QuotaCounters, QuotaCounters]]:
    one, two = request.param(tmp_path), request.param(tmp_path)
    yield one, two
    await one.close()
    await two.close()


async def test_a_tree_is_unknown_until_counted(
    counters: tuple[QuotaCounters, QuotaCounters],
) -> None:
    one, two = counters
    assert await one.get("/m", "") is None
    assert not await one.reserve("/m", "", 1, 100)  # nothing to reserve against
    await one.reset("/m", "", 40, 1000.0, None)
    found = await two.get("/m", "")
    assert found is not None and (found.used, found.counted) == (40, 1000.0)
    assert await two.get("/m", "ann") is None and await two.get("/other", "") is None


async def test_reserve_holds_to_the_limit(counters: tuple[QuotaCounters, QuotaCounters]) -> None:
    one, two = counters
    await one.reset("/m", "ann", 0, 1.0, None)
    results = await asyncio.gather(*(c.reserve("/m", "ann", 30, 100) for c in (one, two) * 3))
    assert results.count(True) == 3
    found = await one.get("/m", "ann")
    assert found is not None and found.used == 90
    assert await two.reserve("/m", "ann", -50, 100)  # giving back always goes
    await one.add("/m", "ann", -100)
    found = await two.get("/m", "ann")
    assert found is not None and found.used == 0  # never below zero


async def test_a_recount_does_not_undo_another_one(
    counters: tuple[QuotaCounters, QuotaCounters],
) -> None:
    one, two = counters
    await one.reset("/m", "", 10, 1.0, None)
    await two.reset("/m", "", 99, 2.0, None)  # not the first: ignored
    await one.reset("/m", "", 20, 3.0, 1.0)  # swaps the figure it saw
    await two.reset("/m", "", 30, 4.0, 1.0)  # saw an older one: ignored
    found = await two.get("/m", "")
    assert found is not None and (found.used, found.counted) == (20, 3.0)


@pytest.fixture(params=CHECKSUMS, ids=["sqlite"])
async def sums(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ChecksumStore, ChecksumStore]]:
    one, two = request.param(tmp_path), request.param(tmp_path)
    yield one, two
    await one.close()
    await two.close()


async def test_checksums_are_kept_by_mount_and_etag(
    sums: tuple[ChecksumStore, ChecksumStore],
) -> None:
    one, two = sums
    assert await one.get("/m", ['"a"']) == {}
    await one.put("/m", '"a"', {"md5": "m1", "sha1": "s1"})
    await one.put("/m", '"b"', {"md5": "m2", "sha1": "s2"})
    await one.put("/n", '"a"', {"md5": "other", "sha1": "other"})
    found = await two.get("/m", ['"a"', '"b"', '"c"', '"a"'])
    assert found == {'"a"': {"md5": "m1", "sha1": "s1"}, '"b"': {"md5": "m2", "sha1": "s2"}}
    many = [f'"{i}"' for i in range(1200)]
    for etag in many[:3]:
        await two.put("/m", etag, {"md5": etag, "sha1": etag})
    assert len(await one.get("/m", many)) == 3
