"""Paths: nothing outside the root is read or written, whatever the URL says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from helpers import raw_request, snapshot


async def raw(client: TestClient, method: str, target: str, **kw: object) -> tuple[int, bytes]:
    status, _headers, body = await raw_request(
        client.server.host,
        client.server.port,
        method,
        target,
        **kw,  # type: ignore[arg-type]
    )
    return status, body


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root holding a secret the server must never show."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("TOP SECRET")
    return folder


@pytest.mark.parametrize(
    "target",
    ["/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/a/%2E%2E/%2e%2e/outside/secret.txt",
     "/./secret.txt", "/..%2foutside/secret.txt"],
)  # fmt: skip
async def test_dot_segments_are_refused(
    client: TestClient, root: Path, outside: Path, target: str
) -> None:
    before = snapshot(root.parent)
    status, body = await raw(client, "GET", target)
    assert status in (400, 403)
    assert b"TOP SECRET" not in body
    status, _ = await raw(client, "PUT", target, body=b"overwritten")
    assert status in (400, 403)
    assert snapshot(root.parent) == before


@pytest.mark.parametrize(
    ("target", "status"),
    [("/a%00b", 400), ("/a%2Fb", 400), ("/%ff%fe", 400), ("/x#frag", 400),
     ("/.davprops", 403), ("/.davprops/self", 403), ("/sub/.davprops/m.x", 403), ("/.davtmp-1234", 403)],
)  # fmt: skip
async def test_unsafe_or_reserved_names_are_refused(
    client: TestClient, root: Path, target: str, status: int
) -> None:
    (root / "sub").mkdir()
    await client.request(
        "PROPPATCH",
        "/sub/",
        data=b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set></D:propertyupdate>',
    )
    before = snapshot(root)
    for method in ("GET", "PUT", "MKCOL", "DELETE", "PROPFIND"):
        got, _ = await raw(client, method, target, headers={"Depth": "0"})
        assert got == status, (method, target)
    assert snapshot(root) == before


async def test_symlink_out_of_the_root_is_neither_read_nor_written(
    client: TestClient, root: Path, outside: Path
) -> None:
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.txt", root / "secret-link.txt")
    before = snapshot(outside)
    for target in ("/escape/secret.txt", "/secret-link.txt", "/escape/"):
        resp = await client.get(target)
        assert resp.status == 403
        assert "TOP SECRET" not in await resp.text()
    assert (await client.put("/escape/new.txt", data=b"x")).status == 403
    assert (await client.put("/secret-link.txt", data=b"x")).status == 403
    assert (await client.request("MKCOL", "/escape/dir")).status == 403
    assert (await client.delete("/escape/secret.txt")).status == 403
    resp = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    listing = await resp.text()
    assert "escape" not in listing and "secret-link" not in listing
    assert snapshot(outside) == before


async def test_symlink_inside_the_root_works(client: TestClient, root: Path) -> None:
    (root / "real").mkdir()
    (root / "real" / "f.txt").write_text("inside")
    os.symlink(root / "real", root / "alias")
    resp = await client.get("/alias/f.txt")
    assert resp.status == 200
    assert await resp.text() == "inside"


async def test_destination_with_dot_segments_is_refused(
    client: TestClient, root: Path, outside: Path
) -> None:
    (root / "f.txt").write_text("data")
    before = snapshot(root.parent)
    for dest in ("/../outside/stolen.txt", "/%2e%2e/outside/stolen.txt"):
        for method in ("COPY", "MOVE"):
            status, _ = await raw(client, method, "/f.txt", headers={"Destination": dest})
            assert status == 403, (method, dest)
    assert snapshot(root.parent) == before


async def test_non_ascii_names_round_trip(client: TestClient, root: Path) -> None:
    assert (await client.request("MKCOL", "/a%20b/")).status == 201
    assert (await client.put("/a%20b/%C3%BC%20%E2%82%AC.txt", data=b"euro")).status == 201
    assert (root / "a b" / "ü €.txt").read_bytes() == b"euro"
    resp = await client.request("PROPFIND", "/a%20b/", headers={"Depth": "1"})
    text = await resp.text()
    assert "/a%20b/%C3%BC%20%E2%82%AC.txt" in text
    assert await (await client.get("/a%20b/%C3%BC%20%E2%82%AC.txt")).read() == b"euro"
