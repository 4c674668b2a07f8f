"""The git backend under concurrent writers and pushes: linear history, nothing lost,
`git fsck` clean, and a clone that holds exactly the uploaded bytes."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from gitrepo import assert_linear_and_clean, commits, files, git, messages
from helpers import snapshot


async def wait_for_upload_start(repo: Path) -> None:
    """Wait until the server has begun writing a blob (its change block is open)."""
    for _ in range(500):
        if any(n.startswith("tmp_obj_") for n in os.listdir(repo / "objects")):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upload never started")


def push_commit(clone: Path, name: str, data: bytes) -> str:
    """Commit a file in ``clone`` and push it, rebasing on what the server added until the
    push goes through (the safe way to push into a served branch); return the commit id."""
    (clone / name).write_bytes(data)
    git(clone, "add", name)
    git(clone, "commit", "-q", "-m", f"pushed {name}")
    for _ in range(50):
        try:
            git(clone, "push", "-q", "origin", "HEAD:main")
        except AssertionError:
            git(clone, "pull", "-q", "--rebase", "origin", "main")
            continue
        return git(clone, "rev-parse", "HEAD").strip()
    raise AssertionError("could not push")


async def test_fifty_concurrent_puts_make_fifty_linear_commits(
    client: TestClient, repo: Path
) -> None:
    bodies = {f"/f{i:02d}.txt": f"body {i}\n".encode() * (i + 1) for i in range(50)}
    answers = await asyncio.gather(*(client.put(p, data=b) for p, b in bodies.items()))
    assert [r.status for r in answers] == [201] * 50
    assert len(commits(repo)) == 50
    assert sorted(messages(repo)) == sorted(f"PUT {p}" for p in bodies)
    assert files(repo) == {p[1:]: b for p, b in bodies.items()}
    assert_linear_and_clean(repo)


async def test_concurrent_writes_of_every_kind_stay_consistent(
    client: TestClient, repo: Path
) -> None:
    for i in range(10):
        await client.request("MKCOL", f"/d{i}")
        await client.put(f"/d{i}/file", data=b"x" * i)

    async def work(i: int) -> None:
        await client.request("COPY", f"/d{i}", headers={"Destination": f"/copy{i}"})
        await client.request("MOVE", f"/d{i}/file", headers={"Destination": f"/moved{i}"})
        await client.delete(f"/copy{i}/file")

    await asyncio.gather(*(work(i) for i in range(10)))
    assert len(commits(repo)) == 20 + 30
    expected = {f"moved{i}": b"x" * i for i in range(10)}
    expected |= {f"d{i}/.davkeep": b"" for i in range(10)}
    expected |= {f"copy{i}/.davkeep": b"" for i in range(10)}
    assert files(repo) == expected
    assert_linear_and_clean(repo)


async def test_a_push_during_a_write_is_kept_and_the_write_rebased(
    client: TestClient, repo: Path, tmp_path: Path
) -> None:
    await client.put("/base.txt", data=b"base")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gate = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"first half, "
        await gate.wait()
        yield b"second half"

    upload = asyncio.create_task(client.put("/slow.txt", data=slow_body()))
    await wait_for_upload_start(repo)
    pushed = await asyncio.to_thread(push_commit, clone, "pushed.txt", b"from outside")
    gate.set()
    assert (await upload).status == 201
    history = commits(repo)
    assert len(history) == 3
    assert history[1] == pushed
    assert git(repo, "rev-parse", "main^").strip() == pushed
    assert files(repo) == {
        "base.txt": b"base",
        "pushed.txt": b"from outside",
        "slow.txt": b"first half, second half",
    }
    assert_linear_and_clean(repo)
    assert (await client.get("/pushed.txt")).status == 200


async def test_a_write_whose_target_vanished_in_a_push_is_refused(
    client: TestClient, repo: Path, tmp_path: Path
) -> None:
    await client.request("MKCOL", "/dir")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gate = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a"
        await gate.wait()
        yield b"b"

    upload = asyncio.create_task(client.put("/dir/new.txt", data=slow_body()))
    await wait_for_upload_start(repo)

    def remove_dir() -> None:
        git(clone, "rm", "-q", "-r", "dir")
        git(clone, "commit", "-q", "-m", "remove dir")
        git(clone, "push", "-q", "origin", "HEAD:main")

    await asyncio.to_thread(remove_dir)
    gate.set()
    assert (await upload).status == 409
    assert messages(repo) == ["MKCOL /dir", "remove dir"]
    assert_linear_and_clean(repo)


async def test_pushes_interleaved_with_many_writes_lose_nothing(
    client: TestClient, repo: Path, tmp_path: Path
) -> None:
    await client.put("/seed.txt", data=b"seed")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    async def writes() -> None:
        for i in range(30):
            assert (await client.put(f"/w{i}.txt", data=b"%d" % i)).status == 201

    def pushes() -> None:
        for i in range(5):
            push_commit(clone, f"p{i}.txt", b"pushed %d" % i)

    await asyncio.gather(writes(), asyncio.to_thread(pushes))
    assert len(commits(repo)) == 1 + 30 + 5
    expected = {"seed.txt": b"seed"}
    expected |= {f"w{i}.txt": b"%d" % i for i in range(30)}
    expected |= {f"p{i}.txt": b"pushed %d" % i for i in range(5)}
    assert files(repo) == expected
    assert_linear_and_clean(repo)
    listed = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    assert (await listed.text()).count("<D:response>") == 1 + len(expected)


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    """``data`` as an async generator, so the client sends it chunked."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_a_clone_holds_exactly_the_uploaded_bytes(
    client: TestClient, repo: Path, tmp_path: Path
) -> None:
    uploads = {
        "empty.bin": b"",
        "one.txt": b"1",
        "dir/small.bin": os.urandom(1000),
        "dir/sub/medium.bin": os.urandom(300_000),
        "dir/sub/big-chunked.bin": os.urandom(3 << 20),
        "dir/big-sized.bin": os.urandom(2 << 20),
        "dir/zeros.bin": bytes(5 << 20),
        "ünïcödé & spaces/файл.txt": "données".encode(),
    }
    for folder in ("dir", "dir/sub", "ünïcödé & spaces"):
        assert (await client.request("MKCOL", "/" + folder)).status == 201
    for name, data in uploads.items():
        body: Any = chunked(data) if "chunked" in name else data
        assert (await client.put("/" + name, data=body)).status == 201
    work = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    cloned = {
        os.path.relpath(os.path.join(d, f), work): Path(d, f).read_bytes()
        for d, dirs, names in os.walk(work)
        if ".git" not in Path(d).relative_to(work).parts
        for f in names
    }
    assert {k: v for k, v in cloned.items() if ".davkeep" not in k} == uploads
    assert_linear_and_clean(repo)
    for name, data in uploads.items():
        assert await (await client.get("/" + name)).read() == data


async def test_a_stale_ref_lock_is_removed_once_it_is_old_enough(
    make_git_client: Any, tmp_path: Path, repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A `refs/heads/main.lock` left by a crashed git: while younger than stale_lock_age
    every write is 503 naming it (no commit, nothing changed); once older it is removed
    with a log line and the write goes through."""
    caplog.set_level(logging.INFO)
    client = await make_git_client(stale_lock_age=30.0)
    assert (await client.put("/a.txt", data=b"first")).status == 201
    lock = repo / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"0" * 40 + b"\n")
    young = time.time() - 20
    os.utime(lock, (young, young))
    head = git(repo, "rev-parse", "main")
    state = snapshot(tmp_path / "state")

    answer = await client.put("/b.txt", data=b"second")
    assert answer.status == 503
    assert "refs/heads/main.lock exists" in caplog.text
    assert "removed once it is 30 s old" in caplog.text
    assert git(repo, "rev-parse", "main") == head
    assert files(repo) == {"a.txt": b"first"}
    assert lock.read_bytes() == b"0" * 40 + b"\n"
    assert snapshot(tmp_path / "state") == state
    assert (await client.get("/b.txt")).status == 404

    old = time.time() - 40
    os.utime(lock, (old, old))
    caplog.clear()
    assert (await client.put("/b.txt", data=b"second")).status == 201
    assert not lock.exists()
    assert sorted(os.listdir(repo / "refs" / "heads")) == ["main"]
    assert len(commits(repo)) == 2
    assert files(repo) == {"a.txt": b"first", "b.txt": b"second"}
    removed = [r for r in caplog.records if "removed the stale lock file" in r.getMessage()]
    assert len(removed) == 1
    assert "refs/heads/main.lock (40 s old" in removed[0].getMessage()
    assert_linear_and_clean(repo)


async def test_a_commit_waits_for_the_commit_lock_another_process_holds(
    client: TestClient, repo: Path
) -> None:
    """Worker processes take turns through an flock on the repository's commit lock:
    while another process holds it, a write waits (it is not refused after its
    compare-and-swap attempts) and is committed once the lock is released."""
    assert (await client.put("/first.txt", data=b"1")).status == 201
    lock = repo / "davserver-commit.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         f"f = open({str(lock)!r}, 'a')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(3)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        started = time.monotonic()
        put = asyncio.ensure_future(client.put("/second.txt", data=b"2"))
        await asyncio.sleep(1.0)
        assert not put.done()  # waiting for the lock, not retrying or refused
        assert len(commits(repo)) == 1
        resp = await put
        assert resp.status == 201
        assert time.monotonic() - started >= 1.5
    finally:
        await asyncio.to_thread(holder.wait)
    assert files(repo) == {"first.txt": b"1", "second.txt": b"2"}
    assert_linear_and_clean(repo)
