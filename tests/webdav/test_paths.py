"""Paths: nothing outside the root is read or written, whatever the URL says."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


LOCKINFO = (
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype></D:lockinfo>"
)
PROPPATCH = (
    b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set>'
    b"</D:propertyupdate>"
)
# Every method that names a resource by its URL, with a body it would accept.
METHODS = (
    ("GET", b""), ("PUT", b"overwritten"), ("MKCOL", b""), ("DELETE", b""), ("PROPFIND", b""),
    ("PROPPATCH", PROPPATCH), ("LOCK", LOCKINFO), ("COPY", b""), ("MOVE", b""),
)  # fmt: skip


@pytest.mark.parametrize(
    "target",
    ["/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/a/%2E%2E/%2e%2e/outside/secret.txt",
     "/./secret.txt", "/..%2foutside/secret.txt", "/%c0%ae%c0%ae/outside/secret.txt"],
)  # fmt: skip
async def test_dot_segments_are_refused(
    client: TestClient, root: Path, outside: Path, target: str
) -> None:
    """By every method (the overlong UTF-8 of "." is no UTF-8 at all)."""
    before = snapshot(root.parent)
    for method, body in METHODS:
        headers = {"Depth": "0", "Destination": "/copy.txt"}
        status, answer = await raw(client, method, target, headers=headers, body=body)
        assert status in (400, 403), method
        assert b"TOP SECRET" not in answer
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


@pytest.mark.parametrize(
    ("dest", "status"),
    [("/../outside/stolen.txt", 403), ("/%2e%2e/outside/stolen.txt", 403),
     ("/sub/%2e%2e/%2E%2E/outside/stolen.txt", 403), ("/..%2foutside/stolen.txt", 400),
     ("/stolen%00.txt", 400), ("/%ff.txt", 400),
     # Raw bytes that are not UTF-8 (sent as they are: a header is not percent-encoded).
     ("/\xff.txt", 400), ("/%c3\xa9.txt", 400),
     # No URL at all: an IPv6 host without its closing bracket.
     ("http://[::1/stolen.txt", 400)],
)  # fmt: skip
async def test_destination_that_is_no_safe_path_is_refused(
    client: TestClient, root: Path, outside: Path, dest: str, status: int
) -> None:
    (root / "f.txt").write_text("data")
    (root / "sub").mkdir()
    before = snapshot(root.parent)
    for method in ("COPY", "MOVE"):
        got, _ = await raw(client, method, "/f.txt", headers={"Destination": dest})
        assert got == status, (method, dest)
    assert snapshot(root.parent) == before


async def test_an_if_header_tag_that_is_no_url_is_a_list_that_fails(
    client: TestClient, root: Path
) -> None:
    """A tagged list names a resource by URL; one that is no URL, or not here, never holds."""
    (root / "f.txt").write_text("data")
    for tag in ("http://[::1/f.txt", "/%2e%2e/f.txt", "/\xff"):
        header = f"<{tag}> (Not <DAV:no-lock>)"
        assert (await raw(client, "GET", "/f.txt", headers={"If": header}))[0] == 412
        assert (await raw(client, "PUT", "/f.txt", headers={"If": header}, body=b"x"))[0] == 412
    assert (root / "f.txt").read_text() == "data"


LONG_NAME = "n" * 300  # over the 255 bytes a Linux file name can have
LONG_PATH = "/".join(["p" * 200] * 25)  # 5,000 bytes: over PATH_MAX (4,096)


@pytest.mark.parametrize("name", [LONG_NAME, LONG_PATH], ids=["300-byte-name", "5000-byte-path"])
async def test_names_too_long_for_the_filesystem_are_4xx(
    client: TestClient, root: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As a URL, a Destination, or the resource tag of an If header: a client error, never
    500, and nothing made."""
    (root / "f.txt").write_text("data")
    (root / "dir").mkdir()
    before = snapshot(root)
    for method, body in METHODS:
        headers = {"Depth": "0", "Destination": "/copy.txt"}
        status, _ = await raw(client, method, f"/{name}", headers=headers, body=body)
        assert 400 <= status < 500, (method, status)
    for method in ("COPY", "MOVE"):
        for source in ("/f.txt", "/dir/"):
            status, _ = await raw(client, method, source, headers={"Destination": f"/{name}"})
            assert 400 <= status < 500, (method, source, status)
    status, _ = await raw(client, "GET", "/f.txt", headers={"If": f"</{name}> (<DAV:no-lock>)"})
    assert status == 412
    assert snapshot(root) == before
    assert "Traceback" not in caplog.text


async def test_non_ascii_names_round_trip(client: TestClient, root: Path) -> None:
    assert (await client.request("MKCOL", "/a%20b/")).status == 201
    assert (await client.put("/a%20b/%C3%BC%20%E2%82%AC.txt", data=b"euro")).status == 201
    assert (root / "a b" / "ü €.txt").read_bytes() == b"euro"
    resp = await client.request("PROPFIND", "/a%20b/", headers={"Depth": "1"})
    text = await resp.text()
    assert "/a%20b/%C3%BC%20%E2%82%AC.txt" in text
    assert await (await client.get("/a%20b/%C3%BC%20%E2%82%AC.txt")).read() == b"euro"


@pytest.mark.parametrize("name", [LONG_NAME, LONG_PATH], ids=["300-byte-name", "5000-byte-path"])
async def test_long_names_in_a_git_tree_are_never_a_500(
    make_git_client: Any, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A git tree has no name limit of its own: whatever it answers, it is no 500."""
    client = await make_git_client()
    assert (await client.put("/f.txt", data=b"data")).status == 201
    for method, body in METHODS:
        headers = {"Depth": "0", "Destination": "/copy.txt"}
        status, _ = await raw(client, method, f"/{name}", headers=headers, body=body)
        assert status < 500, (method, status)
    for method in ("COPY", "MOVE"):
        status, _ = await raw(client, method, "/f.txt", headers={"Destination": f"/{name}"})
        assert status < 500, (method, status)
    assert "Traceback" not in caplog.text
