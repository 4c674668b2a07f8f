"""The shortcuts taken while a mount holds no lock must end as soon as one is taken."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp.test_utils import TestClient

from davserver.locks.manager import Lock, LockManager

LOCKINFO = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockinfo>"
)


class MemoryStore:
    """A lock store that keeps its locks in memory only (and never finds a conflict)."""

    def __init__(self) -> None:
        self.locks: dict[str, Lock] = {}

    async def load(self) -> list[Lock]:
        return []

    async def save(self, lock: Lock) -> None:
        self.locks[lock.token] = lock

    async def insert_unless(
        self, lock: Lock, conflicts: Callable[[list[Lock]], Lock | None], now: float
    ) -> Lock | None:
        self.locks[lock.token] = lock
        return None

    async def renew(self, token: str, timeout: int, expires: float, now: float) -> Lock | None:
        lock = self.locks.get(token)
        if lock is None or lock.expires <= now:
            return None
        self.locks[token] = dataclasses.replace(lock, timeout=timeout, expires=expires)
        return self.locks[token]

    async def delete(self, tokens: Iterable[str]) -> None:
        for token in tokens:
            self.locks.pop(token, None)

    async def close(self) -> None:
        pass


async def test_may_have_locks_follows_create_refresh_and_release() -> None:
    locks = LockManager(MemoryStore())
    await locks.open()
    assert not locks.may_have_locks("/a")
    first = await locks.create(
        "/a", "x", scope="shared", depth="0", owner=b"", timeout=60, principal="p",
        collection=False,
    )  # fmt: skip
    second = await locks.create(
        "/a", "x", scope="shared", depth="0", owner=b"", timeout=60, principal="p",
        collection=False,
    )  # fmt: skip
    assert locks.may_have_locks("/a")
    assert not locks.may_have_locks("/b")
    assert locks.covering("/b", "x") == []
    await locks.refresh(first, 120)
    await locks.release([second])
    assert locks.may_have_locks("/a")
    assert [lk.token for lk in locks.covering("/a", "x")] == [first.token]
    await locks.release(locks.direct("/a", "x"))
    assert not locks.may_have_locks("/a")
    assert locks.covering("/a", "x") == []


async def test_a_put_without_the_token_is_refused_once_the_folder_is_locked(
    client: TestClient, root: Path
) -> None:
    (root / "dir").mkdir()
    assert (await client.put("/dir/a.txt", data=b"1")).status == 201
    resp = await client.request(
        "LOCK", "/dir", data=LOCKINFO, headers={"Depth": "infinity", "Timeout": "Second-60"}
    )
    assert resp.status == 200
    token = resp.headers["Lock-Token"]
    assert (await client.put("/dir/a.txt", data=b"2")).status == 423
    assert (await client.put("/dir/b.txt", data=b"2")).status == 423
    assert (root / "dir" / "a.txt").read_bytes() == b"1"
    assert not (root / "dir" / "b.txt").exists()
    resp = await client.put("/dir/a.txt", data=b"3", headers={"If": f"({token})"})
    assert resp.status == 204
    resp = await client.request("UNLOCK", "/dir", headers={"Lock-Token": token})
    assert resp.status == 204
    assert (await client.put("/dir/a.txt", data=b"4")).status == 204
    assert (root / "dir" / "a.txt").read_bytes() == b"4"


async def test_a_put_to_a_folder_is_405_with_or_without_the_stat(client: TestClient) -> None:
    assert (await client.request("MKCOL", "/dir")).status == 201
    plain = await client.put("/dir", data=b"x")
    conditional = await client.put("/dir", data=b"x", headers={"If-None-Match": '"nope"'})
    assert plain.status == conditional.status == 405
    assert await plain.read() == await conditional.read()
