"""Modification times and checksums as sync tools use them (rclone's ``vendor =
nextcloud`` / ``owncloud``, Windows Explorer), on both backends."""

from __future__ import annotations

import hashlib
import re
import shutil
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from drive_support import Drive
from gitrepo import git

OC = 'xmlns:oc="http://owncloud.org/ns"'
PROPFIND_OC = (
    f'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" {OC}><d:prop><d:getlastmodified/>'
    "<d:getcontentlength/><oc:checksums/></d:prop></d:propfind>"
)


async def propfind(drive: Drive, path: str, depth: str = "0") -> str:
    resp = await drive.client.request("PROPFIND", path, data=PROPFIND_OC, headers={"Depth": depth})
    assert resp.status == 207
    return await resp.text()


def modified(xml: str) -> int:
    found = re.search(r"<D:getlastmodified>([^<]+)</D:getlastmodified>", xml)
    assert found is not None, xml
    return int(parsedate_to_datetime(found[1]).timestamp())


def sums_of(data: bytes) -> str:
    return f"SHA1:{hashlib.sha1(data).hexdigest()} MD5:{hashlib.md5(data).hexdigest()}"


async def test_x_oc_mtime_sets_the_modification_time(drive: Drive) -> None:
    resp = await drive.client.put("/a.txt", data=b"hello", headers={"X-OC-Mtime": "1500000000"})
    assert resp.status == 201
    assert resp.headers["X-OC-MTime"] == "accepted"
    assert resp.headers["Last-Modified"] == "Fri, 14 Jul 2017 02:40:00 GMT"
    assert modified(await propfind(drive, "/a.txt")) == 1500000000
    get = await drive.client.get("/a.txt")
    assert get.headers["Last-Modified"] == "Fri, 14 Jul 2017 02:40:00 GMT"
    listing = await propfind(drive, "/", "1")
    assert "Fri, 14 Jul 2017 02:40:00 GMT" in listing


async def test_on_git_the_time_is_in_the_commit(
    make_git_client: Any, repo: Path, tmp_path: Path
) -> None:
    """A trailer of the commit: an index rebuilt from the history (another server
    process, a lost state folder) still knows it."""
    first = await make_git_client()
    await first.put("/a.txt", data=b"hello", headers={"X-OC-Mtime": "1500000000"})
    assert "Davserver-Mtime: 1500000000" in git(repo, "log", "-1", "--format=%B")
    shutil.rmtree(tmp_path / "state" / "git", ignore_errors=True)
    second = await make_git_client()
    resp = await second.request("PROPFIND", "/a.txt", data=PROPFIND_OC, headers={"Depth": "0"})
    assert modified(await resp.text()) == 1500000000


@pytest.mark.parametrize("value", ["yesterday", "-5", "1e30", ""])
async def test_a_bad_x_oc_mtime_is_400_and_stores_nothing(drive: Drive, value: str) -> None:
    before = drive.stored()
    resp = await drive.client.put("/a.txt", data=b"hello", headers={"X-OC-Mtime": value})
    assert resp.status == 400
    assert drive.stored() == before


async def test_win32_last_modified_time_sets_the_time_and_is_kept(drive: Drive) -> None:
    await drive.client.put("/doc.txt", data=b"words")
    body = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
        'xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
        "<Z:Win32CreationTime>Mon, 01 Jan 2018 10:00:00 GMT</Z:Win32CreationTime>"
        "<Z:Win32LastModifiedTime>Tue, 02 Jan 2018 10:00:00 GMT</Z:Win32LastModifiedTime>"
        "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    before = drive.commits()
    resp = await drive.client.request("PROPPATCH", "/doc.txt", data=body)
    assert resp.status == 207
    text = await resp.text()
    assert text.count("200 OK") == 1 and "403" not in text and "424" not in text
    assert modified(await propfind(drive, "/doc.txt")) == 1514887200
    props = await drive.client.request("PROPFIND", "/doc.txt", headers={"Depth": "0"})
    assert (
        "Tue, 02 Jan 2018 10:00:00 GMT</Z:Win32LastModifiedTime>"
        in (await props.text()).replace("ns0:", "Z:")
        or "Win32LastModifiedTime" in await props.text()
    )
    if drive.backend == "git":
        assert drive.commits() == before + 1


async def test_proppatch_of_lastmodified_sets_the_time_only(drive: Drive) -> None:
    """ownCloud's way (rclone's propset_mtime): DAV:lastmodified in seconds, with the
    checksums the client knows; neither is kept as a property."""
    await drive.client.put("/a.txt", data=b"abc")
    body = (
        f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" {OC}><D:set><D:prop>'
        "<lastmodified xmlns='DAV:'>1234567890</lastmodified>"
        "<oc:checksums><oc:checksum>SHA1:00</oc:checksum></oc:checksums>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    resp = await drive.client.request("PROPPATCH", "/a.txt", data=body)
    assert resp.status == 207 and "403" not in await resp.text()
    xml = await propfind(drive, "/a.txt")
    assert modified(xml) == 1234567890
    assert sums_of(b"abc") in xml
    allprop = await (
        await drive.client.request("PROPFIND", "/a.txt", headers={"Depth": "0"})
    ).text()
    assert "lastmodified>1234567890" not in allprop


async def test_checksums_are_listed_for_rclone(drive: Drive) -> None:
    await drive.client.put("/a.txt", data=b"abc")
    await drive.client.request("MKCOL", "/dir")
    await drive.client.put("/dir/b.bin", data=b"\x00" * 100_000)
    xml = await propfind(drive, "/", "1")
    assert sums_of(b"abc") in xml
    assert f"<oc:checksums {OC}><oc:checksum>{sums_of(b'abc')}</oc:checksum></oc:checksums>" in xml
    inner = await propfind(drive, "/dir/", "1")
    assert sums_of(b"\x00" * 100_000) in inner


async def test_an_oc_checksum_is_checked_before_anything_is_stored(drive: Drive) -> None:
    data = b"the bytes" * 50_000  # streamed, not read whole
    good = hashlib.sha1(data).hexdigest()
    before = drive.stored()
    bad = await drive.client.put("/f.bin", data=data, headers={"OC-Checksum": "SHA1:" + "0" * 40})
    assert bad.status == 400
    assert drive.stored() == before
    small = await drive.client.put("/s.txt", data=b"x", headers={"OC-Checksum": "MD5:" + "0" * 32})
    assert small.status == 400
    assert drive.stored() == before
    ok = await drive.client.put("/f.bin", data=data, headers={"OC-Checksum": "SHA1:" + good})
    assert ok.status == 201
    assert ok.headers["OC-Checksum"] == "SHA1:" + good
    assert sums_of(data) in await propfind(drive, "/f.bin")


@pytest.mark.parametrize("value", ["CRC32:1234", "SHA1:xyz", "SHA1", "MD5:" + "0" * 31])
async def test_a_malformed_oc_checksum_is_400(drive: Drive, value: str) -> None:
    before = drive.stored()
    resp = await drive.client.put("/f.txt", data=b"x", headers={"OC-Checksum": value})
    assert resp.status == 400
    assert drive.stored() == before


async def test_recalculate_hash_answers_the_checksum(drive: Drive) -> None:
    await drive.client.put("/a.txt", data=b"abc")
    resp = await drive.client.patch("/a.txt", headers={"X-Recalculate-Hash": "sha1"})
    assert resp.status == 204
    assert resp.headers["OC-Checksum"] == "SHA1:" + hashlib.sha1(b"abc").hexdigest()


async def test_a_file_is_hashed_once(drive: Drive, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checksums of a version are computed once and kept; a new version gets its own."""
    from davserver.dav import checksums

    calls: list[int] = []
    real = checksums._hash_body

    async def counting(body: object) -> dict[str, str]:
        calls.append(1)
        return await real(body)  # type: ignore[arg-type]

    monkeypatch.setattr(checksums, "_hash_body", counting)
    await drive.client.put("/a.txt", data=b"abc")
    for _ in range(3):
        assert sums_of(b"abc") in await propfind(drive, "/", "1")
    assert len(calls) == 1
    await drive.client.put("/a.txt", data=b"abcd")
    assert sums_of(b"abcd") in await propfind(drive, "/a.txt")
    assert len(calls) == 2
