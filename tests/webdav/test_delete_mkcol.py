"""DELETE and MKCOL."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import MakeClient
from helpers import snapshot
from lxml import etree

PROPS_DIR = ".davprops"


async def set_dead_prop(client: TestClient, path: str) -> None:
    """Give ``path`` a dead property with PROPPATCH."""
    body = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example">'
        "<D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", path, data=body)
    assert resp.status == 207
    assert "200" in etree.fromstring(await resp.read()).findtext(".//{DAV:}status")


def fail_unlink_of(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make every ``os.unlink`` of a file called ``name`` fail, as a busy file would."""
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(os.fsdecode(path)) == name:
            raise PermissionError(errno.EACCES, "simulated failure", os.fsdecode(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)


# -- DELETE -------------------------------------------------------------------------------


async def test_delete_file_is_204(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"bye")
    (root / "keep.txt").write_bytes(b"stay")
    resp = await client.delete("/f.txt")
    assert resp.status == 204
    assert snapshot(root) == {"keep.txt": b"stay"}


async def test_delete_file_drops_its_dead_properties(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"bye")
    await set_dead_prop(client, "/f.txt")
    assert any((root / PROPS_DIR).iterdir())
    resp = await client.delete("/f.txt")
    assert resp.status == 204
    assert not (root / "f.txt").exists()
    assert list((root / PROPS_DIR).iterdir()) == []


async def test_delete_collection_removes_all_members(client: TestClient, root: Path) -> None:
    (root / "keep.txt").write_bytes(b"stay")
    (root / "dir" / "a" / "b").mkdir(parents=True)
    (root / "dir" / "top.txt").write_bytes(b"1")
    (root / "dir" / "a" / "mid.txt").write_bytes(b"2")
    (root / "dir" / "a" / "b" / "deep.txt").write_bytes(b"3")
    await set_dead_prop(client, "/dir/")
    await set_dead_prop(client, "/dir/a/mid.txt")
    assert (root / "dir" / PROPS_DIR).is_dir()
    assert (root / "dir" / "a" / PROPS_DIR).is_dir()
    resp = await client.delete("/dir/")
    assert resp.status == 204
    assert snapshot(root) == {"keep.txt": b"stay"}
    assert (await client.get("/dir/")).status == 404


async def test_delete_missing_is_404(client: TestClient, root: Path) -> None:
    (root / "other.txt").write_bytes(b"other")
    before = snapshot(root)
    resp = await client.delete("/missing.txt")
    assert resp.status == 404
    assert snapshot(root) == before


@pytest.mark.parametrize("depth", ["0", "1"])
async def test_delete_collection_with_finite_depth_is_400(
    client: TestClient, root: Path, depth: str
) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "f.txt").write_bytes(b"f")
    before = snapshot(root)
    resp = await client.delete("/dir/", headers={"Depth": depth})
    assert resp.status == 400
    assert snapshot(root) == before


async def test_delete_if_match_wrong_etag_is_412(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"f")
    before = snapshot(root)
    resp = await client.delete("/f.txt", headers={"If-Match": '"wrong"'})
    assert resp.status == 412
    assert snapshot(root) == before


async def test_delete_if_match_current_etag_is_204(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"f")
    etag = (await client.head("/f.txt")).headers["ETag"]
    resp = await client.delete("/f.txt", headers={"If-Match": etag})
    assert resp.status == 204
    assert not (root / "f.txt").exists()


@pytest.mark.parametrize(("mount", "target"), [("/", "/"), ("/files", "/files/")])
async def test_delete_mount_root_is_403(
    make_client: MakeClient, root: Path, mount: str, target: str
) -> None:
    client = await make_client(path=mount)
    (root / "f.txt").write_bytes(b"f")
    before = snapshot(root)
    resp = await client.delete(target)
    assert resp.status == 403
    assert snapshot(root) == before


async def test_delete_member_failure_is_207_naming_it(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "gone.txt").write_bytes(b"1")
    (root / "dir" / "sub" / "stuck file.txt").write_bytes(b"2")
    (root / "dir" / "sub" / "gone too.txt").write_bytes(b"3")
    fail_unlink_of(monkeypatch, "stuck file.txt")
    resp = await client.delete("/dir/")
    assert resp.status == 207
    tree = etree.fromstring(await resp.read())
    statuses = {
        r.findtext("{DAV:}href"): r.findtext("{DAV:}status") for r in tree.iter("{DAV:}response")
    }
    # Only the member itself: its ancestors failed because of it (RFC 4918 §9.6.1).
    assert statuses == {"/dir/sub/stuck%20file.txt": "HTTP/1.1 403 Forbidden"}
    # What could be deleted is gone; the failed member is still there.
    assert snapshot(root) == {
        "dir": None,
        "dir/sub": None,
        "dir/sub/stuck file.txt": b"2",
    }


# -- MKCOL --------------------------------------------------------------------------------


async def test_mkcol_creates_folder(client: TestClient, root: Path) -> None:
    resp = await client.request("MKCOL", "/new dir")
    assert resp.status == 201
    assert (root / "new dir").is_dir()
    assert list((root / "new dir").iterdir()) == []


async def test_mkcol_nested_in_existing_folder(client: TestClient, root: Path) -> None:
    (root / "parent").mkdir()
    resp = await client.request("MKCOL", "/parent/child/")
    assert resp.status == 201
    assert (root / "parent" / "child").is_dir()


async def test_mkcol_existing_folder_is_405(client: TestClient, root: Path) -> None:
    assert (await client.request("MKCOL", "/dir")).status == 201
    before = snapshot(root)
    resp = await client.request("MKCOL", "/dir")
    assert resp.status == 405
    assert snapshot(root) == before


async def test_mkcol_missing_parent_is_409(client: TestClient, root: Path) -> None:
    before = snapshot(root)
    resp = await client.request("MKCOL", "/no/such/parent/dir")
    assert resp.status == 409
    assert snapshot(root) == before


async def test_mkcol_on_existing_file_is_405(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"file")
    before = snapshot(root)
    resp = await client.request("MKCOL", "/f.txt")
    assert resp.status == 405
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/xml", b'<?xml version="1.0"?><D:mkcol xmlns:D="DAV:"/>'),
        ("text/plain", b"some text"),
    ],
    ids=["xml", "text"],
)
async def test_mkcol_with_body_is_415(
    client: TestClient, root: Path, content_type: str, body: bytes
) -> None:
    before = snapshot(root)
    resp = await client.request("MKCOL", "/dir", data=body, headers={"Content-Type": content_type})
    assert resp.status == 415
    assert snapshot(root) == before
