"""Quotas (RFC 4331) per mount and per user tree, on both backends: writes that would
pass a limit are 507 with nothing stored; the figures are kept in the shared state and
follow changes made behind the server's back within quota_rescan."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from drive_support import Drive, make_drive

QUOTA_PROPS = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/>'
    "<D:quota-available-bytes/></D:prop></D:propfind>"
)
PATCH_TYPE = {"Content-Type": "application/x-sabredav-partialupdate"}


@pytest.fixture(params=["filesystem", "git"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start(backend: str, make_client: Any, make_git_client: Any, root: Path, repo: Path) -> Any:
    async def make(**options: Any) -> Drive:
        return await make_drive(backend, make_client, make_git_client, root, repo, **options)

    return make


async def figures(drive: Drive, path: str = "/") -> tuple[int, int]:
    resp = await drive.client.request("PROPFIND", path, data=QUOTA_PROPS, headers={"Depth": "0"})
    text = await resp.text()
    used = re.search(r"<D:quota-used-bytes>(\d+)<", text)
    available = re.search(r"<D:quota-available-bytes>(\d+)<", text)
    assert used and available, text
    return int(used[1]), int(available[1])


async def test_a_put_past_the_mount_quota_is_507_and_stores_nothing(start: Any) -> None:
    drive = await start(quota="1000")
    assert (await drive.client.put("/a.bin", data=b"x" * 600)).status == 201
    assert await figures(drive) == (600, 400)
    before = drive.stored()
    resp = await drive.client.put("/b.bin", data=b"y" * 500)
    assert resp.status == 507
    assert "quota-not-exceeded" in await resp.text()
    assert drive.stored() == before
    # Replacing a file counts only what it adds.
    assert (await drive.client.put("/a.bin", data=b"z" * 900)).status == 204
    assert await figures(drive) == (900, 100)


async def test_a_chunked_upload_past_the_quota_stores_nothing(start: Any) -> None:
    drive = await start(quota="100 KiB")

    async def chunks() -> Any:
        for _ in range(30):
            yield b"c" * 10_000

    before = drive.stored()
    resp = await drive.client.put("/big.bin", data=chunks())
    assert resp.status == 507
    assert drive.stored() == before
    assert await figures(drive) == (0, 102400)


async def test_user_quotas_with_overrides(start: Any) -> None:
    drive = await start(user_quota="1 KiB", user_quotas={"ann": "4 KiB"})
    for name in ("ann", "bob"):
        assert (await drive.client.request("MKCOL", f"/{name}")).status == 201
    assert (await drive.client.put("/ann/f.bin", data=b"a" * 3000)).status == 201
    before = drive.stored()
    assert (await drive.client.put("/bob/f.bin", data=b"b" * 2000)).status == 507
    assert drive.stored() == before
    assert await figures(drive, "/ann/") == (3000, 4096 - 3000)
    assert await figures(drive, "/bob/") == (0, 1024)
    # A copy into bob's tree is charged there; within ann's it is charged to ann.
    before = drive.stored()
    copy = await drive.client.request("COPY", "/ann/f.bin", headers={"Destination": "/bob/f.bin"})
    assert copy.status == 507
    assert drive.stored() == before
    copy = await drive.client.request("COPY", "/ann/f.bin", headers={"Destination": "/ann/g.bin"})
    assert copy.status == 507
    assert drive.stored() == before


async def test_delete_and_move_give_room_back(start: Any) -> None:
    drive = await start(user_quota="10 KiB")
    await drive.client.request("MKCOL", "/ann")
    await drive.client.request("MKCOL", "/bob")
    await drive.client.request("MKCOL", "/ann/dir")
    await drive.client.put("/ann/dir/a.bin", data=b"a" * 4000)
    await drive.client.put("/ann/b.bin", data=b"b" * 1000)
    assert (await figures(drive, "/ann/"))[0] == 5000
    move = await drive.client.request("MOVE", "/ann/b.bin", headers={"Destination": "/bob/b.bin"})
    assert move.status == 201
    assert (await figures(drive, "/ann/"))[0] == 4000
    assert (await figures(drive, "/bob/"))[0] == 1000
    assert (await drive.client.delete("/ann/dir")).status == 204
    assert (await figures(drive, "/ann/"))[0] == 0


async def test_a_patch_past_the_quota_is_507(start: Any) -> None:
    drive = await start(quota="100")
    await drive.client.put("/f.bin", data=b"0" * 90)
    before = drive.stored()
    resp = await drive.client.patch(
        "/f.bin", data=b"x" * 20, headers={**PATCH_TYPE, "X-Update-Range": "append"}
    )
    assert resp.status == 507
    assert drive.stored() == before
    inside = await drive.client.patch(
        "/f.bin", data=b"x" * 20, headers={**PATCH_TYPE, "X-Update-Range": "bytes=0-19"}
    )
    assert inside.status == 204


async def test_racing_uploads_cannot_both_pass(start: Any) -> None:
    drive = await start(quota="1000")
    results = await asyncio.gather(
        *(drive.client.put(f"/r{i}.bin", data=b"r" * 400) for i in range(5))
    )
    assert sorted(r.status for r in results) == [201, 201, 507, 507, 507]
    assert (await figures(drive))[0] == 800


async def test_outside_changes_are_counted_after_the_rescan(start: Any, backend: str) -> None:
    if backend == "git":
        drive = await start(quota="1 MiB", quota_rescan=0.2)
        await drive.client.put("/a.bin", data=b"a" * 100)
        assert (await figures(drive))[0] == 100
        await drive.client.put("/b.bin", data=b"b" * 50)
        await asyncio.sleep(0.3)
        assert (await figures(drive))[0] == 150
        return
    drive = await start(quota="1 MiB", quota_rescan=0.2)
    await drive.client.put("/a.bin", data=b"a" * 100)
    assert (await figures(drive))[0] == 100
    (drive.root / "outside.bin").write_bytes(b"o" * 5000)
    await asyncio.sleep(0.3)
    assert (await figures(drive))[0] == 5100


async def test_without_a_quota_the_disk_is_reported(start: Any) -> None:
    drive = await start()
    used, available = await figures(drive)
    assert used > 0 and available > 0
