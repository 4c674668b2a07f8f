"""Crash consistency: `davserver serve` killed with SIGKILL in the middle of two 100 MiB
uploads (one replacing a file, one creating one), once half of each has reached the disk.

What the client had stored before must survive exactly: the old bytes at the replaced
path, nothing at the new one, dead properties, the lock database, for git the branch and
a repository `git fsck` finds sound. Listings never show the temporary files, and the
next start removes them, so the store is then byte for byte what it was before.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import MakeClient
from davserver.backends.filesystem import FilesystemStorage
from gitrepo import assert_linear_and_clean, commits, files, git
from helpers import ServerProcess, snapshot
from lxml import etree

from davserver.dav.deadprops import PROPS_CODEC

MIB = 1 << 20
TOTAL = 100 * MIB  # each upload announces this much
SENT = 50 * MIB  # and sends this much before the kill
OLD = os.urandom(MIB)
PROPPATCH = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
    "<Z:colour>red</Z:colour></D:prop></D:set></D:propertyupdate>"
)
LOCKINFO = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockinfo>"
)
FILESYSTEM_TEMP = ".davtmp-"
GIT_TEMP = "tmp_obj_"


def write_config(tmp_path: Path, backend: str) -> Path:
    """A configuration serving ``tmp_path/store`` (a folder, or a repository) at /."""
    store = tmp_path / "store"
    mount = f'root = "{store}"' if backend == "filesystem" else f'backend = "git"\nrepo = "{store}"'
    conf = tmp_path / "conf.toml"
    conf.write_text(
        f'[server]\naccess_log = false\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\n{mount}\n'
    )
    return conf


def temporaries(store: Path, backend: str) -> dict[str, int]:
    """The temporary files in the store (path → size), wherever the backend keeps them;
    one removed between the listing and its stat is left out."""
    if backend == "git":
        objects = store / "objects"
        found = {n: objects / n for n in os.listdir(objects) if n.startswith(GIT_TEMP)}
    else:
        found = {
            os.path.relpath(os.path.join(dirpath, name), store): Path(dirpath, name)
            for dirpath, dirnames, filenames in os.walk(store)
            for name in dirnames + filenames
            if name.startswith(FILESYSTEM_TEMP)
        }
    sizes = {}
    for name, path in found.items():
        with contextlib.suppress(FileNotFoundError):
            sizes[name] = os.lstat(path).st_size
    return sizes


def start_upload(port: int, path: str) -> socket.socket:
    """A connection that has sent the head of a PUT announcing TOTAL bytes."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {TOTAL}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


def propfind_hrefs(url: str) -> set[str]:
    """The hrefs a Depth: 1 PROPFIND of the root lists."""
    resp = requests.request("PROPFIND", url + "/", headers={"Depth": "1"}, timeout=10)
    assert resp.status_code == 207
    return {h.text or "" for h in etree.fromstring(resp.content).iter("{DAV:}href")}


@pytest.mark.parametrize("backend", ["filesystem", "git"])
def test_sigkill_during_uploads_keeps_the_old_state(
    tmp_path: Path, server_process: Callable[..., ServerProcess], backend: str
) -> None:
    conf = write_config(tmp_path, backend)
    store = tmp_path / "store"
    server = server_process("--config", str(conf))
    url = server.url
    assert requests.put(url + "/old.bin", data=OLD, timeout=10).status_code == 201
    assert requests.request("MKCOL", url + "/dir", timeout=10).status_code == 201
    assert requests.put(url + "/dir/keep.txt", data=b"keep", timeout=10).status_code == 201
    resp = requests.request("PROPPATCH", url + "/old.bin", data=PROPPATCH, timeout=10)
    assert resp.status_code == 207
    resp = requests.request("LOCK", url + "/dir/keep.txt", data=LOCKINFO, timeout=10)
    assert resp.status_code == 200
    before = snapshot(store)
    head = commits(store) if backend == "git" else []
    listing = propfind_hrefs(url)
    assert listing == {"/", "/old.bin", "/dir/"}

    # Two uploads, 1 MiB at a time each, half of their announced length.
    uploads = [start_upload(server.port, "/old.bin"), start_upload(server.port, "/new.bin")]
    block = os.urandom(MIB)  # random: git stores it as it comes (no compression)
    for _ in range(SENT // MIB):
        for sock in uploads:
            sock.sendall(block)
    deadline = time.monotonic() + 60
    while True:  # until the server has written (nearly) all it was sent
        sizes = temporaries(store, backend)
        big = [size for size in sizes.values() if size >= SENT - MIB]
        if len(big) == 2:
            break
        assert time.monotonic() < deadline, f"the server did not write the uploads: {sizes}"
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(timeout=10) == -signal.SIGKILL
    for sock in uploads:
        sock.close()

    # On disk, before any restart: the old state, plus temporary files no one can see.
    left = temporaries(store, backend)
    assert len([s for s in left.values() if s >= SENT - MIB]) == 2
    if backend == "git":
        assert commits(store) == head
        stored = files(store)
        assert stored["old.bin"] == OLD
        assert "new.bin" not in stored
    else:
        assert (store / "old.bin").read_bytes() == OLD
        assert not (store / "new.bin").exists()

    # A restart sweeps them; the store is again exactly what it was.
    again = server_process("--config", str(conf))
    assert propfind_hrefs(again.url) == listing
    page = requests.get(again.url + "/", timeout=10).text
    assert "old.bin" in page and "dir/" in page
    assert FILESYSTEM_TEMP not in page and "new.bin" not in page
    assert requests.get(again.url + "/old.bin", timeout=10).content == OLD
    assert requests.get(again.url + "/new.bin", timeout=10).status_code == 404
    resp = requests.request("PROPFIND", again.url + "/old.bin", headers={"Depth": "0"}, timeout=10)
    assert ">red</" in resp.text
    # The lock survived in the lock database: a write without its token is refused.
    assert requests.put(again.url + "/dir/keep.txt", data=b"x", timeout=10).status_code == 423
    assert temporaries(store, backend) == {}
    assert snapshot(store) == before
    if backend == "git":
        assert commits(store) == head
        assert_linear_and_clean(store)


# -- the sweep, in-process -------------------------------------------------------------------


def register(root: Path, tmp: Path) -> Path:
    """Enter ``tmp`` in the filesystem backend's registry of long writes, as a writer does."""
    registry = root / ".davtmp-journal"
    registry.mkdir(exist_ok=True)
    entry = registry / tmp.name
    entry.symlink_to("../" + str(tmp.relative_to(root)))
    return entry


async def test_the_sweep_removes_only_what_dead_writers_left(
    make_client: MakeClient, root: Path
) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "file.txt").write_bytes(b"kept")
    dead_file = root / "dir" / ".davtmp-0123456789abcdef-1"
    dead_file.write_bytes(b"half an upload")
    dead_copy = root / ".davtmp-0123456789abcdef-2"
    (dead_copy / "sub").mkdir(parents=True)
    (dead_copy / "sub" / "x").write_bytes(b"half a copy")
    live = root / "dir" / ".davtmp-fedcba9876543210-1"
    live.write_bytes(b"an upload under way in another server")
    outside = root / "dir" / "not-a-temp.txt"
    outside.write_bytes(b"never a sweep's business")
    for path in (dead_file, dead_copy, live, outside):
        register(root, path)
    gone = register(root, root / "dir" / ".davtmp-0123456789abcdef-3")  # finished already
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # its writer, alive
        client = await make_client()
        assert (await client.get("/dir/file.txt")).status == 200
        registry = {p.name for p in (root / ".davtmp-journal").iterdir()}
        assert registry == {live.name}
        assert not dead_file.exists() and not dead_copy.exists() and not gone.exists()
        assert live.read_bytes() == b"an upload under way in another server"
        assert outside.read_bytes() == b"never a sweep's business"
        await client.close()
    client = await make_client()  # its writer died too
    assert (await client.get("/dir/file.txt")).status == 200
    assert snapshot(root) == {
        "dir": None,
        "dir/file.txt": b"kept",
        "dir/not-a-temp.txt": b"never a sweep's business",
    }


async def test_long_writes_that_start_as_others_end_never_fail(root: Path) -> None:
    """The registry folder is made by the first long write under way and removed by the
    last: two writers keep starting and ending writes across that moment."""
    storage = FilesystemStorage(root, PROPS_CODEC)
    await storage.open()
    failures: list[BaseException] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed, so registered"

    async def writer(n: int) -> None:
        for i in range(1000):
            try:
                async with storage.change(author="a", message="m") as change:
                    await change.write(f"f{n}-{i % 3}", body())
            except Exception as exc:  # counted, then reported
                failures.append(exc)

    try:
        await asyncio.gather(writer(0), writer(1))
    finally:
        await storage.close()
    assert failures == []
    assert temporaries(root, "filesystem") == {}
    assert len(os.listdir(root)) == 2 * 3


async def test_git_sweeps_its_own_dead_temporary_objects_only(
    make_git_client: Any, repo: Path, tmp_path: Path
) -> None:
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(repo))
    objects = repo / "objects"
    for name in ("tmp_obj_davserver_dead", "tmp_obj_davserver_live", "tmp_obj_gits_own"):
        (objects / name).write_bytes(b"part of an object")
    with open(objects / "tmp_obj_davserver_live", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        client = await make_git_client()
        assert (await client.put("/a.txt", data=b"a")).status == 201
    assert sorted(n for n in os.listdir(objects) if n.startswith(GIT_TEMP)) == [
        "tmp_obj_davserver_live",
        "tmp_obj_gits_own",
    ]
