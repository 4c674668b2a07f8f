"""OPTIONS, GET and HEAD: headers, ranges, conditional requests and collection listings."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import lxml.html
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from conftest import MakeClient
from lxml import etree

SMALL_SIZE = 1000  # served from memory
LARGE_SIZE = 300 << 10  # above the 64 KiB inline limit: served by sendfile
DAV_METHODS = (
    "OPTIONS",
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
)


@pytest.fixture(params=[SMALL_SIZE, LARGE_SIZE], ids=["small", "large"])
def stored(request: pytest.FixtureRequest, root: Path) -> bytes:
    """Random bytes stored as ``/data.bin``, once small (inline) and once large (sendfile)."""
    data = os.urandom(request.param)
    (root / "data.bin").write_bytes(data)
    return data


async def put(client: TestClient, path: str, data: bytes) -> ClientResponse:
    """PUT ``data`` to ``path`` and check it was stored."""
    resp = await client.put(path, data=data)
    assert resp.status in (201, 204), await resp.text()
    return resp


async def propfind_etag(client: TestClient, path: str) -> str:
    """The DAV:getetag a Depth: 0 PROPFIND reports for ``path``."""
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    )
    resp = await client.request("PROPFIND", path, headers={"Depth": "0"}, data=body)
    assert resp.status == 207
    tree = etree.fromstring(await resp.read())
    etag = tree.findtext(".//{DAV:}getetag")
    assert etag
    return etag


def http_date(dt: datetime) -> str:
    """An IMF-fixdate for a header."""
    return format_datetime(dt.astimezone(UTC), usegmt=True)


def mtime_of(path: Path) -> datetime:
    """A file's modification time, to the second, as HTTP dates carry it."""
    return datetime.fromtimestamp(int(path.stat().st_mtime), UTC)


def parse_byteranges(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """The parts of a multipart/byteranges body as (Content-Type, Content-Range, data)."""
    match = re.fullmatch(r"multipart/byteranges;\s*boundary=(\S+)", content_type)
    assert match, content_type
    delimiter = b"--" + match.group(1).encode()
    pieces = body.split(delimiter)
    # pieces: preamble, one "\r\n<headers>\r\n\r\n<data>\r\n" per part, then "--\r\n".
    assert pieces[-1].rstrip(b"\r\n") == b"--"
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n") and piece.endswith(b"\r\n")
        head, _, data = piece[2:-2].partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields["Content-Type"], fields["Content-Range"], data))
    return parts


def links_of(page: str) -> dict[str, str]:
    """The links of an HTML listing's entries (and its parent) as {text: href}."""
    tree = lxml.html.fromstring(page)
    cells = tree.xpath('//table[@id="listing"]//td[@class="name"]/a')
    return {a.text_content(): a.get("href") for a in cells}


# -- OPTIONS ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/file.txt"])
async def test_options_advertises_dav(client: TestClient, root: Path, path: str) -> None:
    (root / "file.txt").write_bytes(b"x")
    resp = await client.options(path)
    assert resp.status == 200
    assert resp.headers["DAV"] == "1, 2, sabredav-partialupdate"
    assert resp.headers["MS-Author-Via"] == "DAV"
    allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed >= set(DAV_METHODS)
    assert resp.headers["Content-Length"] == "0"
    assert await resp.read() == b""


async def test_options_on_host_root_outside_mount(make_client: MakeClient) -> None:
    client = await make_client(path="/files")
    resp = await client.options("/")
    assert resp.status == 200
    assert resp.headers["DAV"] == "1, 2"
    assert resp.headers["MS-Author-Via"] == "DAV"


# -- GET and HEAD of a file ---------------------------------------------------------------


async def test_get_file_returns_body_and_headers(
    client: TestClient, root: Path, stored: bytes
) -> None:
    resp = await client.get("/data.bin")
    assert resp.status == 200
    assert await resp.read() == stored
    assert resp.headers["Content-Length"] == str(len(stored))
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.content_type == "application/octet-stream"
    assert parsedate_to_datetime(resp.headers["Last-Modified"]) == mtime_of(root / "data.bin")
    assert re.fullmatch(r'"[^"]+"', resp.headers["ETag"])  # strong


async def test_get_etag_matches_put_and_propfind(client: TestClient) -> None:
    put_resp = await put(client, "/doc.txt", b"hello etag")
    resp = await client.get("/doc.txt")
    assert resp.status == 200
    assert not resp.headers["ETag"].startswith("W/")
    assert resp.headers["ETag"] == put_resp.headers["ETag"]
    assert resp.headers["ETag"] == await propfind_etag(client, "/doc.txt")
    assert resp.headers["Last-Modified"] == put_resp.headers["Last-Modified"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("notes.txt", "text/plain"),
        ("page.html", "text/html"),
        ("blob.unknownext", "application/octet-stream"),
        ("no_extension", "application/octet-stream"),
    ],
)
async def test_get_content_type_from_extension(
    client: TestClient, root: Path, name: str, content_type: str
) -> None:
    (root / name).write_bytes(b"<p>content</p>")
    resp = await client.get("/" + name)
    assert resp.status == 200
    assert resp.content_type == content_type


async def test_head_file_has_get_headers_and_no_body(client: TestClient, stored: bytes) -> None:
    get_resp = await client.get("/data.bin")
    await get_resp.read()
    resp = await client.head("/data.bin")
    assert resp.status == 200
    assert await resp.read() == b""
    for name in ("ETag", "Last-Modified", "Content-Type", "Accept-Ranges", "Content-Length"):
        assert resp.headers[name] == get_resp.headers[name], name
    assert resp.headers["Content-Length"] == str(len(stored))


async def test_get_missing_is_404(client: TestClient) -> None:
    resp = await client.get("/nope.txt")
    assert resp.status == 404
    resp = await client.head("/nope/deeper.txt")
    assert resp.status == 404


# -- ranges -------------------------------------------------------------------------------


async def test_single_range(client: TestClient, stored: bytes) -> None:
    resp = await client.get("/data.bin", headers={"Range": "bytes=10-99"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 10-99/{len(stored)}"
    assert resp.headers["Content-Length"] == "90"
    assert await resp.read() == stored[10:100]


async def test_range_end_beyond_size_is_clipped(client: TestClient, stored: bytes) -> None:
    size = len(stored)
    resp = await client.get("/data.bin", headers={"Range": f"bytes={size - 3}-{size + 100}"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {size - 3}-{size - 1}/{size}"
    assert await resp.read() == stored[-3:]


async def test_suffix_range(client: TestClient, stored: bytes) -> None:
    size = len(stored)
    resp = await client.get("/data.bin", headers={"Range": "bytes=-5"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert await resp.read() == stored[-5:]


async def test_open_range(client: TestClient, stored: bytes) -> None:
    size = len(stored)
    resp = await client.get("/data.bin", headers={"Range": "bytes=5-"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 5-{size - 1}/{size}"
    assert resp.headers["Content-Length"] == str(size - 5)
    assert await resp.read() == stored[5:]


async def test_multiple_ranges_are_multipart(client: TestClient, stored: bytes) -> None:
    size = len(stored)
    resp = await client.get("/data.bin", headers={"Range": "bytes=0-9, 100-199, -7"})
    assert resp.status == 206
    assert "Content-Range" not in resp.headers
    body = await resp.read()
    assert resp.headers["Content-Length"] == str(len(body))
    parts = parse_byteranges(resp.headers["Content-Type"], body)
    assert parts == [
        ("application/octet-stream", f"bytes 0-9/{size}", stored[0:10]),
        ("application/octet-stream", f"bytes 100-199/{size}", stored[100:200]),
        ("application/octet-stream", f"bytes {size - 7}-{size - 1}/{size}", stored[-7:]),
    ]


@pytest.mark.parametrize("spec", ["{size}-", "{size}-{beyond}", "-0", "{beyond}-, {size}-"])
async def test_unsatisfiable_range_is_416(client: TestClient, stored: bytes, spec: str) -> None:
    size = len(stored)
    header = "bytes=" + spec.format(size=size, beyond=size + 10)
    resp = await client.get("/data.bin", headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert stored[:16] not in await resp.read()


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=9-3", "bytes 0-9", "lines=0-9", "bytes="])
async def test_invalid_range_sends_everything(
    client: TestClient, stored: bytes, header: str
) -> None:
    resp = await client.get("/data.bin", headers={"Range": header})
    assert resp.status == 200
    assert "Content-Range" not in resp.headers
    assert await resp.read() == stored


async def test_if_range_with_current_etag_sends_range(client: TestClient, stored: bytes) -> None:
    etag = (await client.head("/data.bin")).headers["ETag"]
    resp = await client.get("/data.bin", headers={"Range": "bytes=0-3", "If-Range": etag})
    assert resp.status == 206
    assert await resp.read() == stored[:4]


async def test_if_range_with_stale_etag_sends_everything(client: TestClient, stored: bytes) -> None:
    resp = await client.get("/data.bin", headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert resp.status == 200
    assert "Content-Range" not in resp.headers
    assert await resp.read() == stored


async def test_if_range_with_weak_etag_sends_everything(client: TestClient, stored: bytes) -> None:
    etag = (await client.head("/data.bin")).headers["ETag"]
    resp = await client.get("/data.bin", headers={"Range": "bytes=0-3", "If-Range": "W/" + etag})
    assert resp.status == 200
    assert await resp.read() == stored


# -- conditional GET ----------------------------------------------------------------------


async def test_if_none_match_current_etag_is_304(client: TestClient, stored: bytes) -> None:
    etag = (await client.head("/data.bin")).headers["ETag"]
    resp = await client.get("/data.bin", headers={"If-None-Match": f'"other", {etag}'})
    assert resp.status == 304
    assert resp.headers["ETag"] == etag
    assert await resp.read() == b""


async def test_if_none_match_star_is_304(client: TestClient, stored: bytes) -> None:
    resp = await client.get("/data.bin", headers={"If-None-Match": "*"})
    assert resp.status == 304
    assert await resp.read() == b""


async def test_if_none_match_other_etag_sends_body(client: TestClient, stored: bytes) -> None:
    resp = await client.get("/data.bin", headers={"If-None-Match": '"other"'})
    assert resp.status == 200
    assert await resp.read() == stored


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(days=1)], ids=["equal", "future"])
async def test_if_modified_since_not_modified_is_304(
    client: TestClient, root: Path, stored: bytes, offset: timedelta
) -> None:
    since = http_date(mtime_of(root / "data.bin") + offset)
    resp = await client.get("/data.bin", headers={"If-Modified-Since": since})
    assert resp.status == 304
    assert "ETag" in resp.headers
    assert await resp.read() == b""


async def test_if_modified_since_past_sends_body(
    client: TestClient, root: Path, stored: bytes
) -> None:
    since = http_date(mtime_of(root / "data.bin") - timedelta(days=1))
    resp = await client.get("/data.bin", headers={"If-Modified-Since": since})
    assert resp.status == 200
    assert await resp.read() == stored


async def test_if_match_wrong_etag_is_412(client: TestClient, stored: bytes) -> None:
    resp = await client.get("/data.bin", headers={"If-Match": '"wrong"'})
    assert resp.status == 412
    assert stored[:16] not in await resp.read()


async def test_if_match_current_etag_sends_body(client: TestClient, stored: bytes) -> None:
    etag = (await client.head("/data.bin")).headers["ETag"]
    resp = await client.get("/data.bin", headers={"If-Match": etag})
    assert resp.status == 200
    assert await resp.read() == stored


async def test_if_unmodified_since_past_is_412(
    client: TestClient, root: Path, stored: bytes
) -> None:
    since = http_date(mtime_of(root / "data.bin") - timedelta(days=1))
    resp = await client.get("/data.bin", headers={"If-Unmodified-Since": since})
    assert resp.status == 412


# -- collections --------------------------------------------------------------------------

ODD_NAMES = ['a<b&c"d.txt', "héllo wörld ✓.txt", "100% #1?.txt"]


async def test_get_collection_lists_members(client: TestClient, root: Path) -> None:
    (root / "small.txt").write_bytes(b"0123456789")
    (root / "big.bin").write_bytes(b"x" * 3000)
    (root / "sub").mkdir()
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    links = links_of(page)
    assert links == {"big.bin": "/big.bin", "small.txt": "/small.txt", "sub/": "/sub/"}
    assert "10 B" in page
    assert "2.9 KiB" in page


async def test_get_subcollection_links_to_parent(client: TestClient, root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    resp = await client.get("/sub/")
    assert resp.status == 200
    links = links_of(await resp.text())
    assert links == {"../": "/", "inner.txt": "/sub/inner.txt"}
    follow = await client.get(links["inner.txt"])
    assert await follow.read() == b"inner"


async def test_listing_escapes_names_and_encodes_links(client: TestClient, root: Path) -> None:
    for name in ODD_NAMES:
        (root / name).write_bytes(name.encode())
    resp = await client.get("/")
    assert resp.status == 200
    page = await resp.text()
    assert "<b&c" not in page
    assert "a&lt;b&amp;c&quot;d.txt" in page
    links = links_of(page)
    assert set(links) == set(ODD_NAMES)
    for name, link in links.items():
        assert link == "/" + quote(name, safe="")
        assert re.fullmatch(r"[\x21-\x7e]+", link), link  # percent-encoded ASCII only
        follow = await client.get(link)
        assert follow.status == 200, name
        assert await follow.read() == name.encode()


async def test_head_collection_has_no_body(client: TestClient, root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "f.txt").write_bytes(b"f")
    resp = await client.head("/sub/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert await resp.read() == b""


async def test_listing_under_mount_prefix_links_into_mount(
    make_client: MakeClient, root: Path
) -> None:
    client = await make_client(path="/files")
    (root / "sub").mkdir()
    (root / "sub" / "a b.txt").write_bytes(b"ab")
    resp = await client.get("/files/sub/")
    assert resp.status == 200
    links = links_of(await resp.text())
    assert links == {"../": "/files/", "a b.txt": "/files/sub/a%20b.txt"}
    follow = await client.get(links["a b.txt"])
    assert await follow.read() == b"ab"
