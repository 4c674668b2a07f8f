"""Partial updates over HTTP: SabreDAV's PATCH with X-Update-Range and Apache's PUT with
Content-Range, on both backends (one commit per update on git)."""

from __future__ import annotations

import pytest
from drive_support import Drive

PATCH_TYPE = {"Content-Type": "application/x-sabredav-partialupdate"}


async def put(drive: Drive, path: str, data: bytes) -> str:
    resp = await drive.client.put(path, data=data)
    assert resp.status in (201, 204)
    return resp.headers["ETag"]


async def test_options_advertise_partial_updates(drive: Drive) -> None:
    resp = await drive.client.options("/")
    assert "sabredav-partialupdate" in resp.headers["DAV"]
    assert "PATCH" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("update_range", "data", "expected"),
    [
        ("bytes=3-6", b"ABCD", b"012ABCD789"),
        ("bytes=8-11", b"ABCD", b"01234567ABCD"),
        ("bytes=4-", b"XY", b"0123XY6789"),
        ("bytes=-2", b"XY", b"01234567XY"),
        ("append", b"XY", b"0123456789XY"),
        ("bytes=10-11", b"XY", b"0123456789XY"),
    ],
)
async def test_patch_writes_the_range(
    drive: Drive, update_range: str, data: bytes, expected: bytes
) -> None:
    old = await put(drive, "/f.bin", b"0123456789")
    before = drive.commits()
    resp = await drive.client.patch(
        "/f.bin", data=data, headers={**PATCH_TYPE, "X-Update-Range": update_range}
    )
    assert resp.status == 204
    assert resp.headers["ETag"] != old
    got = await drive.client.get("/f.bin")
    assert await got.read() == expected
    assert got.headers["ETag"] == resp.headers["ETag"]
    assert drive.file("f.bin") == expected
    if drive.backend == "git":
        assert drive.commits() == before + 1


@pytest.mark.parametrize(
    ("headers", "data", "status"),
    [
        ({**PATCH_TYPE, "X-Update-Range": "bytes=11-12"}, b"XY", 416),
        ({**PATCH_TYPE, "X-Update-Range": "bytes=-11"}, b"X" * 11, 416),
        ({**PATCH_TYPE, "X-Update-Range": "bytes=2-5"}, b"XY", 416),
        ({**PATCH_TYPE, "X-Update-Range": "bytes=-3"}, b"XY", 416),
        ({**PATCH_TYPE, "X-Update-Range": "lines=1-2"}, b"XY", 400),
        ({**PATCH_TYPE, "X-Update-Range": "bytes=-"}, b"XY", 400),
        (PATCH_TYPE, b"XY", 400),
        ({"Content-Type": "text/plain", "X-Update-Range": "append"}, b"XY", 415),
        ({**PATCH_TYPE, "X-Update-Range": "append", "If-Match": '"nope"'}, b"XY", 412),
    ],
    ids=["past-end", "before-start", "length", "suffix-length", "unit", "empty", "no-range",
         "type", "if-match"],
)  # fmt: skip
async def test_a_refused_patch_changes_nothing(
    drive: Drive, headers: dict[str, str], data: bytes, status: int
) -> None:
    await put(drive, "/f.bin", b"0123456789")
    before = drive.stored()
    resp = await drive.client.patch("/f.bin", data=data, headers=headers)
    assert resp.status == status
    if (status == 416 and "past" in str(headers)) or (resp.status == 416 and "11" in str(headers)):
        assert resp.headers.get("Content-Range") in (None, "bytes */10")
    assert drive.stored() == before


async def test_416_tells_the_size(drive: Drive) -> None:
    await put(drive, "/f.bin", b"0123456789")
    resp = await drive.client.patch(
        "/f.bin", data=b"XY", headers={**PATCH_TYPE, "X-Update-Range": "bytes=11-12"}
    )
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */10"


async def test_patch_of_nothing_or_a_collection_is_refused(drive: Drive) -> None:
    await drive.client.request("MKCOL", "/dir")
    before = drive.stored()
    headers = {**PATCH_TYPE, "X-Update-Range": "append"}
    assert (await drive.client.patch("/missing.bin", data=b"x", headers=headers)).status == 404
    assert (await drive.client.patch("/dir", data=b"x", headers=headers)).status == 405
    assert drive.stored() == before


async def test_patch_honours_locks(drive: Drive) -> None:
    await put(drive, "/f.bin", b"0123456789")
    body = (
        '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    lock = await drive.client.request("LOCK", "/f.bin", data=body)
    token = lock.headers["Lock-Token"]
    before = drive.stored()
    headers = {**PATCH_TYPE, "X-Update-Range": "append"}
    assert (await drive.client.patch("/f.bin", data=b"x", headers=headers)).status == 423
    assert drive.stored() == before
    resp = await drive.client.patch("/f.bin", data=b"x", headers={**headers, "If": f"({token})"})
    assert resp.status == 204


async def test_appends_build_a_big_file_piece_by_piece(drive: Drive) -> None:
    """The way a resumable upload goes: PUT an empty file, then append, checking the size
    with HEAD to resume."""
    data = bytes(range(256)) * 4096  # 1 MiB
    await put(drive, "/big.bin", b"")
    piece = 300_000
    at = 0
    while at < len(data):
        head = await drive.client.head("/big.bin")
        assert int(head.headers.get("Content-Length", "0")) == at
        resp = await drive.client.patch(
            "/big.bin",
            data=data[at : at + piece],
            headers={
                **PATCH_TYPE,
                "X-Update-Range": f"bytes={at}-{min(len(data), at + piece) - 1}",
            },
        )
        assert resp.status == 204
        at += piece
    assert await (await drive.client.get("/big.bin")).read() == data


@pytest.mark.parametrize(
    ("content_range", "data", "expected", "status"),
    [
        ("bytes 2-3/10", b"ab", b"01ab456789", 204),
        ("bytes 8-11/*", b"abcd", b"01234567abcd", 204),
        ("bytes 10-11/12", b"ab", b"0123456789ab", 204),
    ],
)
async def test_put_with_content_range_writes_the_range(
    drive: Drive, content_range: str, data: bytes, expected: bytes, status: int
) -> None:
    await put(drive, "/f.txt", b"0123456789")
    resp = await drive.client.put("/f.txt", data=data, headers={"Content-Range": content_range})
    assert resp.status == status
    assert await (await drive.client.get("/f.txt")).read() == expected
    assert drive.file("f.txt") == expected


async def test_put_with_content_range_makes_a_new_file_from_zero(drive: Drive) -> None:
    resp = await drive.client.put("/n.txt", data=b"ab", headers={"Content-Range": "bytes 0-1/4"})
    assert resp.status == 201
    assert drive.file("n.txt") == b"ab"
    before = drive.stored()
    resp = await drive.client.put("/m.txt", data=b"ab", headers={"Content-Range": "bytes 2-3/4"})
    assert resp.status == 416
    assert drive.stored() == before


@pytest.mark.parametrize(
    ("content_range", "data", "status"),
    [
        ("bytes 11-12/20", b"ab", 416),
        ("bytes 2-4/10", b"ab", 400),
        ("bytes 2-3/3", b"ab", 400),
        ("bytes=2-3", b"ab", 400),
        ("bytes 3-2/10", b"", 400),
    ],
)
async def test_a_refused_partial_put_changes_nothing(
    drive: Drive, content_range: str, data: bytes, status: int
) -> None:
    await put(drive, "/f.txt", b"0123456789")
    before = drive.stored()
    resp = await drive.client.put("/f.txt", data=data, headers={"Content-Range": content_range})
    assert resp.status == status
    assert drive.stored() == before
