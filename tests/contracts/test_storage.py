"""The Storage interface (backends/base.py), as every backend keeps it.

Each test runs once per backend in ``BACKENDS``: a new backend is one more line there (a
function that builds it over an empty folder, with the dead-property codec it is given).
What the backends may do differently (the git backend makes one commit per ``change()``
block, the filesystem applies each operation at once; ETags are the backend's own) is
left out; everything the interface promises is here: reads, the six write operations,
preconditions checked inside the write, refused names, errors, the ``Changed`` records
the listener hears, dead properties through the codec. A refusal also checks that the
store did not change and that the listener heard nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from davserver.backends.base import (
    NAME_MAX,
    AlreadyExists,
    BadName,
    Changed,
    Conflict,
    DeadProps,
    FileChange,
    Measured,
    NameTooLong,
    NotFound,
    Precondition,
    PreconditionFailed,
    PropsCodec,
    PropsUpdate,
    RangeNotSatisfiable,
    Resource,
    Storage,
    StorageError,
)
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.git import GitStorage
from helpers import fill_stock

from davserver.dav.deadprops import PROPS_CODEC
from davserver.runtime import closer


def filesystem(folder: Path, codec: PropsCodec) -> Storage:
    """The filesystem backend over an empty folder."""
    (folder / "root").mkdir()
    return FilesystemStorage(folder / "root", codec)


class _MadeAhead(FilesystemStorage):
    """The filesystem backend with a helper process making its files ahead
    (runtime/tempstock.py), started with it, and a batch at hand before the test writes:
    its writes link files the helper made, as a single pinned server's do."""

    async def open(self) -> None:
        await asyncio.to_thread(closer.start, 0)
        await super().open()
        assert self.stock is not None
        await asyncio.to_thread(fill_stock, self.stock)

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(closer.stop)


def filesystem_made_ahead(folder: Path, codec: PropsCodec) -> Storage:
    """The filesystem backend over an empty folder, its files made ahead by a helper."""
    (folder / "root").mkdir()
    return _MadeAhead(folder / "root", codec)


def git(folder: Path, codec: PropsCodec) -> Storage:
    """The git backend over a repository its first write makes."""
    return GitStorage(folder / "store.git", codec=codec, state_dir=folder / "state")


BACKENDS = [
    pytest.param(filesystem, id="filesystem"),
    pytest.param(filesystem_made_ahead, id="filesystem-made-ahead"),
    pytest.param(git, id="git"),
]

AUTHOR = "Contract Test <contract@example.org>"
PROP = "{urn:x-test:}color"
PROP_XML = b'<color xmlns="urn:x-test:">blue</color>'


class CountingCodec:
    """The real codec, counting its calls: a backend stores dead properties through the
    codec it is given, never in a form of its own."""

    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    def encode(self, props: DeadProps) -> bytes:
        self.encoded += 1
        return PROPS_CODEC.encode(props)

    def decode(self, data: bytes) -> dict[str, bytes]:
        self.decoded += 1
        return PROPS_CODEC.decode(data)


@dataclass
class Store:
    """A backend under test, opened, with what its listener heard."""

    storage: Storage
    codec: CountingCodec
    heard: list[Changed] = field(default_factory=list)

    async def listen(self, changes: Sequence[Changed]) -> None:
        self.heard.extend(changes)

    async def op(self, name: str, *args: object, **kwargs: object) -> object:
        """The ``Change`` operation ``name`` in a change block of its own (one commit on
        git); what it returned."""
        async with self.storage.change(author=AUTHOR, message=name) as change:
            return await getattr(change, name)(*args, **kwargs)

    async def write(self, path: str, data: bytes = b"data", **kwargs: object) -> Resource:
        async with self.storage.change(author=AUTHOR, message="write") as change:
            resource, _ = await change.write(path, data, **kwargs)
        return resource

    async def mkcol(self, path: str) -> None:
        async with self.storage.change(author=AUTHOR, message="mkcol") as change:
            await change.mkcol(path)

    async def set_props(self, path: str, props: DeadProps | PropsUpdate, **kwargs: object) -> None:
        async with self.storage.change(author=AUTHOR, message="props") as change:
            await change.set_props(path, props, **kwargs)

    async def etag(self, path: str) -> str:
        found = await self.storage.stat(path)
        assert found is not None, path
        return found.etag

    async def data(self, path: str) -> bytes:
        body = await self.storage.read(path, inline_limit=1 << 20)
        if body.data is not None:
            return body.data
        assert body.file is not None
        file = body.file
        try:
            return await asyncio.to_thread(file.read)
        finally:
            await asyncio.to_thread(file.close)

    async def names(self, path: str, *, dead_props: bool = False) -> dict[str, Resource]:
        found: dict[str, Resource] = {}
        async for batch in self.storage.children(path, dead_props=dead_props):
            found.update((r.name, r) for r in batch)
        return found

    async def snapshot(self, path: str = "") -> dict[str, tuple[object, ...]]:
        """Everything the interface shows below ``path``: kind, ETag, bytes, properties."""
        out: dict[str, tuple[object, ...]] = {}
        for name, res in (await self.names(path, dead_props=True)).items():
            member = f"{path}/{name}" if path else name
            props = dict(res.dead_props or {})
            if res.is_collection:
                out[member] = ("collection", res.etag, props)
                out.update(await self.snapshot(member))
            else:
                out[member] = ("file", res.etag, await self.data(member), props)
        return out

    def kinds(self) -> list[tuple[str, str, str | None, bool]]:
        """What the listener heard, in short; forgotten afterwards."""
        heard = [(c.kind, c.path, c.to, c.is_collection) for c in self.heard]
        self.heard.clear()
        return heard


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    codec = CountingCodec()
    storage = request.param(tmp_path, codec)
    store = Store(storage, codec)
    storage.listen(store.listen)
    await storage.open()
    try:
        yield store
    finally:
        await storage.close()


async def unchanged(
    store: Store, attempt: Callable[[], Awaitable[object]], error: type[Exception]
) -> None:
    """``attempt`` raises ``error``, and the store and the listener are as before."""
    before = await store.snapshot()
    store.heard.clear()
    with pytest.raises(error):
        await attempt()
    assert await store.snapshot() == before
    assert store.heard == []


def refuse(_: Resource | None) -> None:
    """A precondition that never holds."""
    raise PreconditionFailed("refused by the test")


# -- reads -------------------------------------------------------------------------------


async def test_the_root_is_a_collection_from_the_start(store: Store) -> None:
    root = await store.storage.stat("")
    assert root is not None and root.is_collection and root.path == ""
    assert await store.names("") == {}


async def test_stat_tells_what_is_stored(store: Store) -> None:
    written = await store.write("notes.txt", b"hello")
    found = await store.storage.stat("notes.txt")
    assert found is not None
    assert (found.path, found.name, found.is_collection, found.size) == (
        "notes.txt",
        "notes.txt",
        False,
        5,
    )
    assert found.etag == written.etag and found.etag
    assert found.content_type == "text/plain"
    assert await store.storage.stat("missing.txt") is None
    assert await store.storage.stat("notes.txt/below") is None


@pytest.mark.parametrize("store", BACKENDS[:2], indirect=True)
@pytest.mark.parametrize("op", ["write", "replace", "copy"])
async def test_what_a_write_says_it_stored_is_what_a_stat_finds(
    store: Store, op: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filesystem's own: the resource a write returns, and the one its listener
    hears, are the file as it stands once in place, down to its change time: a rename
    moves that, and the calendar index keeps these resources to answer PROPFINDs with
    (its creationdate must not differ by a second from what a stat gives). (The git
    backend's times are its commits'.)"""
    rename = os.replace

    def late_rename(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.03)  # a few clock ticks after the file was written and stamped
        rename(*args, **kwargs)

    await store.write("a.txt", b"old")
    monkeypatch.setattr(os, "replace", late_rename)
    store.heard.clear()
    if op == "copy":
        await store.op("copy", "a.txt", "b.txt", recursive=True)
        path = "b.txt"
    else:
        path = "a.txt" if op == "replace" else "new.txt"
        await store.write(path, b"new")
    [said] = [c.resource for c in store.heard if c.path == path]
    found = await store.storage.stat(path)
    assert said is not None and found is not None
    assert (said.etag, said.size, said.mtime, said.ctime) == (
        found.etag, found.size, found.mtime, found.ctime,
    )  # fmt: skip


async def test_children_stream_the_members_of_a_collection(store: Store) -> None:
    await store.mkcol("folder")
    for i in range(5):
        await store.write(f"folder/f{i}.txt", b"x" * i)
    await store.mkcol("folder/sub")
    members = await store.names("folder")
    assert sorted(members) == ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "sub"]
    assert members["sub"].is_collection and members["sub"].path == "folder/sub"
    assert members["f3.txt"].size == 3 and members["f3.txt"].path == "folder/f3.txt"


@pytest.mark.parametrize("path", ["missing", "file.txt"])
async def test_children_of_what_is_no_folder_is_not_found(store: Store, path: str) -> None:
    await store.write("file.txt")
    with pytest.raises(NotFound):
        await store.names(path)


async def test_read_gives_small_bodies_in_memory_and_big_ones_as_a_file(store: Store) -> None:
    await store.write("small.bin", b"s" * 100)
    big = bytes(range(256)) * 1024
    await store.write("big.bin", big)
    small = await store.storage.read("small.bin", inline_limit=1000)
    assert small.data == b"s" * 100 and small.resource.size == 100
    body = await store.storage.read("big.bin", inline_limit=1000)
    assert body.data is None and body.file is not None and body.resource.size == len(big)
    file = body.file
    assert await asyncio.to_thread(file.read) == big
    await asyncio.to_thread(file.close)
    with pytest.raises(NotFound):
        await store.storage.read("missing.bin", inline_limit=1000)


async def test_quota_is_two_counts_or_unknown(store: Store) -> None:
    quota = await store.storage.quota("")
    assert quota is None or (len(quota) == 2 and min(quota) >= 0)


# -- writes ------------------------------------------------------------------------------


async def test_write_creates_then_replaces(store: Store) -> None:
    async with store.storage.change(author=AUTHOR, message="new") as change:
        first, created = await change.write("a.txt", b"one")
    assert created and first.size == 3
    async with store.storage.change(author=AUTHOR, message="again") as change:
        second, created = await change.write("a.txt", b"two!")
    assert not created and second.size == 4 and second.etag != first.etag
    assert await store.data("a.txt") == b"two!"
    assert await store.etag("a.txt") == second.etag


async def test_a_streamed_body_is_stored_whole(store: Store) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, in uneven pieces

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    async with store.storage.change(author=AUTHOR, message="stream") as change:
        resource, created = await change.write("big.bin", pieces(), len(data))
    assert created and resource.size == len(data)
    assert await store.data("big.bin") == data


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_a_body_of_the_wrong_size_stores_nothing(store: Store, streamed: bool) -> None:
    await store.write("kept.txt", b"old bytes")

    async def pieces() -> AsyncIterator[bytes]:
        yield b"short"

    async def attempt() -> None:
        body = pieces() if streamed else b"short"
        async with store.storage.change(author=AUTHOR, message="short") as change:
            await change.write("kept.txt", body, 1000)

    await unchanged(store, attempt, ValueError)


async def test_mkcol_makes_an_empty_collection(store: Store) -> None:
    await store.mkcol("new")
    found = await store.storage.stat("new")
    assert found is not None and found.is_collection
    assert await store.names("new") == {}


async def test_delete_takes_a_file_or_a_whole_collection(store: Store) -> None:
    await store.mkcol("tree")
    await store.mkcol("tree/sub")
    await store.write("tree/sub/leaf.txt")
    await store.write("tree/top.txt")
    await store.write("other.txt")
    assert await store.op("delete", "tree/top.txt") == []
    assert await store.op("delete", "tree") == []
    assert sorted(await store.names("")) == ["other.txt"]
    assert await store.storage.stat("tree/sub/leaf.txt") is None


async def test_copy_makes_an_independent_copy_with_members_and_properties(store: Store) -> None:
    await store.mkcol("src")
    await store.write("src/a.txt", b"a")
    await store.set_props("src/a.txt", {PROP: PROP_XML})
    await store.set_props("src", {PROP: PROP_XML})
    await store.op("copy", "src", "deep", recursive=True)
    await store.op("copy", "src", "shallow", recursive=False)
    assert await store.snapshot("deep") == {
        "deep/a.txt": ("file", await store.etag("deep/a.txt"), b"a", {PROP: PROP_XML})
    }
    assert await store.names("shallow") == {}
    for path in ("deep", "shallow"):
        found = await store.storage.stat(path, dead_props=True)
        assert found is not None and dict(found.dead_props or {}) == {PROP: PROP_XML}
    await store.write("deep/a.txt", b"changed")
    assert await store.data("src/a.txt") == b"a"


async def test_move_takes_members_and_properties_along(store: Store) -> None:
    await store.mkcol("src")
    await store.write("src/a.txt", b"a")
    await store.set_props("src/a.txt", {PROP: PROP_XML})
    await store.set_props("src", {PROP: PROP_XML})
    before = await store.snapshot("src")
    await store.op("move", "src", "dst")
    assert await store.storage.stat("src") is None
    after = await store.snapshot("dst")
    assert {k.removeprefix("dst/"): v[2:] for k, v in after.items()} == {
        k.removeprefix("src/"): v[2:] for k, v in before.items()
    }
    found = await store.storage.stat("dst", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {PROP: PROP_XML}


@pytest.mark.parametrize("op", ["copy", "move"])
async def test_a_file_replaces_a_file_with_its_properties(store: Store, op: str) -> None:
    await store.write("from.txt", b"new")
    await store.set_props("from.txt", {PROP: PROP_XML})
    await store.write("to.txt", b"old")
    await store.set_props("to.txt", {"{urn:x-test:}old": b'<old xmlns="urn:x-test:"/>'})
    kwargs = {"recursive": True} if op == "copy" else {}
    async with store.storage.change(author=AUTHOR, message=op) as change:
        await getattr(change, op)("from.txt", "to.txt", **kwargs)
    found = await store.storage.stat("to.txt", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {PROP: PROP_XML}
    assert await store.data("to.txt") == b"new"
    assert (await store.storage.stat("from.txt") is None) == (op == "move")


@pytest.mark.parametrize("op", ["copy", "move"])
@pytest.mark.parametrize(
    ("src", "dst"),
    [("folder", "taken"), ("folder", "file.txt"), ("file.txt", "taken")],
    ids=["folder-onto-folder", "folder-onto-file", "file-onto-folder"],
)
async def test_anything_but_a_file_onto_a_file_needs_the_destination_free(
    store: Store, op: str, src: str, dst: str
) -> None:
    await store.mkcol("folder")
    await store.write("folder/in.txt")
    await store.mkcol("taken")
    await store.write("taken/mine.txt", b"mine")
    await store.write("file.txt")
    kwargs = {"recursive": True} if op == "copy" else {}

    async def attempt() -> None:
        async with store.storage.change(author=AUTHOR, message=op) as change:
            await getattr(change, op)(src, dst, **kwargs)

    await unchanged(store, attempt, AlreadyExists)


async def test_set_props_replaces_all_dead_properties(store: Store) -> None:
    await store.write("f.txt")
    other = "{urn:x-test:}size"
    other_xml = b'<size xmlns="urn:x-test:">10</size>'
    await store.set_props("f.txt", {PROP: PROP_XML, other: other_xml})
    await store.set_props("f.txt", {other: other_xml})
    found = await store.storage.stat("f.txt", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {other: other_xml}
    await store.set_props("f.txt", {})
    found = await store.storage.stat("f.txt", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {}


async def test_set_props_may_update_the_properties_there_at_the_write(store: Store) -> None:
    """A function of the properties there at the moment of the write (PROPPATCH): racing
    updates of different properties of one resource keep every one of them."""
    await store.write("f.txt")

    def adding(i: int) -> PropsUpdate:
        name, xml = f"{{urn:x-test:}}p{i}", b'<p%d xmlns="urn:x-test:"/>' % i
        return lambda current: {**current, name: xml}

    await asyncio.gather(*(store.set_props("f.txt", adding(i)) for i in range(20)))
    found = await store.storage.stat("f.txt", dead_props=True)
    assert found is not None
    assert set(found.dead_props or {}) == {f"{{urn:x-test:}}p{i}" for i in range(20)}


async def test_dead_properties_go_through_the_codec(store: Store) -> None:
    await store.mkcol("c")
    await store.write("c/f.txt")
    await store.set_props("c/f.txt", {PROP: PROP_XML})
    await store.set_props("c", {PROP: PROP_XML})
    assert store.codec.encoded == 2
    decoded = store.codec.decoded
    found = await store.storage.stat("c/f.txt", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {PROP: PROP_XML}
    members = await store.names("", dead_props=True)
    assert dict(members["c"].dead_props or {}) == {PROP: PROP_XML}
    assert store.codec.decoded > decoded


async def test_bookkeeping_never_shows_in_a_listing(store: Store) -> None:
    await store.mkcol("c")
    await store.mkcol("c/empty")
    await store.write("c/f.txt")
    await store.set_props("c/f.txt", {PROP: PROP_XML})
    await store.set_props("c", {PROP: PROP_XML})
    assert sorted(await store.names("c")) == ["empty", "f.txt"]
    assert await store.names("c/empty") == {}
    assert sorted(await store.names("")) == ["c"]


# -- errors ------------------------------------------------------------------------------


def change_of(
    store: Store, op: str, *args: object, **kwargs: object
) -> Callable[[], Awaitable[object]]:
    """An attempt at one operation in a change block of its own."""
    return lambda: store.op(op, *args, **kwargs)


ERRORS = [
    pytest.param("write", ("missing/a.txt", b"x"), {}, Conflict, id="write-no-parent"),
    pytest.param("write", ("file.txt/a.txt", b"x"), {}, Conflict, id="write-under-a-file"),
    pytest.param("write", ("folder", b"x"), {}, AlreadyExists, id="write-onto-a-collection"),
    pytest.param("mkcol", ("folder",), {}, AlreadyExists, id="mkcol-onto-a-collection"),
    pytest.param("mkcol", ("file.txt",), {}, AlreadyExists, id="mkcol-onto-a-file"),
    pytest.param("mkcol", ("missing/new",), {}, Conflict, id="mkcol-no-parent"),
    pytest.param("delete", ("missing",), {}, NotFound, id="delete-missing"),
    pytest.param("copy", ("missing", "new"), {"recursive": True}, NotFound, id="copy-missing"),
    pytest.param("copy", ("file.txt", "missing/new"), {"recursive": True}, Conflict,
                 id="copy-no-parent"),
    pytest.param("move", ("missing", "new"), {}, NotFound, id="move-missing"),
    pytest.param("move", ("file.txt", "missing/new"), {}, Conflict, id="move-no-parent"),
    pytest.param("set_props", ("missing", {PROP: PROP_XML}), {}, NotFound, id="props-missing"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "args", "kwargs", "error"), ERRORS)
async def test_errors(
    store: Store, op: str, args: tuple[object, ...], kwargs: dict[str, object], error: type
) -> None:
    await store.mkcol("folder")
    await store.write("folder/in.txt")
    await store.write("file.txt")
    await unchanged(store, change_of(store, op, *args, **kwargs), error)


LONG = "n" * (NAME_MAX + 1)
NAMES = [
    pytest.param("write", (LONG, b"x"), {}, id="write"),
    pytest.param("mkcol", (LONG,), {}, id="mkcol"),
    pytest.param("copy", ("file.txt", LONG), {"recursive": True}, id="copy"),
    pytest.param("move", ("file.txt", LONG), {}, id="move"),
]


@pytest.mark.parametrize(("op", "args", "kwargs"), NAMES)
async def test_a_name_over_name_max_bytes_is_refused(
    store: Store, op: str, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    await store.write("file.txt")
    await unchanged(store, change_of(store, op, *args, **kwargs), NameTooLong)
    assert await store.storage.stat(LONG) is None
    fits = "é" * (NAME_MAX // 2)  # 254 bytes of UTF-8
    await store.write(fits)
    assert await store.storage.stat(fits) is not None


@pytest.mark.parametrize("name", ["new\nline", "tab\there", "bell\x07", "del\x7f", "cr\r"])
@pytest.mark.parametrize(
    ("op", "kwargs"),
    [("write", {}), ("mkcol", {}), ("copy", {"recursive": True}), ("move", {})],
)
async def test_a_name_with_a_control_character_is_refused(
    store: Store, op: str, kwargs: dict[str, object], name: str
) -> None:
    await store.mkcol("folder")
    await store.write("file.txt")
    args: tuple[object, ...] = {
        "write": (f"folder/{name}", b"x"),
        "mkcol": (f"folder/{name}",),
        "copy": ("file.txt", f"folder/{name}"),
        "move": ("file.txt", f"folder/{name}"),
    }[op]
    await unchanged(store, change_of(store, op, *args, **kwargs), BadName)


async def test_every_error_is_a_storage_error_with_a_status() -> None:
    errors = [NotFound, Conflict, AlreadyExists, NameTooLong, BadName, PreconditionFailed]
    assert all(issubclass(e, StorageError) for e in errors)
    assert [e.status for e in errors] == [404, 409, 405, 403, 400, 412]


# -- preconditions -----------------------------------------------------------------------


class Seen:
    """A precondition that holds, noting what it was shown (the latest call: the git
    backend checks again when it replays a change on a newer head)."""

    def __init__(self) -> None:
        self.calls = 0
        self.shown: Resource | None = None

    def __call__(self, current: Resource | None) -> None:
        self.calls += 1
        self.shown = current


async def test_a_precondition_sees_what_the_write_replaces(store: Store) -> None:
    new, old = Seen(), Seen()
    await store.write("a.txt", b"one", expect=new)
    await store.write("a.txt", b"two", expect=old)
    assert new.calls and new.shown is None
    assert old.calls and old.shown is not None
    assert (old.shown.path, old.shown.size) == ("a.txt", 3)


@pytest.mark.parametrize("op", ["copy", "move"])
async def test_copy_and_move_check_the_source_and_the_destination(store: Store, op: str) -> None:
    await store.write("src.txt", b"source")
    await store.write("dst.txt", b"destination")
    src_etag, dst_etag = await store.etag("src.txt"), await store.etag("dst.txt")
    on_src, on_dst, on_free = Seen(), Seen(), Seen()
    kwargs = {"recursive": True} if op == "copy" else {}
    async with store.storage.change(author=AUTHOR, message=op) as change:
        await getattr(change, op)("src.txt", "dst.txt", expect=on_src, expect_dst=on_dst, **kwargs)
    assert on_src.shown is not None and on_src.shown.etag == src_etag
    assert on_dst.shown is not None and on_dst.shown.etag == dst_etag
    async with store.storage.change(author=AUTHOR, message=op) as change:
        await getattr(change, op)("dst.txt", "free.txt", expect_dst=on_free, **kwargs)
    assert on_free.calls and on_free.shown is None


async def test_delete_and_set_props_check_the_resource(store: Store) -> None:
    await store.write("a.txt", b"a")
    etag = await store.etag("a.txt")
    on_props, on_delete = Seen(), Seen()
    await store.set_props("a.txt", {PROP: PROP_XML}, expect=on_props)
    await store.op("delete", "a.txt", expect=on_delete)
    assert on_props.shown is not None and on_props.shown.path == "a.txt"
    assert on_delete.shown is not None and on_delete.shown.path == "a.txt"
    assert on_props.shown.etag == etag


PRECONDITIONS = [
    pytest.param("write", ("a.txt", b"new"), {"expect": refuse}, id="write"),
    pytest.param("write", ("new.txt", b"new"), {"expect": refuse}, id="write-new"),
    pytest.param("delete", ("a.txt",), {"expect": refuse}, id="delete"),
    pytest.param("delete", ("folder",), {"expect": refuse}, id="delete-collection"),
    pytest.param("set_props", ("a.txt", {PROP: PROP_XML}), {"expect": refuse}, id="props"),
    pytest.param("copy", ("a.txt", "b.txt"), {"recursive": True, "expect": refuse},
                 id="copy-source"),
    pytest.param("copy", ("a.txt", "b.txt"), {"recursive": True, "expect_dst": refuse},
                 id="copy-destination"),
    pytest.param("copy", ("folder", "new"), {"recursive": True, "expect_dst": refuse},
                 id="copy-free-destination"),
    pytest.param("move", ("a.txt", "b.txt"), {"expect": refuse}, id="move-source"),
    pytest.param("move", ("a.txt", "b.txt"), {"expect_dst": refuse}, id="move-destination"),
    pytest.param("move", ("folder", "new"), {"expect_dst": refuse}, id="move-free-destination"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "args", "kwargs"), PRECONDITIONS)
async def test_a_failed_precondition_changes_nothing(
    store: Store, op: str, args: tuple[object, ...], kwargs: dict[str, Precondition]
) -> None:
    await store.mkcol("folder")
    await store.write("folder/in.txt")
    await store.write("a.txt", b"a")
    await store.write("b.txt", b"b")
    await unchanged(store, change_of(store, op, *args, **kwargs), PreconditionFailed)


async def test_of_racing_conditional_writes_one_wins(store: Store) -> None:
    await store.write("race.txt", b"start")
    start = await store.etag("race.txt")

    def if_match(current: Resource | None) -> None:
        if current is None or current.etag != start:
            raise PreconditionFailed("moved on")

    async def attempt(i: int) -> bool:
        try:
            await store.write("race.txt", b"writer %d" % i, expect=if_match)
        except PreconditionFailed:
            return False
        return True

    store.heard.clear()
    won = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert won.count(True) == 1
    assert await store.data("race.txt") == b"writer %d" % won.index(True)
    assert store.kinds() == [("modified", "race.txt", None, False)]


# -- what the listener hears -------------------------------------------------------------


async def test_writes_are_heard_with_their_etags_author_and_note(store: Store) -> None:
    first = await store.write("a.txt", b"one", note="the note")
    (created,) = store.heard
    assert (created.kind, created.path, created.is_collection) == ("created", "a.txt", False)
    assert (created.old_etag, created.new_etag) == (None, first.etag)
    assert (created.author, created.note, created.outside, created.to) == (
        AUTHOR,
        "the note",
        False,
        None,
    )
    assert created.resource is None or created.resource.etag == first.etag
    store.heard.clear()
    second = await store.write("a.txt", b"two")
    (modified,) = store.heard
    assert (modified.kind, modified.old_etag, modified.new_etag) == (
        "modified",
        first.etag,
        second.etag,
    )
    assert modified.note is None


async def test_each_operation_is_heard_as_what_it_did(store: Store) -> None:
    await store.mkcol("c")
    assert store.kinds() == [("created", "c", None, True)]
    await store.write("c/a.txt")
    store.heard.clear()
    await store.set_props("c/a.txt", {PROP: PROP_XML}, note="props note")
    (props,) = store.heard
    assert (props.kind, props.path, props.note) == ("props", "c/a.txt", "props note")
    assert props.new_etag == await store.etag("c/a.txt")
    store.heard.clear()
    await store.op("copy", "c/a.txt", "c/b.txt", recursive=True)
    assert store.kinds() == [("created", "c/b.txt", None, False)]
    await store.op("move", "c/b.txt", "c/m.txt")
    (moved,) = store.heard
    assert (moved.kind, moved.path, moved.to) == ("moved", "c/b.txt", "c/m.txt")
    assert moved.new_etag == await store.etag("c/m.txt")
    store.heard.clear()
    await store.op("copy", "c", "d", recursive=True)
    assert store.kinds() == [("created", "d", None, True)]
    await store.op("move", "d", "e")
    assert store.kinds() == [("moved", "d", "e", True)]
    etag = await store.etag("e/a.txt")
    await store.op("delete", "e/a.txt")
    (deleted,) = store.heard
    assert (deleted.kind, deleted.path, deleted.old_etag) == ("deleted", "e/a.txt", etag)
    store.heard.clear()
    await store.op("delete", "e")
    assert store.kinds() == [("deleted", "e", None, True)]
    assert {c.author for c in store.heard} <= {AUTHOR}


@pytest.mark.parametrize("op", ["copy", "move"])
async def test_a_replaced_destination_is_heard_deleted_first(store: Store, op: str) -> None:
    await store.write("src.txt", b"new")
    await store.write("dst.txt", b"old")
    old = await store.etag("dst.txt")
    store.heard.clear()
    kwargs = {"recursive": True} if op == "copy" else {}
    async with store.storage.change(author=AUTHOR, message=op) as change:
        await getattr(change, op)("src.txt", "dst.txt", **kwargs)
    deleted, then = store.heard
    assert (deleted.kind, deleted.path, deleted.old_etag) == ("deleted", "dst.txt", old)
    if op == "copy":
        assert (then.kind, then.path) == ("created", "dst.txt")
    else:
        assert (then.kind, then.path, then.to) == ("moved", "src.txt", "dst.txt")
    assert then.new_etag == await store.etag("dst.txt")


async def test_several_operations_of_a_block_are_heard_in_order(store: Store) -> None:
    async with store.storage.change(author=AUTHOR, message="several") as change:
        await change.mkcol("c")
        await change.write("c/a.txt", b"a")
        await change.write("c/b.txt", b"b")
        await change.delete("c/a.txt")
    assert store.kinds() == [
        ("created", "c", None, True),
        ("created", "c/a.txt", None, False),
        ("created", "c/b.txt", None, False),
        ("deleted", "c/a.txt", None, False),
    ]


# -- what a file store offers besides (FileChange, Measured) -------------------------------


async def update(
    store: Store, path: str, offset: int | None, data: bytes, **kwargs: object
) -> Resource:
    """A ranged write in a change block of its own."""
    async with store.storage.change(author=AUTHOR, message="update") as change:
        assert isinstance(change, FileChange)
        resource, _ = await change.update(path, offset, data, len(data), **kwargs)  # type: ignore[arg-type]
    return resource


def streamed(data: bytes, piece: int = 3) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), piece):
            yield data[i : i + piece]

    return pieces()


@pytest.mark.parametrize(
    ("offset", "data", "expected"),
    [
        (None, b"XY", b"0123456789XY"),
        (10, b"XY", b"0123456789XY"),
        (0, b"XY", b"XY23456789"),
        (4, b"XY", b"0123XY6789"),
        (8, b"XYZW", b"01234567XYZW"),
        (-2, b"XY", b"01234567XY"),
        (-3, b"XYZW", b"0123456XYZW"),
    ],
    ids=["append", "at-end", "start", "middle", "past-end", "last-bytes", "from-end-longer"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["bytes", "streamed"])
async def test_update_writes_a_range_and_keeps_the_rest(
    store: Store, offset: int | None, data: bytes, expected: bytes, stream: bool
) -> None:
    await store.write("f.txt", b"0123456789")
    await store.set_props("f.txt", {PROP: PROP_XML})
    before = await store.etag("f.txt")
    store.heard.clear()
    async with store.storage.change(author=AUTHOR, message="update") as change:
        assert isinstance(change, FileChange)
        body = streamed(data) if stream else data
        res, created = await change.update("f.txt", offset, body, len(data))
    assert not created and res.size == len(expected)
    assert await store.data("f.txt") == expected
    assert res.etag == await store.etag("f.txt") != before
    found = await store.storage.stat("f.txt", dead_props=True)
    assert found is not None and dict(found.dead_props or {}) == {PROP: PROP_XML}
    assert store.kinds() == [("modified", "f.txt", None, False)]


async def test_update_makes_a_file_only_when_asked_and_from_the_start(store: Store) -> None:
    await unchanged(store, lambda: update(store, "new.txt", None, b"x"), NotFound)
    await unchanged(
        store, lambda: update(store, "new.txt", 3, b"x", create=True), RangeNotSatisfiable
    )
    res = await update(store, "new.txt", 0, b"hello", create=True)
    assert res.size == 5 and await store.data("new.txt") == b"hello"
    assert store.kinds()[-1] == ("created", "new.txt", None, False)


@pytest.mark.parametrize("offset", [11, 100, -11])
async def test_an_update_outside_the_file_changes_nothing(store: Store, offset: int) -> None:
    await store.write("f.txt", b"0123456789")
    await unchanged(store, lambda: update(store, "f.txt", offset, b"x"), RangeNotSatisfiable)
    with pytest.raises(RangeNotSatisfiable) as caught:
        await update(store, "f.txt", offset, b"x")
    assert (caught.value.status, caught.value.size) == (416, 10)


async def test_update_refusals_change_nothing(store: Store) -> None:
    await store.mkcol("folder")
    await store.write("f.txt", b"0123456789")
    await unchanged(store, lambda: update(store, "folder", 0, b"x"), AlreadyExists)
    await unchanged(store, lambda: update(store, "missing/f.txt", 0, b"x", create=True), Conflict)
    await unchanged(
        store, lambda: update(store, "f.txt", 2, b"x", expect=refuse), PreconditionFailed
    )

    async def short() -> None:
        async with store.storage.change(author=AUTHOR, message="short") as change:
            assert isinstance(change, FileChange)
            await change.update("f.txt", None, streamed(b"abc"), 5)

    await unchanged(store, short, ValueError)


async def test_update_sees_what_it_replaces(store: Store) -> None:
    first = await store.write("f.txt", b"0123")
    seen: list[str | None] = []
    await update(store, "f.txt", None, b"45", expect=lambda r: seen.append(r.etag if r else None))
    assert seen == [first.etag]


async def write_at(store: Store, path: str, data: bytes, mtime: float) -> Resource:
    async with store.storage.change(author=AUTHOR, message="write") as change:
        assert isinstance(change, FileChange)
        resource, _ = await change.write(path, data, mtime=mtime)
    return resource


@pytest.mark.parametrize("stream", [False, True], ids=["bytes", "streamed"])
async def test_a_write_may_set_the_modification_time(store: Store, stream: bool) -> None:
    async with store.storage.change(author=AUTHOR, message="write") as change:
        assert isinstance(change, FileChange)
        res, _ = await change.write(
            "old.txt", streamed(b"data") if stream else b"data", mtime=1_000_000_000.7
        )
    assert int(res.mtime) == 1_000_000_000
    found = await store.storage.stat("old.txt")
    assert found is not None and int(found.mtime) == 1_000_000_000
    listed = await store.names("")
    assert int(listed["old.txt"].mtime) == 1_000_000_000
    again = await store.write("old.txt", b"new bytes")  # a write without one: now
    assert again.mtime > 1_600_000_000


async def test_set_mtime_changes_the_time_and_nothing_else(store: Store) -> None:
    await store.write("f.txt", b"bytes")
    await store.set_props("f.txt", {PROP: PROP_XML})
    store.heard.clear()
    async with store.storage.change(author=AUTHOR, message="touch") as change:
        assert isinstance(change, FileChange)
        res = await change.set_mtime("f.txt", 1_234_567_890)
    assert int(res.mtime) == 1_234_567_890
    found = await store.storage.stat("f.txt", dead_props=True)
    assert found is not None and int(found.mtime) == 1_234_567_890
    assert dict(found.dead_props or {}) == {PROP: PROP_XML}
    assert await store.data("f.txt") == b"bytes"
    assert store.kinds() == [("props", "f.txt", None, False)]

    async def touch(path: str, **kwargs: object) -> None:
        async with store.storage.change(author=AUTHOR, message="touch") as change:
            assert isinstance(change, FileChange)
            await change.set_mtime(path, 5, **kwargs)  # type: ignore[arg-type]

    await unchanged(store, lambda: touch("missing.txt"), NotFound)
    await unchanged(store, lambda: touch("f.txt", expect=refuse), PreconditionFailed)


async def test_usage_counts_the_bytes_of_files_below_a_path(store: Store) -> None:
    storage = store.storage
    assert isinstance(storage, Measured)
    assert await storage.usage("") == 0
    await store.mkcol("a")
    await store.mkcol("a/b")
    await store.write("a/one.txt", b"x" * 10)
    await store.write("a/b/two.txt", b"y" * 100)
    await store.write("top.txt", b"z" * 1000)
    await store.set_props("a/one.txt", {PROP: PROP_XML})  # bookkeeping does not count
    assert await storage.usage("") == 1110
    assert await storage.usage("a") == 110
    assert await storage.usage("a/b/two.txt") == 100
    with pytest.raises(NotFound):
        await storage.usage("missing")


async def test_an_append_cut_by_a_crash_is_rolled_back_at_the_next_start(tmp_path: Path) -> None:
    """The filesystem backend appends in place: the undo record a killed writer leaves
    (registered, held by nobody) gives the file its old size back when the store opens."""
    import json
    import os

    from davserver.backends.temps import REGISTRY_DIR, UNDO_MAGIC

    storage = filesystem(tmp_path, PROPS_CODEC)
    await storage.open()
    store = Store(storage, CountingCodec())
    await store.write("f.txt", b"0123456789")
    await storage.close()
    root = tmp_path / "root"
    st = os.stat(root / "f.txt")
    with open(root / "f.txt", "ab") as f:
        f.write(b"half an append")
    record = {"name": "f.txt", "ino": st.st_ino, "size": st.st_size,
              "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns}  # fmt: skip
    (root / ".davtmp-dead-1").write_bytes(UNDO_MAGIC + json.dumps(record).encode())
    (root / REGISTRY_DIR).mkdir()
    (root / REGISTRY_DIR / ".davtmp-dead-1").symlink_to("../.davtmp-dead-1")
    storage = filesystem_again(tmp_path)
    await storage.open()
    try:
        assert (root / "f.txt").read_bytes() == b"0123456789"
        assert os.stat(root / "f.txt").st_mtime_ns == st.st_mtime_ns
        assert sorted(os.listdir(root)) == ["f.txt"]
    finally:
        await storage.close()


def filesystem_again(folder: Path) -> Storage:
    """The filesystem backend over the folder ``filesystem`` made before."""
    return FilesystemStorage(folder / "root", PROPS_CODEC)
