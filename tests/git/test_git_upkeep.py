"""Loose objects are packed off the request path, by count and on schedule; reads and
writes go on meanwhile and nothing is lost."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from davserver.backends.git_gc import LOCK_NAME, estimate_loose, pack_repository
from gitrepo import assert_linear_and_clean, files


def loose(repo: Path) -> int:
    objects = repo / "objects"
    return sum(
        len(os.listdir(objects / d))
        for d in os.listdir(objects)
        if len(d) == 2 and (objects / d).is_dir()
    )


def packs(repo: Path) -> int:
    return len(list((repo / "objects" / "pack").glob("*.pack")))


async def test_packing_keeps_every_object_readable(make_git_client: Any, repo: Path) -> None:
    client = await make_git_client(gc_interval=0)
    for i in range(40):
        assert (await client.put(f"/f{i}.txt", data=b"version %d" % i)).status == 201
    big = os.urandom(1 << 20)
    assert (await client.put("/big.bin", data=big)).status == 201
    before = await asyncio.to_thread(loose, repo)
    assert before > 120

    def pack() -> Any:
        from dulwich.repo import Repo

        with Repo(str(repo)) as r:
            return pack_repository(r.object_store, batch_bytes=4096, pack_limit=1000)

    done = await asyncio.to_thread(pack)
    assert done is not None and done.objects >= before - 1 and done.packs > 1
    assert done.left_loose == 1  # the big blob: streamed from where it is
    assert await asyncio.to_thread(loose, repo) == 1
    for i in range(40):
        assert await (await client.get(f"/f{i}.txt")).read() == b"version %d" % i
    assert await (await client.get("/big.bin")).read() == big
    assert (await client.put("/f0.txt", data=b"after")).status == 204
    history = await (await client.get("/f0.txt?history=json")).json()
    assert len(history["versions"]) == 2
    await asyncio.to_thread(assert_linear_and_clean, repo)
    assert (await asyncio.to_thread(files, repo))["f0.txt"] == b"after"


async def test_the_server_packs_by_count_while_it_serves(make_git_client: Any, repo: Path) -> None:
    client = await make_git_client(gc_interval=0, gc_loose_objects=1)
    # Enough commits that objects/17 holds one (1/256 of all objects land there).
    i = 0
    while await asyncio.to_thread(estimate_loose, str(repo / "objects")) == 0:
        assert (await client.put(f"/n{i}.txt", data=b"%d" % i)).status == 201
        i += 1
    for n in range(1000):  # the upkeep task counts every 30 s, or after 256 commits
        await client.put("/spin.txt", data=os.urandom(8))
        if n % 50 == 0 and await asyncio.to_thread(packs, repo):
            break
    for _ in range(100):
        if await asyncio.to_thread(packs, repo):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(packs, repo) >= 1
    for j in range(i):
        assert await (await client.get(f"/n{j}.txt")).read() == b"%d" % j
    # Checked with the packing lock held: `git fsck` run while a later packing run
    # removes the packs it combined would find them gone.
    await asyncio.to_thread(checked_while_no_packing, repo)


def checked_while_no_packing(repo: Path) -> None:
    lock = os.open(repo / "objects" / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert_linear_and_clean(repo)
    finally:
        os.close(lock)


def test_big_loose_objects_do_not_count_toward_packing(tmp_path: Path) -> None:
    """They stay loose: counting them would start, once enough big files were uploaded,
    a packing run at every count that has nothing to pack."""
    folder = tmp_path / "objects" / "17"
    folder.mkdir(parents=True)
    (folder / ("a" * 38)).write_bytes(b"x" * 100)
    for name in ("b", "c"):
        (folder / (name * 38)).write_bytes(b"x" * 101)
    assert estimate_loose(str(tmp_path / "objects"), big=100) == 256
    assert estimate_loose(str(tmp_path / "objects"), big=1000) == 3 * 256
    assert estimate_loose(str(tmp_path / "nothing")) == 0
