"""The filesystem backend's read cache (backends/readcache.py): a GET or PROPFIND Depth 0
of a small unchanged file is answered from memory, and whatever changes the file on disk
(this server, another worker, any program) is seen by the very next request."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp.test_utils import TestClient
from davserver.backends import filesystem
from davserver.backends.base import NotFound, Resource
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.readcache import filesystem_type
from davserver.backends.temps import TEMP_PREFIX
from helpers import ServerProcess
from lxml import etree

from davserver.dav.deadprops import PROPS_CODEC

PROP_XML = b'<color xmlns="urn:x-test:">{}</color>'
PROPFIND_ALL = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


async def get(client: TestClient, path: str) -> tuple[int, bytes, str | None]:
    resp = await client.get(path)
    return resp.status, await resp.read(), resp.headers.get("ETag")


async def propfind(client: TestClient, path: str) -> tuple[int, etree._Element | None]:
    resp = await client.request("PROPFIND", path, data=PROPFIND_ALL, headers={"Depth": "0"})
    body = await resp.read()
    return resp.status, etree.fromstring(body) if resp.status == 207 else None


def color(ms: etree._Element | None) -> str | None:
    assert ms is not None
    found = ms.find(".//{urn:x-test:}color")
    return None if found is None else found.text


def etag(ms: etree._Element | None) -> str | None:
    assert ms is not None
    return ms.findtext(".//{DAV:}getetag")


async def cached(client: TestClient, path: str) -> tuple[bytes, str | None]:
    """GET and PROPFIND ``path`` twice (the second time from memory); its body and ETag."""
    for _ in range(2):
        status, body, tag = await get(client, path)
        assert status == 200
        code, ms = await propfind(client, path)
        assert code == 207 and etag(ms) == tag
    return body, tag


def replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: in_place(f, b"second"), id="overwrite-in-place"),
        pytest.param(lambda f: replace(f, b"second"), id="rename-over"),
        pytest.param(lambda f: os.utime(f, ns=(10**18, 10**18)), id="utime"),
        pytest.param(lambda f: f.with_name("elsewhere").hardlink_to(f)
                     or in_place(f.with_name("elsewhere"), b"second"), id="hard-link"),
    ],
)  # fmt: skip
async def test_change_behind_the_back_seen_at_once(
    client: TestClient, root: Path, change: Callable[[Path], Any]
) -> None:
    (root / "d").mkdir()
    file = root / "d" / "f.txt"
    file.write_bytes(b"first!")
    body, tag = await cached(client, "/d/f.txt")
    assert body == b"first!"
    change(file)
    want = os.stat(file)
    status, body, new_tag = await get(client, "/d/f.txt")
    assert status == 200 and body == file.read_bytes()
    assert new_tag == '"%x-%x-%x"' % (want.st_ino, want.st_mtime_ns, want.st_size)  # noqa: UP031
    assert new_tag != tag
    code, ms = await propfind(client, "/d/f.txt")
    assert code == 207 and etag(ms) == new_tag


async def test_delete_and_folder_rename_seen_at_once(client: TestClient, root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_bytes(b"one")
    (root / "g.txt").write_bytes(b"gone soon")
    await cached(client, "/a/b/f.txt")
    await cached(client, "/g.txt")
    (root / "g.txt").unlink()
    assert (await get(client, "/g.txt"))[0] == 404
    assert (await propfind(client, "/g.txt"))[0] == 404
    (root / "a").rename(root / "z")
    assert (await get(client, "/a/b/f.txt"))[0] == 404
    assert (await propfind(client, "/a/b/f.txt"))[0] == 404
    assert (await get(client, "/z/b/f.txt"))[1] == b"one"
    # A new folder at the old name: its file, not the one remembered.
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_bytes(b"two")
    assert (await get(client, "/a/b/f.txt"))[1] == b"two"
    await cached(client, "/z/b/f.txt")
    (root / "z" / "b").rename(root / "z" / "c")
    assert (await get(client, "/z/b/f.txt"))[0] == 404


async def test_dead_properties_seen_at_once(client: TestClient, root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_bytes(b"x")
    await cached(client, "/d/f.txt")
    assert color((await propfind(client, "/d/f.txt"))[1]) is None
    body = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        + PROP_XML.replace(b"{}", b"blue")
        + b"</D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", "/d/f.txt", data=body)
    assert resp.status == 207
    assert color((await propfind(client, "/d/f.txt"))[1]) == "blue"
    assert color((await propfind(client, "/d/f.txt"))[1]) == "blue"
    # The side file edited on disk, in place and replaced.
    side = root / "d" / ".davprops" / "m.f.txt"
    in_place(side, PROPS_CODEC.encode({"{urn:x-test:}color": PROP_XML.replace(b"{}", b"red")}))
    assert color((await propfind(client, "/d/f.txt"))[1]) == "red"
    replace(side, PROPS_CODEC.encode({"{urn:x-test:}color": PROP_XML.replace(b"{}", b"green")}))
    assert color((await propfind(client, "/d/f.txt"))[1]) == "green"
    # The whole .davprops folder removed, then made again by hand.
    for name in os.listdir(side.parent):
        (side.parent / name).unlink()
    side.parent.rmdir()
    assert color((await propfind(client, "/d/f.txt"))[1]) is None
    assert color((await propfind(client, "/d/f.txt"))[1]) is None
    side.parent.mkdir()
    side.write_bytes(PROPS_CODEC.encode({"{urn:x-test:}color": PROP_XML.replace(b"{}", b"new")}))
    assert color((await propfind(client, "/d/f.txt"))[1]) == "new"


async def test_own_writes_seen_at_once(client: TestClient, root: Path) -> None:
    await client.put("/f.txt", data=b"v0")
    for i in range(1, 20):
        assert (await get(client, "/f.txt"))[1] == f"v{i - 1}".encode()
        resp = await client.put("/f.txt", data=f"v{i}".encode())
        assert resp.status == 204
        tag = resp.headers["ETag"]
        status, body, got = await get(client, "/f.txt")
        assert (status, body, got) == (200, f"v{i}".encode(), tag)
    assert (await client.delete("/f.txt")).status == 204
    assert (await get(client, "/f.txt"))[0] == 404


# -- the storage: what is served from memory, and when not -------------------------------


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[FilesystemStorage, list[str]]]:
    """A filesystem storage whose calls to its worker threads are listed (their names)."""
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    await storage.open()
    calls = await count_calls(storage)
    yield storage, calls
    await storage.close()


async def count_calls(storage: FilesystemStorage) -> list[str]:
    calls: list[str] = []
    pool = storage._pool
    assert pool is not None
    submit = pool.submit

    def counting(loop: Any, fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return submit(loop, fn, *args)

    pool.submit = counting  # type: ignore[method-assign]
    return calls


async def test_unchanged_file_needs_no_thread(
    counted: tuple[FilesystemStorage, list[str]], tmp_path: Path
) -> None:
    storage, calls = counted
    (tmp_path / "store" / "d").mkdir()
    (tmp_path / "store" / "d" / "f.bin").write_bytes(b"z" * 4096)
    first = await storage.read("d/f.bin", inline_limit=65536)
    res = await storage.stat("d/f.bin", dead_props=True)
    assert len(calls) == 2
    for _ in range(10):
        body = await storage.read("d/f.bin", inline_limit=65536)
        assert body.data == b"z" * 4096 and body.resource == first.resource
        assert await storage.stat("d/f.bin", dead_props=True) == res
        assert (await storage.stat("d/f.bin")) == res
    assert len(calls) == 2
    os.chmod(tmp_path / "store" / "d" / "f.bin", 0o600)  # an event: read again
    assert (await storage.read("d/f.bin", inline_limit=65536)).data == b"z" * 4096
    assert len(calls) == 3
    # What is not kept: a smaller inline limit (a file to send), missing files. A
    # folder's stat is (one fill, then none).
    assert (await storage.read("d/f.bin", inline_limit=100)).data is None
    await storage.stat("d")
    await storage.stat("d")
    with pytest.raises(NotFound):
        await storage.read("d/none", inline_limit=65536)
    assert len(calls) == 6


async def test_folder_stat_kept_until_it_changes(
    counted: tuple[FilesystemStorage, list[str]], tmp_path: Path
) -> None:
    """A folder's stat is answered from memory until a name in it is created, removed or
    renamed (a temporary file's too: its mtime moves), its attributes or its own dead
    properties change, or it is moved away; the change shows in the very next stat."""
    storage, calls = counted
    folder = tmp_path / "store" / "d"
    folder.mkdir()

    async def stat_twice(dead_props: bool = False) -> Resource:
        """The folder's stat: one fill, then the same from memory."""
        served = len(calls)
        res = await storage.stat("d", dead_props=dead_props)
        assert res is not None and res.is_collection
        assert len(calls) == served + 1
        assert await storage.stat("d", dead_props=dead_props) == res
        assert len(calls) == served + 1
        return res

    res = await stat_twice()
    changes: list[Callable[[], object]] = [
        lambda: (folder / "new").write_bytes(b"1"),
        lambda: (folder / f"{TEMP_PREFIX}x").write_bytes(b"1"),  # a temporary file
        lambda: (folder / "new").rename(folder / "renamed"),
        lambda: (folder / "renamed").unlink(),
        lambda: (folder / "sub").mkdir(),
        lambda: os.utime(folder, ns=(1, 1)),
        lambda: os.chmod(folder, 0o700),
    ]
    for change in changes:
        change()
        now = await stat_twice()
        assert (now.etag, now.mtime, now.ctime) != (res.etag, res.mtime, res.ctime)
        assert calls[-1] == "stat_sync"  # its watches in place: the stat alone
        res = now
    with_props = await stat_twice(dead_props=True)
    assert with_props.dead_props == {}
    own = folder / ".davprops" / "self"
    own.parent.mkdir()
    for value in (b"<color/>", b"<other/>"):
        props = PROPS_CODEC.encode({"{urn:x-test:}color": value})
        replace(own, props) if own.exists() else own.write_bytes(props)
        assert (await stat_twice(dead_props=True)).dead_props == PROPS_CODEC.decode(props)
    # Moved away, a file in its place: the file, and that is kept as a file's stat is.
    folder.rename(folder.parent / "moved")
    folder.write_bytes(b"now a file")
    res = await storage.stat("d")
    assert res is not None and not res.is_collection and res.size == 10
    served = len(calls)
    for _ in range(3):
        assert await storage.stat("d") == res
    assert len(calls) == served


async def test_symlinked_folder_not_cached(
    counted: tuple[FilesystemStorage, list[str]], tmp_path: Path
) -> None:
    storage, calls = counted
    (tmp_path / "store" / "real").mkdir()
    (tmp_path / "store" / "real" / "f").write_bytes(b"1")
    (tmp_path / "store" / "link").symlink_to("real")
    for _ in range(3):
        assert (await storage.read("link/f", inline_limit=100)).data == b"1"
    assert len(calls) == 3


async def reads_from_disk(storage: FilesystemStorage, tmp_path: Path) -> int:
    """The thread calls of three reads of a new file (3: none answered from memory)."""
    await storage.open()
    calls = await count_calls(storage)
    (tmp_path / "store" / "f").write_bytes(b"1")
    for _ in range(3):
        assert (await storage.read("f", inline_limit=100)).data == b"1"
    made = len(calls)
    await storage.close()
    return made


async def test_off_by_key(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC, read_cache=0)
    assert await reads_from_disk(storage, tmp_path) == 3


async def test_off_on_a_network_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "is_local", lambda root: False)
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    assert await reads_from_disk(storage, tmp_path) == 3


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /srv/nfs rw,relatime shared:5 - nfs4 server:/export rw,vers=4.2
41 40 0:41 / /srv/nfs/local rw - tmpfs tmpfs rw
42 27 0:42 / /srv/my\\040share rw - cifs //host/share rw
43 27 0:43 / /srv/over rw - xfs /dev/sdb rw
44 27 0:44 / /srv/over rw - fuse.sshfs host: rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "ext4"),
        ("/srv", "ext4"),
        ("/srv/nfsx", "ext4"),
        ("/srv/nfs", "nfs4"),
        ("/srv/nfs/data/x", "nfs4"),
        ("/srv/nfs/local/a", "tmpfs"),
        ("/srv/my share/a", "cifs"),
        ("/srv/over/a", "fuse.sshfs"),  # stacked: the last mount listed is on top
    ],
)
def test_filesystem_type_from_mountinfo(path: str, kind: str) -> None:
    assert filesystem_type(path, MOUNTINFO) == kind


# -- several workers --------------------------------------------------------------------


def test_two_workers_never_stale(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    config = tmp_path / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\nworkers = 2\naccess_log = false\n\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "{store}"\n'
    )
    server = server_process("--config", str(config))
    url = f"{server.url}/f.txt"
    writer = requests.Session()
    readers = [requests.Session() for _ in range(6)]  # keep-alive: spread over the workers
    try:
        assert writer.put(url, data=b"start").status_code == 201
        for i in range(60):
            for reader in readers:
                assert reader.get(url).content == (f"v{i - 1}".encode() if i else b"start")
            if i % 3 == 2:  # behind the server's back too
                in_place(store / "f.txt", f"v{i}".encode())
            else:
                assert writer.put(url, data=f"v{i}".encode()).status_code == 204
        for reader in readers:
            assert reader.get(url).content == b"v59"
    finally:
        for session in (writer, *readers):
            session.close()


async def test_changes_racing_the_fills(tmp_path: Path) -> None:
    """Reads fill the cache while another thread keeps changing the file (in place, by
    rename, its folder moved away and made again): once the changes stop, every read sees the
    last one, from memory again."""
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    await storage.open()
    folder = tmp_path / "store" / "a" / "b"
    folder.mkdir(parents=True)
    file = folder / "f"
    file.write_bytes(b"0")

    def writer() -> None:
        for i in range(1, 400):
            if i % 2:
                in_place(file, str(i).encode())
            else:
                replace(file, str(i).encode())
            if i % 10 == 0:  # the folder moved away, a new one in its place
                folder.rename(folder.parent / f"old{i}")
                folder.mkdir()
                file.write_bytes(str(i).encode())

    async def reader() -> None:
        while not done.done():
            with contextlib.suppress(NotFound):  # between the move and the new folder
                await storage.read("a/b/f", inline_limit=100)
            await storage.stat("a/b/f", dead_props=True)
            await asyncio.sleep(0)  # hits do not yield: let the writer's end be seen

    done = asyncio.ensure_future(asyncio.to_thread(writer))
    await asyncio.gather(done, *(reader() for _ in range(8)))
    for _ in range(3):
        assert (await storage.read("a/b/f", inline_limit=100)).data == b"399"
    calls = await count_calls(storage)
    assert (await storage.read("a/b/f", inline_limit=100)).data == b"399"
    assert len(calls) <= 1
    await storage.close()


async def test_folder_changes_racing_the_stats(tmp_path: Path) -> None:
    """Stats of a folder fill and refill the cache while another thread keeps making,
    renaming and removing names in it, and changing its dead properties: once the changes
    stop, every stat gives what is on disk, from memory again."""
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    await storage.open()
    folder = tmp_path / "store" / "a" / "b"
    (folder / ".davprops").mkdir(parents=True)
    own = folder / ".davprops" / "self"

    def writer() -> None:
        for i in range(400):
            (folder / f"f{i}").write_bytes(b"x")
            if i % 3 == 0:
                (folder / f"f{i}").rename(folder / f"g{i}")
            if i % 5 == 0:
                replace(own, PROPS_CODEC.encode({"{urn:x-test:}n": b"<n>%d</n>" % i}))
            if i % 7 == 0:
                for name in os.listdir(folder):
                    if name.startswith("g"):
                        (folder / name).unlink()

    async def reader() -> None:
        while not done.done():
            await storage.stat("a/b", dead_props=True)
            await storage.stat("a/b")
            await asyncio.sleep(0)  # hits do not yield: let the writer's end be seen

    done = asyncio.ensure_future(asyncio.to_thread(writer))
    await asyncio.gather(done, *(reader() for _ in range(8)))
    want = await asyncio.to_thread(storage.stat_sync, "a/b", True)
    for _ in range(3):
        assert await storage.stat("a/b", dead_props=True) == want
    stored = await asyncio.to_thread(own.read_bytes)
    assert want is not None and want.dead_props == PROPS_CODEC.decode(stored)
    assert want.dead_props
    calls = await count_calls(storage)
    assert await storage.stat("a/b", dead_props=True) == want
    assert await storage.stat("a/b") == dataclasses.replace(want, dead_props=None)
    assert not calls
    await storage.close()


async def test_budget_drops_the_least_recently_used(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC, read_cache=64 << 10)
    await storage.open()
    for i in range(100):
        (tmp_path / "store" / f"f{i}").write_bytes(b"%d" % i * 100)
    for _ in range(2):
        for i in range(100):
            assert (await storage.read(f"f{i}", inline_limit=1 << 16)).data == b"%d" % i * 100
    calls = await count_calls(storage)
    assert (await storage.read("f99", inline_limit=1 << 16)).data == b"99" * 100
    assert (await storage.read("f0", inline_limit=1 << 16)).data == b"0" * 100
    assert len(calls) == 1  # f99 is still there, f0 long gone
    await storage.close()


async def test_folder_replaced_while_filling(tmp_path: Path) -> None:
    """The folder is moved away, and another made in its place, just after a fill read the
    file: no event reaches the file's own watch, yet the result is not kept."""
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    await storage.open()
    folder = tmp_path / "store" / "a" / "b"
    folder.mkdir(parents=True)
    (folder / "g").write_bytes(b"g")
    (folder / "f").write_bytes(b"old")
    assert (await storage.read("a/b/g", inline_limit=100)).data == b"g"  # folders watched
    read_sync = storage._read_sync

    def then_replace(path: str, inline_limit: int) -> Any:
        body = read_sync(path, inline_limit)
        folder.rename(folder.parent / "moved")
        folder.mkdir()
        (folder / "f").write_bytes(b"new")
        return body

    storage._read_sync = then_replace  # type: ignore[method-assign]
    assert (await storage.read("a/b/f", inline_limit=100)).data == b"old"
    storage._read_sync = read_sync  # type: ignore[method-assign]
    assert (await storage.read("a/b/f", inline_limit=100)).data == b"new"
    assert (await storage.read("a/b/f", inline_limit=100)).data == b"new"
    await storage.close()


async def test_written_through_a_link_while_filling(tmp_path: Path) -> None:
    """Just after a fill read the file, it is written through a hard link outside the
    store: the only event is the file's own, on a watch the loop does not know yet."""
    storage = FilesystemStorage(tmp_path / "store", PROPS_CODEC)
    await storage.open()
    folder = tmp_path / "store" / "d"
    folder.mkdir(parents=True)
    (folder / "g").write_bytes(b"g")
    (folder / "f").write_bytes(b"old")
    (tmp_path / "outside").hardlink_to(folder / "f")
    assert (await storage.read("d/g", inline_limit=100)).data == b"g"  # folders watched
    read_sync = storage._read_sync

    def then_write(path: str, inline_limit: int) -> Any:
        body = read_sync(path, inline_limit)
        in_place(tmp_path / "outside", b"new")
        return body

    storage._read_sync = then_write  # type: ignore[method-assign]
    assert (await storage.read("d/f", inline_limit=100)).data == b"old"
    storage._read_sync = read_sync  # type: ignore[method-assign]
    assert (await storage.read("d/f", inline_limit=100)).data == b"new"
    await storage.close()
