"""Faults, on the filesystem and git backends: a handler that raises (500, a log line
naming the request, and the server goes on), a full disk at each step of a write (507,
the old bytes kept, no temporary file or half object left) and names too long for a
filesystem (403, nothing created).

The full disk is injected at the level of the OS calls the backends make (a real small
filesystem needs a mount, which CI may not allow): the call fails with ENOSPC as the
kernel's would, after part of the bytes went to disk when it is a write. Each refusal
checks that nothing changed: the whole folder, byte for byte, or the branch and the
objects of the repository.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from davserver.backends import git_objects
from dulwich.object_store import DiskObjectStore
from gitrepo import assert_linear_and_clean, commits, files, git
from helpers import snapshot
from lxml import etree

from davserver.app import ROUTER_KEY

TEMP = ".davtmp-"
GIT_TEMP = "tmp_obj_"
PROPPATCH = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
    "<Z:colour>{value}</Z:colour></D:prop></D:set></D:propertyupdate>"
)
LOCKINFO = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockinfo>"
)
LONG = "n" * 300  # one segment of 300 bytes: over any Linux filesystem's 255
LONG_UTF8 = "é" * 128  # 128 characters, 256 bytes


async def chunks(data: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    """``data`` as an async generator, so the client sends it chunked."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


# Bodies of each kind the backends write differently: one call (small), streamed with a
# Content-Length (large), streamed without one (chunked).
BODY_KINDS = pytest.mark.parametrize("kind", ["small", "large", "chunked"])


def body_of(kind: str) -> bytes | AsyncIterator[bytes]:
    """A body of ``kind`` (random bytes, so git stores it as it comes)."""
    if kind == "small":
        return os.urandom(100)
    data = os.urandom(3 << 20)
    return chunks(data) if kind == "chunked" else data


@dataclass
class Store:
    """A server on one backend, and what "nothing changed" means for it."""

    client: TestClient
    backend: str
    path: Path  # the served folder, or the repository

    def state(self) -> Any:
        """Everything a refused request must leave as it was."""
        if self.backend == "filesystem":
            return snapshot(self.path)
        return commits(self.path), files(self.path), temp_objects(self.path)

    def storage(self) -> Any:
        """The backend object behind the only mount."""
        return self.client.app[ROUTER_KEY].mounts[0].storage

    def assert_clean(self) -> None:
        """No temporary file anywhere; for git, a branch `git fsck` finds sound."""
        if self.backend == "filesystem":
            assert temp_files(self.path) == []
        else:
            assert temp_objects(self.path) == []
            assert_linear_and_clean(self.path)


def temp_files(root: Path) -> list[str]:
    """The temporary files and folders anywhere below ``root``."""
    return [
        os.path.join(dirpath, name)
        for dirpath, dirnames, filenames in os.walk(root)
        for name in dirnames + filenames
        if name.startswith(TEMP)
    ]


def temp_objects(repo: Path) -> list[str]:
    """The objects being written (or left half written) in the repository."""
    return sorted(n for n in os.listdir(repo / "objects") if n.startswith(GIT_TEMP))


@pytest.fixture(params=["filesystem", "git"])
async def store(
    request: pytest.FixtureRequest, make_client: Any, make_git_client: Any, root: Path,
    repo: Path, tmp_path: Path,
) -> Store:  # fmt: skip
    """A server on each backend, holding ``/old.bin`` and ``/dir/``."""
    if request.param == "filesystem":
        result = Store(await make_client(), "filesystem", root)
    else:
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(repo))
        result = Store(await make_git_client(), "git", repo)
    assert (await result.client.put("/old.bin", data=b"old bytes")).status == 201
    assert (await result.client.request("MKCOL", "/dir")).status == 201
    return result


# -- a handler that raises ----------------------------------------------------------------


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


async def test_a_handler_that_raises_is_500_logged_and_the_server_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = store.client
    before = store.state()
    monkeypatch.setattr(store.storage(), "change", _boom)
    monkeypatch.setattr(store.storage(), "read", _boom)
    with caplog.at_level(logging.ERROR, logger="davserver"):
        put = await client.put("/dir/new.txt", data=b"new")
        get = await client.get("/old.bin")
        # Meanwhile what does not touch the fault works.
        assert (await client.request("PROPFIND", "/", headers={"Depth": "1"})).status == 207
    assert (put.status, get.status) == (500, 500)
    failed = {r.getMessage(): r.exc_info for r in caplog.records if r.name == "davserver"}
    assert set(failed) == {"PUT /dir/new.txt failed", "GET /old.bin failed"}
    assert all(info and info[0] is RuntimeError for info in failed.values())
    assert store.state() == before
    monkeypatch.undo()
    assert await (await client.get("/old.bin")).read() == b"old bytes"
    assert (await client.put("/dir/new.txt", data=b"new")).status == 201
    assert await (await client.get("/dir/new.txt")).read() == b"new"
    store.assert_clean()


async def test_a_streamed_answer_cut_short_by_a_fault_closes_the_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 207 has begun when the walk fails: the client must see a broken body (the
    connection closes), not a 207 that never ends or a second answer after it."""
    storage = store.storage()
    children = storage.children

    async def broken(path: str, **options: Any) -> Any:
        async for batch in children(path, **options):
            yield batch
            raise RuntimeError("injected fault")

    monkeypatch.setattr(storage, "children", broken)
    with caplog.at_level(logging.ERROR, logger="davserver"):
        resp = await store.client.request("PROPFIND", "/", headers={"Depth": "1"})
        assert resp.status == 207
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), 10)
    assert "PROPFIND / failed" in [r.getMessage() for r in caplog.records]
    monkeypatch.undo()
    assert (await store.client.request("PROPFIND", "/", headers={"Depth": "1"})).status == 207


@pytest.mark.parametrize("kind", ["small", "large"])
async def test_an_unexpected_error_while_writing_leaves_no_temporary_file(
    make_client: Any, root: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Not an OSError (a bug, MemoryError): the temporary file goes all the same."""
    client = await make_client()
    (root / "old.bin").write_bytes(b"old bytes")
    before = snapshot(root)
    fail_on_temp(monkeypatch, "write", RuntimeError("injected fault"))
    data = os.urandom(100 if kind == "small" else 3 << 20)
    assert (await client.put("/old.bin", data=data)).status == 500
    assert snapshot(root) == before
    monkeypatch.undo()
    assert (await client.put("/old.bin", data=data)).status == 204


# -- a full disk: the filesystem backend ----------------------------------------------------


def _worker_thread() -> bool:
    # The fakes below act only on the storage's threads, never on the event loop.
    return threading.current_thread() is not threading.main_thread()


def _is_temp(fd: int) -> bool:
    try:
        return f"/{TEMP}" in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False


def _full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_on_temp(
    monkeypatch: pytest.MonkeyPatch, call: str, error: BaseException | None = None
) -> None:
    """Make ``os.<call>`` fail (ENOSPC unless ``error``) on a temporary file of the
    filesystem backend: a write after writing half its bytes, a close after closing."""
    real = getattr(os, call)
    fault = error or _full()
    fake: Callable[..., Any]
    if call == "write":

        def fake(fd: int, data: Any) -> int:
            if _worker_thread() and _is_temp(fd):
                real(fd, bytes(data[: len(data) // 2]))
                raise fault
            return real(fd, data)

    elif call == "close":

        def fake(fd: int) -> None:
            temp = _worker_thread() and _is_temp(fd)
            real(fd)
            if temp:
                raise fault

    elif call in ("sendfile", "copy_file_range"):

        def fake(out: int, *args: Any) -> int:
            if _worker_thread() and _is_temp(out):
                raise fault
            return real(out, *args)

    else:  # replace of a temporary file; any rename or mkdir

        def fake(src: Any, *args: Any, **kwargs: Any) -> Any:
            if _worker_thread() and (call != "replace" or os.path.basename(src).startswith(TEMP)):
                raise fault
            return real(src, *args, **kwargs)

    monkeypatch.setattr(os, call, fake)


@BODY_KINDS
@pytest.mark.parametrize("step", ["write", "close", "replace"])
@pytest.mark.parametrize("target", ["/old.bin", "/dir/new.bin"])
async def test_a_full_disk_is_507_and_keeps_the_old_bytes(
    make_client: Any, root: Path, monkeypatch: pytest.MonkeyPatch, kind: str, step: str,
    target: str,
) -> None:  # fmt: skip
    client = await make_client()
    (root / "old.bin").write_bytes(b"old bytes")
    (root / "dir").mkdir()
    before = snapshot(root)
    fail_on_temp(monkeypatch, step)
    resp = await client.put(target, data=body_of(kind))
    assert resp.status == 507
    assert snapshot(root) == before
    monkeypatch.undo()
    assert await (await client.get("/old.bin")).read() == b"old bytes"
    assert (await client.put(target, data=body_of(kind))).status in (201, 204)
    assert temp_files(root) == []


async def test_a_quota_is_507_too(
    make_client: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client()
    (root / "old.bin").write_bytes(b"old bytes")
    before = snapshot(root)
    fail_on_temp(monkeypatch, "write", OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    assert (await client.put("/old.bin", data=os.urandom(3 << 20))).status == 507
    assert snapshot(root) == before


def _copy_calls() -> Iterator[str]:
    """The OS calls a copy of file contents may go through."""
    yield "sendfile"
    if hasattr(os, "copy_file_range"):
        yield "copy_file_range"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "steps"),
    [
        pytest.param(
            "PROPPATCH", "/old.bin", {}, PROPPATCH.format(value="blue"), ["write"],
            id="PROPPATCH-file",
        ),
        pytest.param(
            "PROPPATCH", "/dir", {}, PROPPATCH.format(value="blue"), ["replace"],
            id="PROPPATCH-collection",
        ),
        pytest.param(
            "COPY", "/old.bin", {"Destination": "/copy.bin"}, None, list(_copy_calls()),
            id="COPY-file",
        ),
        pytest.param(
            "COPY", "/old.bin", {"Destination": "/dir/inside.txt"}, None, list(_copy_calls()),
            id="COPY-file-over-file",
        ),
        pytest.param(
            "COPY", "/dir", {"Destination": "/copy"}, None, list(_copy_calls()),
            id="COPY-collection",
        ),
        pytest.param(
            "COPY", "/dir", {"Destination": "/copy", "Depth": "0"}, None, ["rename"],
            id="COPY-collection-depth-0",
        ),
        pytest.param(
            "MOVE", "/old.bin", {"Destination": "/dir/moved.bin"}, None, ["rename"], id="MOVE"
        ),
        pytest.param("MKCOL", "/dir/sub", {}, None, ["mkdir"], id="MKCOL"),
        pytest.param(
            "LOCK", "/dir/locked.txt", {}, LOCKINFO, ["write", "close"], id="LOCK-unmapped"
        ),
    ],
)  # fmt: skip
async def test_other_writes_on_a_full_disk_are_507_and_change_nothing(
    make_client: Any, root: Path, monkeypatch: pytest.MonkeyPatch, method: str, path: str,
    headers: dict[str, str], body: str | None, steps: list[str],
) -> None:  # fmt: skip
    client = await make_client()
    (root / "old.bin").write_bytes(b"old bytes")
    (root / "dir").mkdir()
    (root / "dir" / "inside.txt").write_bytes(b"inside")
    props = PROPPATCH.format(value="red")
    assert (await client.request("PROPPATCH", "/old.bin", data=props)).status == 207
    assert (await client.request("PROPPATCH", "/dir", data=props)).status == 207
    before = snapshot(root)
    for step in steps:
        fail_on_temp(monkeypatch, step)
    resp = await client.request(method, path, headers=headers, data=body)
    assert resp.status == 507, await resp.text()
    assert snapshot(root) == before
    monkeypatch.undo()
    resp = await client.request(method, path, headers=headers, data=body)
    assert resp.status in (200, 201, 204, 207)
    assert temp_files(root) == []
    if method == "LOCK":  # the lock taken for the refused request was given back
        assert len(etree.fromstring(await resp.read()).findall(".//{DAV:}activelock")) == 1


# -- a full disk: the git backend -------------------------------------------------------------


class _FullDiskFile:
    """An object file that the disk fills up under: its first write stores half."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: bytes) -> int:
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        raise _full()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def fail_git(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make one step of a git write fail as on a full disk: the blob's bytes, its fsync
    (core.fsyncObjectFiles), its rename into ``objects/``, or a tree at commit time."""
    if step == "tree":
        monkeypatch.setattr(DiskObjectStore, "add_object", lambda *_a, **_k: _boom_full())
        return
    temp_fds: set[int] = set()
    real_fdopen, real_fsync, real_replace = os.fdopen, os.fsync, os.replace

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        file = real_fdopen(fd, *args, **kwargs)
        if GIT_TEMP not in os.readlink(f"/proc/self/fd/{fd}"):
            return file
        temp_fds.add(fd)
        return _FullDiskFile(file) if step == "blob" else file

    def fsync(fd: int) -> None:
        if step == "fsync" and fd in temp_fds:
            raise _full()
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if step == "install" and os.path.basename(src).startswith(GIT_TEMP):
            raise _full()
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(git_objects.os, "fdopen", fdopen)
    monkeypatch.setattr(git_objects.os, "fsync", fsync)
    monkeypatch.setattr(git_objects.os, "replace", replace)


def _boom_full() -> None:
    raise _full()


@pytest.fixture
async def git_store(make_git_client: Any, repo: Path, tmp_path: Path) -> Store:
    """A server on a git repository (fsyncing its objects) holding ``/old.bin``."""
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(repo))
    git(repo, "config", "core.fsyncObjectFiles", "true")
    result = Store(await make_git_client(), "git", repo)
    assert (await result.client.put("/old.bin", data=b"old bytes")).status == 201
    return result


def loose_objects(repo: Path) -> set[str]:
    """The loose objects of the repository."""
    return {
        f"{d}/{n}" for d in os.listdir(repo / "objects") if len(d) == 2
        for n in os.listdir(repo / "objects" / d)
    }  # fmt: skip


@BODY_KINDS
@pytest.mark.parametrize("step", ["blob", "fsync", "install", "tree"])
@pytest.mark.parametrize("target", ["/old.bin", "/new.bin"])
async def test_git_on_a_full_disk_is_507_without_a_commit(
    git_store: Store, monkeypatch: pytest.MonkeyPatch, kind: str, step: str, target: str
) -> None:
    repo = git_store.path
    before, objects = git_store.state(), loose_objects(repo)
    fail_git(monkeypatch, step)
    resp = await git_store.client.put(target, data=body_of(kind))
    assert resp.status == 507
    assert git_store.state() == before
    if step != "tree":  # there the blob is complete; unreferenced, `git gc` reaps it
        assert loose_objects(repo) == objects
    monkeypatch.undo()
    assert await (await git_store.client.get("/old.bin")).read() == b"old bytes"
    assert (await git_store.client.put(target, data=body_of(kind))).status in (201, 204)
    git_store.assert_clean()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        pytest.param("PROPPATCH", "/old.bin", {}, PROPPATCH.format(value="blue"), id="PROPPATCH"),
        pytest.param("COPY", "/old.bin", {"Destination": "/copy.bin"}, None, id="COPY"),
        pytest.param("MOVE", "/old.bin", {"Destination": "/moved.bin"}, None, id="MOVE"),
        pytest.param("MKCOL", "/sub", {}, None, id="MKCOL"),
        pytest.param("DELETE", "/old.bin", {}, None, id="DELETE"),
    ],
)
async def test_git_writes_whose_commit_finds_the_disk_full_are_507(
    git_store: Store, monkeypatch: pytest.MonkeyPatch, method: str, path: str,
    headers: dict[str, str], body: str | None,
) -> None:  # fmt: skip
    before = git_store.state()
    fail_git(monkeypatch, "tree")
    resp = await git_store.client.request(method, path, headers=headers, data=body)
    assert resp.status == 507
    assert git_store.state() == before
    monkeypatch.undo()
    resp = await git_store.client.request(method, path, headers=headers, data=body)
    assert resp.status in (201, 204, 207)
    git_store.assert_clean()


# -- names too long ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        pytest.param("PUT", f"/{LONG}", {}, b"x", id="PUT"),
        pytest.param("PUT", f"/dir/{LONG_UTF8}", {}, os.urandom(3 << 20), id="PUT-streamed-utf8"),
        pytest.param("PUT", f"/{LONG}/x.txt", {}, b"x", id="PUT-below"),
        pytest.param("MKCOL", f"/dir/{LONG}", {}, None, id="MKCOL"),
        pytest.param("COPY", "/old.bin", {"Destination": f"/{LONG}"}, None, id="COPY-file"),
        pytest.param("COPY", "/dir", {"Destination": f"/{LONG}"}, None, id="COPY-collection"),
        pytest.param("MOVE", "/old.bin", {"Destination": f"/dir/{LONG}"}, None, id="MOVE-file"),
        pytest.param(
            "MOVE", "/dir", {"Destination": f"/{LONG_UTF8}"}, None, id="MOVE-collection-utf8"
        ),
        pytest.param("LOCK", f"/{LONG}", {}, LOCKINFO, id="LOCK-unmapped"),
    ],
)
async def test_a_name_too_long_is_403_and_creates_nothing(
    store: Store, method: str, path: str, headers: dict[str, str], body: bytes | str | None
) -> None:
    before = store.state()
    resp = await store.client.request(method, path, headers=headers, data=body)
    assert resp.status == 403
    assert "NameTooLong" in await resp.text()
    assert store.state() == before
    if method == "LOCK":  # the lock was given back: the name is free of it
        resp = await store.client.request("PROPFIND", "/", headers={"Depth": "1"})
        assert b"activelock" not in await resp.read()
    store.assert_clean()


@pytest.mark.parametrize("method", ["GET", "HEAD", "PROPFIND", "PROPPATCH", "DELETE"])
async def test_a_name_too_long_is_not_found_where_something_must_exist(
    store: Store, method: str
) -> None:
    before = store.state()
    body = PROPPATCH.format(value="red") if method == "PROPPATCH" else None
    headers = {"Depth": "0"} if method == "PROPFIND" else {}
    resp = await store.client.request(method, f"/dir/{LONG}", headers=headers, data=body)
    assert resp.status == 404
    assert store.state() == before


async def test_the_longest_names_take_dead_properties(store: Store) -> None:
    """255 bytes is a valid name, also in UTF-8: its property file must fit beside it."""
    for name in ("é" * 127, "n" * 255):
        assert (await store.client.put(f"/dir/{name}", data=b"x")).status == 201
        resp = await store.client.request(
            "PROPPATCH", f"/dir/{name}", data=PROPPATCH.format(value="red")
        )
        assert resp.status == 207
        assert "200 OK" in await resp.text()
        resp = await store.client.request(
            "MOVE", f"/dir/{name}", headers={"Destination": f"/{name}"}
        )
        assert resp.status == 201
        resp = await store.client.request("PROPFIND", f"/{name}", headers={"Depth": "0"})
        assert ">red</" in await resp.text()
    store.assert_clean()
