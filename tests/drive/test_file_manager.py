"""The web file manager over HTTP, on both backends: the page, its assets, resumable
uploads in pieces, the ZIP of a folder, the history page (compare, restore), and the
rules against cross-site requests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from drive_support import Drive
from gitrepo import messages

from davserver.config import AccessConfig

PIECE = {"Content-Type": "application/x-sabredav-partialupdate"}


def rows(page: str) -> list[str]:
    tree = lxml.html.fromstring(page)
    return [a.text_content() for a in tree.xpath('//table[@id="listing"]//a[@class="entry"]')]


async def test_the_page_lists_sorts_and_filters_without_javascript(drive: Drive) -> None:
    await drive.client.request("MKCOL", "/b-dir")
    for name, size in (("a.txt", 300), ("c.png", 10), ("big.zip", 5000)):
        await drive.client.put(f"/{name}", data=b"x" * size)
    page = await (await drive.client.get("/")).text()
    assert rows(page) == ["b-dir/", "a.txt", "big.zip", "c.png"]
    assert "4.9 KiB" in page and "300 B" in page
    assert 'icons.svg#image"' in page and 'icons.svg#archive"' in page
    by_size = await (await drive.client.get("/?sort=size&order=desc")).text()
    assert rows(by_size) == ["b-dir/", "big.zip", "a.txt", "c.png"]
    filtered = await (await drive.client.get("/?filter=A.T")).text()
    assert rows(filtered) == ["a.txt"]
    assert '<script src="/?ui=app.js" defer>' in page
    assert ("?history" in page) == (drive.backend == "git")


async def test_the_page_carries_its_protections(drive: Drive) -> None:
    resp = await drive.client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("name", "kind"), [("app.js", "text/javascript"),
                                            ("app.css", "text/css"),
                                            ("icons.svg", "image/svg+xml")])  # fmt: skip
async def test_assets_come_from_the_package(drive: Drive, name: str, kind: str) -> None:
    resp = await drive.client.get(f"/?ui={name}")
    assert resp.status == 200 and resp.content_type == kind
    assert len(await resp.read()) > 500
    again = await drive.client.get(f"/?ui={name}", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    assert (await drive.client.get("/?ui=../../etc/passwd")).status == 404


async def test_a_read_only_user_gets_no_write_controls(make_client: Any, root: Path) -> None:
    client = await make_client(access=AccessConfig(anonymous="read-only"))
    page = await (await client.get("/")).text()
    assert 'data-writable="0"' in page
    client2 = await make_client()
    assert 'data-writable="1"' in await (await client2.get("/")).text()


async def test_a_resumable_upload_cut_and_resumed(drive: Drive) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MB
    url = "/big.bin?upload=abcdef0123456789"
    length = {"X-Upload-Length": str(len(data))}
    first = await drive.client.patch(
        url, data=data[:1_000_000], headers={**PIECE, **length, "X-Update-Range": "bytes=0-999999"}
    )
    assert first.status == 202 and first.headers["X-Upload-Offset"] == "1000000"
    before = drive.stored()
    status = await drive.client.head(url)
    assert status.status == 200 and status.headers["X-Upload-Offset"] == "1000000"
    # A piece from the wrong place is refused with where to go on.
    wrong = await drive.client.patch(
        url, data=b"x" * 10, headers={**PIECE, **length, "X-Update-Range": "bytes=5-14"}
    )
    assert wrong.status == 416 and wrong.headers["X-Upload-Offset"] == "1000000"
    assert drive.stored() == before  # nothing appears before the last piece
    assert (await drive.client.get("/big.bin")).status == 404
    commits = drive.commits()
    last = await drive.client.patch(
        url, data=data[1_000_000:],
        headers={**PIECE, **length, "X-Update-Range": f"bytes=1000000-{len(data) - 1}"},
    )  # fmt: skip
    assert last.status == 201
    assert await (await drive.client.get("/big.bin")).read() == data
    assert last.headers["ETag"] == (await drive.client.head("/big.bin")).headers["ETag"]
    if drive.backend == "git":
        assert drive.commits() == commits + 1
        assert messages(drive.repo)[-1] == "PUT /big.bin"
    assert (await drive.client.head(url)).status == 404  # the upload is done with


async def test_an_upload_is_its_users_alone_and_can_be_abandoned(drive: Drive) -> None:
    url = "/f.bin?upload=abandon-me-please"
    headers = {**PIECE, "X-Upload-Length": "100", "X-Update-Range": "bytes=0-9"}
    assert (await drive.client.patch(url, data=b"0" * 10, headers=headers)).status == 202
    assert (await drive.client.patch(url, data=b"0" * 10,
            headers={**headers, "X-Upload-Length": "50", "X-Update-Range": "bytes=10-19"})
            ).status == 409  # fmt: skip
    assert (await drive.client.delete(url)).status == 204
    assert (await drive.client.head(url)).status == 404
    assert (
        await drive.client.patch("/f.bin?upload=bad id", data=b"x", headers=headers)
    ).status == 400


async def test_the_last_piece_honours_conditions_and_locks(drive: Drive) -> None:
    await drive.client.put("/f.bin", data=b"old")
    url = "/f.bin?upload=conditional-1"
    one = {**PIECE, "X-Upload-Length": "6", "X-Update-Range": "bytes=0-5"}
    before = drive.stored()
    refused = await drive.client.patch(url, data=b"newbie", headers={**one, "If-None-Match": "*"})
    assert refused.status == 412
    assert drive.stored() == before


async def test_a_folder_as_a_zip(drive: Drive) -> None:
    await drive.client.request("MKCOL", "/docs")
    await drive.client.request("MKCOL", "/docs/sub")
    await drive.client.put("/docs/a.txt", data=b"alpha")
    await drive.client.put("/docs/sub/b.bin", data=bytes(range(256)) * 5000)
    resp = await drive.client.get("/docs/?zip")
    assert resp.status == 200 and resp.content_type == "application/zip"
    assert "docs.zip" in resp.headers["Content-Disposition"]
    assert "Content-Length" not in resp.headers  # streamed as it is made
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.testzip() is None
    assert archive.read("a.txt") == b"alpha"
    assert archive.read("sub/b.bin") == bytes(range(256)) * 5000
    assert "sub/" in archive.namelist()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_writes_from_another_site_are_refused(drive: Drive, headers: dict[str, str]) -> None:
    await drive.client.put("/f.txt", data=b"mine")
    before = drive.stored()
    for method, path, extra in (
        ("PUT", "/f.txt", {}), ("DELETE", "/f.txt", {}), ("MKCOL", "/new", {}),
        ("MOVE", "/f.txt", {"Destination": "/g.txt"}),
        ("POST", "/f.txt?restore=" + "0" * 40, {"X-Davserver-UI": "1"}),
    ):  # fmt: skip
        resp = await drive.client.request(method, path, data=b"evil", headers={**headers, **extra})
        assert resp.status == 403, (method, headers)
    assert drive.stored() == before
    # The same requests from the page itself go through.
    own = f"http://{drive.client.host}:{drive.client.port}"
    ok = await drive.client.put(
        "/f.txt", data=b"ok", headers={"Origin": own, "Sec-Fetch-Site": "same-origin"}
    )
    assert ok.status == 204


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_post_needs_the_ui_header(drive: Drive, content_type: str | None) -> None:
    """A POST that a form, or another origin without a preflight, could send."""
    await drive.client.put("/f.txt", data=b"one")
    before = drive.stored()
    resp = await drive.client.post(
        "/f.txt?restore=" + "0" * 40,
        data=b"x=1",
        headers={"Content-Type": content_type} if content_type else {},
        skip_auto_headers=() if content_type else ("Content-Type",),
    )
    assert resp.status == 403
    assert drive.stored() == before


async def test_history_compare_restore_and_renames(git_client: Any, repo: Path) -> None:
    client = git_client
    await client.put("/notes.txt", data=b"line one\nline two\n")
    await client.put("/notes.txt", data=b"line one\nline 2\nline three\n")
    moved = await client.request("MOVE", "/notes.txt", headers={"Destination": "/renamed.txt"})
    assert moved.status == 201
    await client.put("/renamed.txt", data=b"latest\n")
    history = await (await client.get("/renamed.txt?history=json")).json()
    versions = history["versions"]
    assert [v["message"] for v in versions] == [
        "PUT /renamed.txt", "MOVE /notes.txt -> /renamed.txt", "PUT /notes.txt", "PUT /notes.txt",
    ]  # fmt: skip
    oldest = versions[-1]
    assert oldest["href"] == f"/notes.txt?version={oldest['version']}"  # read where it was
    assert await (await client.get(oldest["href"])).read() == b"line one\nline two\n"
    page = await (await client.get("/renamed.txt?history")).text()
    assert "(was notes.txt)" in page and "data-restore" in page
    diff = await (
        await client.get(
            f"/renamed.txt?history&from={versions[-1]['version']}&to={versions[-2]['version']}"
        )
    ).text()
    assert '<span class="del">-line two</span>' in diff
    assert '<span class="add">+line 2</span>' in diff
    before = len(messages(repo))
    restored = await client.post(
        f"/renamed.txt?restore={oldest['version']}", headers={"X-Davserver-UI": "1"}
    )
    assert restored.status == 204
    assert await (await client.get("/renamed.txt")).read() == b"line one\nline two\n"
    assert len(messages(repo)) == before + 1
    assert messages(repo)[-1] == f"RESTORE /renamed.txt to {oldest['version'][:12]}"


async def test_restore_honours_locks(git_client: Any, repo: Path) -> None:
    await git_client.put("/f.txt", data=b"one")
    await git_client.put("/f.txt", data=b"two")
    first = (await (await git_client.get("/f.txt?history=json")).json())["versions"][-1]
    body = (
        '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    assert (await git_client.request("LOCK", "/f.txt", data=body)).status == 200
    before = messages(repo)
    resp = await git_client.post(
        f"/f.txt?restore={first['version']}", headers={"X-Davserver-UI": "1"}
    )
    assert resp.status == 423
    assert messages(repo) == before
