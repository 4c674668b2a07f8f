"""COPY and MOVE (RFC 4918 §9.8, §9.9): files and collections, Overwrite and Depth,
dead properties, the Destination header, and refusals that leave the disk untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from helpers import snapshot
from lxml import etree

PROP = "{urn:z}note"


def dav(local: str) -> str:
    """The Clark name of a DAV: element."""
    return "{DAV:}" + local


async def transfer(
    client: TestClient, method: str, src: str, dst: str | None, **headers: str
) -> ClientResponse:
    """Send COPY or MOVE; ``dst`` is a path on the test server made into an absolute URL,
    or (when it has a scheme or is None) sent as it is."""
    if dst is not None:
        headers["Destination"] = dst if "://" in dst else str(client.make_url(dst))
    return await client.request(method, src, headers=headers)


async def set_note(client: TestClient, path: str, value: str) -> None:
    """Store the dead property ``{urn:z}note`` with PROPPATCH."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set>'
        f'<D:prop><Z:note xmlns:Z="urn:z">{value}</Z:note></D:prop></D:set></D:propertyupdate>'
    )
    resp = await client.request("PROPPATCH", path, data=body.encode())
    assert resp.status == 207, await resp.text()


async def note(client: TestClient, path: str) -> str | None:
    """The value of ``{urn:z}note`` on ``path``, None when it has none."""
    body = b'<D:propfind xmlns:D="DAV:"><D:prop><Z:note xmlns:Z="urn:z"/></D:prop></D:propfind>'
    resp = await client.request("PROPFIND", path, data=body, headers={"Depth": "0"})
    data = await resp.read()
    assert resp.status == 207, data
    for ps in etree.fromstring(data).iter(dav("propstat")):
        el = ps.find(f"{dav('prop')}/{PROP}")
        if el is not None:
            return el.text if "200" in ps.findtext(dav("status")) else None
    raise AssertionError("the note is missing from the PROPFIND answer")


def make_tree(root: Path) -> None:
    """``/src/`` with a file, and a subfolder with another file."""
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_bytes(b"a")
    (root / "src" / "sub" / "b.txt").write_bytes(b"b")


BOTH = pytest.mark.parametrize("method", ["COPY", "MOVE"])


# -- files ------------------------------------------------------------------------------


async def test_copy_file_creates_the_destination_and_keeps_the_source(
    client: TestClient, root: Path
) -> None:
    (root / "a.txt").write_bytes(b"payload")
    resp = await transfer(client, "COPY", "/a.txt", "/b.txt")
    assert resp.status == 201
    assert (root / "b.txt").read_bytes() == b"payload"
    assert (root / "a.txt").read_bytes() == b"payload"


@BOTH
@pytest.mark.parametrize("overwrite", [None, "T"], ids=["default", "T"])
async def test_onto_an_existing_file_with_overwrite_t_is_204(
    client: TestClient, root: Path, method: str, overwrite: str | None
) -> None:
    (root / "a.txt").write_bytes(b"new")
    (root / "b.txt").write_bytes(b"old old old")
    headers = {"Overwrite": overwrite} if overwrite else {}
    resp = await transfer(client, method, "/a.txt", "/b.txt", **headers)
    assert resp.status == 204
    assert (root / "b.txt").read_bytes() == b"new"
    assert (root / "a.txt").exists() == (method == "COPY")


@BOTH
async def test_onto_an_existing_file_with_overwrite_f_is_412(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"new")
    (root / "b.txt").write_bytes(b"old")
    before = snapshot(root)
    resp = await transfer(client, method, "/a.txt", "/b.txt", Overwrite="F")
    assert resp.status == 412
    assert snapshot(root) == before


@BOTH
@pytest.mark.parametrize("target_exists", [True, False], ids=["target", "no-target"])
@pytest.mark.parametrize("value", ["yes", "TF", "0"])
async def test_an_invalid_overwrite_header_is_400(
    client: TestClient, root: Path, method: str, target_exists: bool, value: str
) -> None:
    (root / "a.txt").write_bytes(b"new")
    if target_exists:
        (root / "b.txt").write_bytes(b"old")
    before = snapshot(root)
    resp = await transfer(client, method, "/a.txt", "/b.txt", Overwrite=value)
    assert resp.status == 400
    assert snapshot(root) == before


async def test_overwrite_replaces_a_collection_with_a_file(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"file")
    (root / "dir").mkdir()
    (root / "dir" / "old.txt").write_bytes(b"old")
    resp = await transfer(client, "COPY", "/a.txt", "/dir")
    assert resp.status == 204
    assert (root / "dir").read_bytes() == b"file"


async def test_move_file_creates_the_destination_and_removes_the_source(
    client: TestClient, root: Path
) -> None:
    (root / "a.txt").write_bytes(b"payload")
    resp = await transfer(client, "MOVE", "/a.txt", "/b.txt")
    assert resp.status == 201
    assert (root / "b.txt").read_bytes() == b"payload"
    assert not (root / "a.txt").exists()
    assert (await client.get("/a.txt")).status == 404


# -- collections ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [None, "infinity"], ids=["default", "infinity"])
async def test_copy_collection_with_depth_infinity_copies_the_members(
    client: TestClient, root: Path, depth: str | None
) -> None:
    make_tree(root)
    headers = {"Depth": depth} if depth else {}
    resp = await transfer(client, "COPY", "/src/", "/dst/", **headers)
    assert resp.status == 201
    assert (root / "dst" / "a.txt").read_bytes() == b"a"
    assert (root / "dst" / "sub" / "b.txt").read_bytes() == b"b"
    assert (root / "src" / "sub" / "b.txt").read_bytes() == b"b"


async def test_copy_collection_with_depth_0_copies_only_the_collection(
    client: TestClient, root: Path
) -> None:
    make_tree(root)
    await set_note(client, "/src/", "folder note")
    await set_note(client, "/src/a.txt", "member note")
    resp = await transfer(client, "COPY", "/src/", "/dst/", Depth="0")
    assert resp.status == 201
    assert (root / "dst").is_dir()
    listing = await client.request("PROPFIND", "/dst/", headers={"Depth": "1"})
    hrefs = [h.text for h in etree.fromstring(await listing.read()).iter(dav("href"))]
    assert hrefs == ["/dst/"]
    assert await note(client, "/dst/") == "folder note"
    assert await note(client, "/src/") == "folder note"
    assert (root / "src" / "sub" / "b.txt").exists()


@pytest.mark.parametrize("depth", ["1", "2", "zero"])
async def test_copy_collection_with_another_depth_is_400(
    client: TestClient, root: Path, depth: str
) -> None:
    make_tree(root)
    before = snapshot(root)
    resp = await transfer(client, "COPY", "/src/", "/dst/", Depth=depth)
    assert resp.status == 400
    assert snapshot(root) == before


@pytest.mark.parametrize("depth", [None, "infinity"], ids=["default", "infinity"])
async def test_move_collection_moves_the_members(
    client: TestClient, root: Path, depth: str | None
) -> None:
    make_tree(root)
    headers = {"Depth": depth} if depth else {}
    resp = await transfer(client, "MOVE", "/src/", "/dst/", **headers)
    assert resp.status == 201
    assert not (root / "src").exists()
    assert (root / "dst" / "a.txt").read_bytes() == b"a"
    assert (root / "dst" / "sub" / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize("depth", ["0", "1"])
async def test_move_collection_with_finite_depth_is_400(
    client: TestClient, root: Path, depth: str
) -> None:
    make_tree(root)
    before = snapshot(root)
    resp = await transfer(client, "MOVE", "/src/", "/dst/", Depth=depth)
    assert resp.status == 400
    assert snapshot(root) == before


@BOTH
async def test_onto_an_existing_collection_replaces_it(
    client: TestClient, root: Path, method: str
) -> None:
    make_tree(root)
    (root / "dst" / "stale").mkdir(parents=True)
    (root / "dst" / "stale" / "old.txt").write_bytes(b"old")
    resp = await transfer(client, method, "/src/", "/dst/")
    assert resp.status == 204
    assert not (root / "dst" / "stale").exists()
    assert (root / "dst" / "sub" / "b.txt").read_bytes() == b"b"


# -- dead properties --------------------------------------------------------------------


async def test_copy_file_copies_its_dead_properties(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    await set_note(client, "/a.txt", "hello")
    assert (await transfer(client, "COPY", "/a.txt", "/b.txt")).status == 201
    assert await note(client, "/b.txt") == "hello"
    assert await note(client, "/a.txt") == "hello"


async def test_copy_collection_copies_its_and_its_members_dead_properties(
    client: TestClient, root: Path
) -> None:
    make_tree(root)
    await set_note(client, "/src/", "folder")
    await set_note(client, "/src/a.txt", "file")
    await set_note(client, "/src/sub/", "subfolder")
    await set_note(client, "/src/sub/b.txt", "deep")
    assert (await transfer(client, "COPY", "/src/", "/dst/")).status == 201
    for prefix in ("/src", "/dst"):
        assert await note(client, f"{prefix}/") == "folder"
        assert await note(client, f"{prefix}/a.txt") == "file"
        assert await note(client, f"{prefix}/sub/") == "subfolder"
        assert await note(client, f"{prefix}/sub/b.txt") == "deep"


async def test_move_file_takes_its_dead_properties_along(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "dir").mkdir()
    await set_note(client, "/a.txt", "travels")
    assert (await transfer(client, "MOVE", "/a.txt", "/dir/b.txt")).status == 201
    assert await note(client, "/dir/b.txt") == "travels"
    assert not any(path.endswith("m.a.txt") for path in snapshot(root))


async def test_move_collection_takes_its_and_its_members_dead_properties_along(
    client: TestClient, root: Path
) -> None:
    make_tree(root)
    await set_note(client, "/src/", "folder")
    await set_note(client, "/src/sub/b.txt", "deep")
    assert (await transfer(client, "MOVE", "/src/", "/dst/")).status == 201
    assert await note(client, "/dst/") == "folder"
    assert await note(client, "/dst/sub/b.txt") == "deep"
    assert (await client.request("MKCOL", "/src/")).status == 201
    assert await note(client, "/src/") is None


async def test_a_file_created_at_the_old_name_after_move_has_no_dead_properties(
    client: TestClient, root: Path
) -> None:
    (root / "a.txt").write_bytes(b"a")
    await set_note(client, "/a.txt", "moved away")
    assert (await transfer(client, "MOVE", "/a.txt", "/b.txt")).status == 201
    assert (await client.put("/a.txt", data=b"fresh")).status == 201
    assert await note(client, "/a.txt") is None
    assert await note(client, "/b.txt") == "moved away"


@BOTH
async def test_overwrite_replaces_the_destinations_dead_properties(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "b.txt").write_bytes(b"b")
    (root / "c.txt").write_bytes(b"c")
    await set_note(client, "/b.txt", "stale")
    await set_note(client, "/c.txt", "from c")
    assert (await transfer(client, method, "/a.txt", "/b.txt")).status == 204
    assert await note(client, "/b.txt") is None
    assert (await transfer(client, method, "/c.txt", "/b.txt")).status == 204
    assert await note(client, "/b.txt") == "from c"


# -- refusals ----------------------------------------------------------------------------


@BOTH
async def test_a_missing_destination_parent_is_409(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    make_tree(root)
    before = snapshot(root)
    for src in ("/a.txt", "/src/"):
        resp = await transfer(client, method, src, "/no/such/dst")
        assert resp.status == 409
    resp = await transfer(client, method, "/src/", "/a.txt/inside")  # parent is a file
    assert resp.status == 409
    assert snapshot(root) == before


@BOTH
@pytest.mark.parametrize(("src", "dst"), [("/a.txt", "/a.txt"), ("/src/", "/src/")])
async def test_source_equal_to_destination_is_403(
    client: TestClient, root: Path, method: str, src: str, dst: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    make_tree(root)
    before = snapshot(root)
    resp = await transfer(client, method, src, dst)
    assert resp.status == 403
    assert snapshot(root) == before


@BOTH
@pytest.mark.parametrize("dst", ["/src/inner/", "/src/sub/deeper/"])
async def test_a_destination_inside_the_source_is_409(
    client: TestClient, root: Path, method: str, dst: str
) -> None:
    make_tree(root)
    before = snapshot(root)
    resp = await transfer(client, method, "/src/", dst)
    assert resp.status == 409
    assert snapshot(root) == before


@BOTH
@pytest.mark.parametrize(("src", "dst"), [("/src/sub/", "/src/"), ("/src/sub/b.txt", "/src/")])
async def test_a_destination_that_contains_the_source_is_409(
    client: TestClient, root: Path, method: str, src: str, dst: str
) -> None:
    # Overwriting would delete the destination and the source in it.
    make_tree(root)
    before = snapshot(root)
    resp = await transfer(client, method, src, dst)
    assert resp.status == 409
    assert snapshot(root) == before


async def test_a_destination_with_a_sibling_prefix_is_not_inside_the_source(
    client: TestClient, root: Path
) -> None:
    make_tree(root)
    resp = await transfer(client, "COPY", "/src/", "/src-copy/")
    assert resp.status == 201
    assert (root / "src-copy" / "sub" / "b.txt").read_bytes() == b"b"


@BOTH
async def test_a_missing_source_is_404(client: TestClient, root: Path, method: str) -> None:
    before = snapshot(root)
    resp = await transfer(client, method, "/nope.txt", "/b.txt")
    assert resp.status == 404
    assert snapshot(root) == before


@BOTH
async def test_a_missing_destination_header_is_400(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    before = snapshot(root)
    resp = await transfer(client, method, "/a.txt", None)
    assert resp.status == 400
    assert snapshot(root) == before


@BOTH
@pytest.mark.parametrize(
    "dst", ["http://other.example/x", "https://other.example/a.txt", "ftp://127.0.0.1/x"]
)
async def test_a_destination_on_another_server_is_502(
    client: TestClient, root: Path, method: str, dst: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    before = snapshot(root)
    resp = await transfer(client, method, "/a.txt", dst)
    assert resp.status == 502
    assert snapshot(root) == before


@BOTH
async def test_a_destination_given_as_an_absolute_path_works(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    resp = await client.request(method, "/a.txt", headers={"Destination": "/b.txt"})
    assert resp.status == 201
    assert (root / "b.txt").read_bytes() == b"a"


@BOTH
@pytest.mark.parametrize("absolute", [False, True], ids=["path", "url"])
async def test_a_destination_outside_the_mount_prefix_is_502(
    make_client: Any, root: Path, method: str, absolute: bool
) -> None:
    client = await make_client(path="/files")
    (root / "a.txt").write_bytes(b"a")
    before = snapshot(root)
    for dst in ("/elsewhere/x", "/filesx/a.txt", "/"):
        header = str(client.make_url(dst)) if absolute else dst
        resp = await client.request(method, "/files/a.txt", headers={"Destination": header})
        assert resp.status == 502, dst
    assert snapshot(root) == before


async def test_a_destination_inside_the_mount_prefix_works(make_client: Any, root: Path) -> None:
    client = await make_client(path="/files")
    (root / "a.txt").write_bytes(b"a")
    resp = await client.request("COPY", "/files/a.txt", headers={"Destination": "/files/b.txt"})
    assert resp.status == 201
    assert (root / "b.txt").read_bytes() == b"a"


@BOTH
async def test_non_ascii_destination_lands_with_the_decoded_name(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "d ir").mkdir()
    resp = await client.request(
        method, "/a.txt", headers={"Destination": "/d%20ir/%C3%BC%20%E2%82%AC%23%3F.txt"}
    )
    assert resp.status == 201
    assert (root / "d ir" / "ü €#?.txt").read_bytes() == b"a"


@BOTH
@pytest.mark.parametrize("dst", ["/.davprops/x", "/x/../a.txt", "/%2e%2e/x", "/.davtmp-x"])
async def test_a_destination_with_a_forbidden_segment_is_refused(
    client: TestClient, root: Path, method: str, dst: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "x").mkdir()
    before = snapshot(root)
    resp = await client.request(method, "/a.txt", headers={"Destination": dst})
    assert resp.status in (400, 403)
    assert snapshot(root) == before


@BOTH
async def test_the_mount_root_cannot_be_moved_or_copied_into_itself(
    client: TestClient, root: Path, method: str
) -> None:
    (root / "a.txt").write_bytes(b"a")
    before = snapshot(root)
    resp = await transfer(client, method, "/", "/copy/")
    assert resp.status in (403, 409)
    assert snapshot(root) == before
