"""PUT: creating and replacing files, conditional and refused uploads, ETags."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from conftest import MakeClient
from helpers import snapshot
from lxml import etree
from yarl import URL

TEMP_PREFIX = ".davtmp-"


@pytest.fixture(autouse=True)
def no_temp_files_left(root: Path) -> Iterator[None]:
    """After every test here, no temporary upload file may be left anywhere in the store."""
    yield
    assert temp_files(root) == []


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """``data`` as an async generator, so the client sends it chunked."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def body_of(kind: str, data: bytes) -> bytes | AsyncIterator[bytes]:
    """``data`` sent as is, or chunked (the small/large split is decided by its length)."""
    return chunks(data, 65_536) if kind == "chunked" else data


BODY_KINDS = pytest.mark.parametrize(
    ("kind", "size"),
    [("plain", 100), ("plain", 1 << 20), ("chunked", 1 << 20)],
    ids=["small", "large", "chunked"],
)


def temp_files(root: Path) -> list[str]:
    """The temporary upload files anywhere below ``root``."""
    return [
        name
        for _dirpath, dirnames, filenames in os.walk(root)
        for name in dirnames + filenames
        if name.startswith(TEMP_PREFIX)
    ]


async def propfind_etag(client: TestClient, path: str) -> str:
    """The DAV:getetag a Depth: 0 PROPFIND reports for ``path``."""
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    resp = await client.request("PROPFIND", path, headers={"Depth": "0"}, data=body)
    assert resp.status == 207
    etag = etree.fromstring(await resp.read()).findtext(".//{DAV:}getetag")
    assert etag
    return etag


async def test_put_new_file_is_201_with_location(client: TestClient, root: Path) -> None:
    (root / "dir").mkdir()
    resp = await client.put("/dir/new file é.txt", data=b"fresh bytes")
    assert resp.status == 201
    location = URL(resp.headers["Location"])
    assert location.raw_path == "/dir/new%20file%20%C3%A9.txt"
    assert location.path == "/dir/new file é.txt"
    assert (root / "dir" / "new file é.txt").read_bytes() == b"fresh bytes"


async def test_put_location_under_mount_prefix(make_client: MakeClient, root: Path) -> None:
    client = await make_client(path="/files")
    resp = await client.put("/files/new.txt", data=b"new")
    assert resp.status == 201
    assert URL(resp.headers["Location"]).raw_path == "/files/new.txt"
    assert (root / "new.txt").read_bytes() == b"new"


async def test_put_existing_file_is_204(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"old content that is longer")
    resp = await client.put("/f.txt", data=b"new")
    assert resp.status == 204
    assert "Location" not in resp.headers
    assert (root / "f.txt").read_bytes() == b"new"


@BODY_KINDS
async def test_put_missing_parent_is_409(
    client: TestClient, root: Path, kind: str, size: int
) -> None:
    before = snapshot(root)
    resp = await client.put("/no/such/dir/f.txt", data=body_of(kind, os.urandom(size)))
    assert resp.status == 409
    assert snapshot(root) == before


async def test_put_parent_is_a_file_is_409(client: TestClient, root: Path) -> None:
    (root / "plain.txt").write_bytes(b"plain")
    before = snapshot(root)
    resp = await client.put("/plain.txt/f.txt", data=b"data")
    assert resp.status == 409
    assert snapshot(root) == before


async def test_put_to_collection_is_405(client: TestClient, root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "inside.txt").write_bytes(b"inside")
    before = snapshot(root)
    resp = await client.put("/dir", data=b"data")
    assert resp.status == 405
    assert snapshot(root) == before


async def test_put_chunked_body_is_stored_exactly(client: TestClient, root: Path) -> None:
    data = os.urandom(700_000)
    resp = await client.put("/chunked.bin", data=chunks(data, 65_537))
    assert resp.status == 201
    assert (root / "chunked.bin").read_bytes() == data


async def test_put_small_chunked_body_is_stored_exactly(client: TestClient, root: Path) -> None:
    data = b"a few chunks of text"
    resp = await client.put("/chunked.txt", data=chunks(data, 3))
    assert resp.status == 201
    assert (root / "chunked.txt").read_bytes() == data


async def test_put_large_body_is_stored_exactly(client: TestClient, root: Path) -> None:
    data = os.urandom(5 << 20)
    resp = await client.put("/large.bin", data=data)
    assert resp.status == 201
    assert (root / "large.bin").read_bytes() == data


async def test_put_empty_body_creates_empty_file(client: TestClient, root: Path) -> None:
    resp = await client.put("/empty.txt", data=b"")
    assert resp.status == 201
    assert (root / "empty.txt").read_bytes() == b""


async def test_put_if_match_current_etag_is_204(client: TestClient, root: Path) -> None:
    etag = (await client.put("/f.txt", data=b"v1")).headers["ETag"]
    resp = await client.put("/f.txt", data=b"v2", headers={"If-Match": etag})
    assert resp.status == 204
    assert (root / "f.txt").read_bytes() == b"v2"


@BODY_KINDS
async def test_put_if_match_wrong_etag_is_412(
    client: TestClient, root: Path, kind: str, size: int
) -> None:
    (root / "f.txt").write_bytes(b"old")
    before = snapshot(root)
    data = body_of(kind, os.urandom(size))
    resp = await client.put("/f.txt", data=data, headers={"If-Match": '"wrong"'})
    assert resp.status == 412
    assert snapshot(root) == before


async def test_put_if_match_on_missing_file_is_412(client: TestClient, root: Path) -> None:
    before = snapshot(root)
    resp = await client.put("/missing.txt", data=b"new", headers={"If-Match": "*"})
    assert resp.status == 412
    assert snapshot(root) == before


async def test_put_if_none_match_star_on_existing_is_412(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"old")
    before = snapshot(root)
    resp = await client.put("/f.txt", data=b"new", headers={"If-None-Match": "*"})
    assert resp.status == 412
    assert snapshot(root) == before


async def test_put_if_none_match_star_on_new_is_201(client: TestClient, root: Path) -> None:
    resp = await client.put("/f.txt", data=b"new", headers={"If-None-Match": "*"})
    assert resp.status == 201
    assert (root / "f.txt").read_bytes() == b"new"


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
async def test_put_chunked_shorter_than_expected_entity_length_is_400(
    client: TestClient, root: Path, existing: bool
) -> None:
    if existing:
        (root / "f.bin").write_bytes(b"old bytes")
    before = snapshot(root)
    data = os.urandom(10_000)
    resp = await client.put(
        "/f.bin", data=chunks(data), headers={"X-Expected-Entity-Length": str(len(data) + 1)}
    )
    assert resp.status == 400
    assert snapshot(root) == before


async def test_put_chunked_with_matching_expected_entity_length(
    client: TestClient, root: Path
) -> None:
    data = os.urandom(10_000)
    resp = await client.put(
        "/f.bin", data=chunks(data), headers={"X-Expected-Entity-Length": str(len(data))}
    )
    assert resp.status == 201
    assert (root / "f.bin").read_bytes() == data


async def test_put_etag_matches_get_and_propfind(client: TestClient) -> None:
    put_etag = (await client.put("/f.txt", data=b"some bytes")).headers["ETag"]
    get_resp = await client.get("/f.txt")
    assert await get_resp.read() == b"some bytes"
    assert get_resp.headers["ETag"] == put_etag
    assert await propfind_etag(client, "/f.txt") == put_etag


async def test_put_different_bytes_change_etag(client: TestClient) -> None:
    first = (await client.put("/f.txt", data=b"AAAA")).headers["ETag"]
    second = (await client.put("/f.txt", data=b"BBBB")).headers["ETag"]
    assert first != second
    assert (await client.head("/f.txt")).headers["ETag"] == second


async def test_put_aborted_by_client_leaves_old_bytes_and_no_temp_file(
    client: TestClient, root: Path
) -> None:
    (root / "f.bin").write_bytes(b"old")
    _reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"PUT /f.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n"
        + os.urandom(2 << 20)
    )
    await writer.drain()
    for _ in range(500):  # until the upload is under way in a temporary file
        if temp_files(root):
            break
        await asyncio.sleep(0.01)
    assert temp_files(root)
    writer.close()
    await writer.wait_closed()
    for _ in range(500):  # until the server has noticed and cleaned up
        if not temp_files(root):
            break
        await asyncio.sleep(0.01)
    assert snapshot(root) == {"f.bin": b"old"}


async def test_rapid_same_size_puts_all_get_distinct_etags(client: TestClient) -> None:
    etags = set()
    for i in range(50):
        resp = await client.put("/same.bin", data=b"%04d" % i)
        etags.add(resp.headers["ETag"])
    assert len(etags) == 50
