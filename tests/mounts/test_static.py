"""Static mounts: files, ranges, conditional requests, encodings, index files, listings,
MIME types, Cache-Control, error pages and hostile paths."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import raw_request, snapshot

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

SMALL = bytes(range(256)) * 4  # 1 KiB, served from memory
LARGE = os.urandom(300 << 10)  # above the 64 KiB inline limit: sendfile
TEXT = ("static text line\n" * 400).encode()  # 6.8 KiB of text: gzipped on the fly
BIG_TEXT = ("a longer line of text to compress\n" * 10000).encode()  # 340 KiB: streamed gzip
SECRET = b"top secret outside the root\n"

MakeStatic = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """A folder to serve, with a secret file beside it (outside the root)."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "small.bin").write_bytes(SMALL)
    (root / "large.bin").write_bytes(LARGE)
    (root / "text.txt").write_bytes(TEXT)
    (root / "big.txt").write_bytes(BIG_TEXT)
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return root


@pytest.fixture
def make_static(aiohttp_client: Any, tmp_path: Path, www: Path) -> MakeStatic:
    """Start a server whose only mount is a static one of ``www`` (options as keywords).

    The client neither asks for nor decodes content encodings unless a test says so.
    """

    async def make(*, path: str = "/", **options: Any) -> TestClient:
        options.setdefault("cache_ttl", 0.0)
        mount = MountConfig(path=path, type="static", root=www, **options)
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=(mount,)
        )
        return await aiohttp_client(
            create_app(config), auto_decompress=False, skip_auto_headers=("Accept-Encoding",)
        )

    return make


async def test_get_and_head_of_a_small_file(make_static: MakeStatic) -> None:
    client = await make_static()
    resp = await client.get("/small.bin")
    assert resp.status == 200
    assert await resp.read() == SMALL
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Length"] == str(len(SMALL))
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', resp.headers["ETag"])
    assert resp.headers["Last-Modified"].endswith(" GMT")
    assert "Vary" not in resp.headers  # no encoded variant of a binary file
    head = await client.head("/small.bin")
    assert head.status == 200
    assert await head.read() == b""
    for name in ("ETag", "Last-Modified", "Content-Length", "Content-Type"):
        assert head.headers[name] == resp.headers[name]


async def test_large_file_goes_out_whole(make_static: MakeStatic) -> None:
    client = await make_static()
    resp = await client.get("/large.bin")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(LARGE))
    assert await resp.read() == LARGE


@pytest.mark.parametrize("name,data", [("small.bin", SMALL), ("large.bin", LARGE)])
async def test_single_range(make_static: MakeStatic, name: str, data: bytes) -> None:
    client = await make_static()
    resp = await client.get(f"/{name}", headers={"Range": "bytes=100-199"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await resp.read() == data[100:200]
    resp = await client.get(f"/{name}", headers={"Range": "bytes=-10"})
    assert resp.status == 206
    assert await resp.read() == data[-10:]


@pytest.mark.parametrize("name,data", [("small.bin", SMALL), ("large.bin", LARGE)])
async def test_multiple_ranges(make_static: MakeStatic, name: str, data: bytes) -> None:
    client = await make_static()
    resp = await client.get(f"/{name}", headers={"Range": "bytes=0-9,500-519"})
    assert resp.status == 206
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", resp.headers["Content-Type"])
    assert match
    body = await resp.read()
    assert len(body) == int(resp.headers["Content-Length"])
    parts = body.split(b"--" + match.group(1).encode())
    assert parts[-1].strip() == b"--"
    got = []
    for part in parts[1:-1]:
        head, _, content = part.partition(b"\r\n\r\n")
        assert b"Content-Range: bytes " in head
        got.append(content.removesuffix(b"\r\n"))
    assert got == [data[0:10], data[500:520]]


async def test_unsatisfiable_range_and_stale_if_range(make_static: MakeStatic) -> None:
    client = await make_static()
    resp = await client.get("/small.bin", headers={"Range": f"bytes={len(SMALL)}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(SMALL)}"
    resp = await client.get("/small.bin", headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert resp.status == 200
    assert await resp.read() == SMALL


async def test_conditional_requests(make_static: MakeStatic) -> None:
    client = await make_static(cache_control="public, max-age=60")
    first = await client.get("/small.bin")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.headers["Cache-Control"] == "public, max-age=60"
    resp = await client.get("/small.bin", headers={"If-None-Match": etag})
    assert resp.status == 304
    assert resp.headers["ETag"] == etag
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert await resp.read() == b""
    resp = await client.get("/small.bin", headers={"If-Modified-Since": modified})
    assert resp.status == 304
    resp = await client.get("/small.bin", headers={"If-None-Match": '"other"'})
    assert resp.status == 200
    resp = await client.get("/small.bin", headers={"If-Match": '"other"'})
    assert resp.status == 412
    since = "Mon, 01 Jan 2001 00:00:00 GMT"
    resp = await client.get("/small.bin", headers={"If-Unmodified-Since": since})
    assert resp.status == 412
    resp = await client.get("/large.bin", headers={"If-None-Match": "*"})
    assert resp.status == 304


async def test_index_files_and_folder_redirects(make_static: MakeStatic, www: Path) -> None:
    client = await make_static(path="/site")
    resp = await client.get("/site/")
    assert resp.status == 200
    assert await resp.read() == b"<h1>home</h1>\n"
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    resp = await client.get("/site?x=1", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/site/?x=1"
    resp = await client.get("/site/sub", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/site/sub/"
    resp = await client.get("/site/sub/")
    assert resp.status == 403  # no index file, listings off
    resp = await client.get("/site/small.bin/")
    assert resp.status == 404
    resp = await client.get("/site/missing.html")
    assert resp.status == 404


async def test_configured_index_names(make_static: MakeStatic, www: Path) -> None:
    (www / "sub" / "start.htm").write_bytes(b"start")
    client = await make_static(index=("default.html", "start.htm"))
    resp = await client.get("/sub/")
    assert resp.status == 200
    assert await resp.read() == b"start"
    resp = await client.get("/")
    assert resp.status == 403  # index.html is no longer an index name


async def test_listing(make_static: MakeStatic, www: Path) -> None:
    (www / "sub" / ".hidden").write_bytes(b"x")
    (www / "sub" / "a <b>&c.txt").write_bytes(b"x")
    (www / "sub" / "folder").mkdir()
    client = await make_static(listing=True)
    resp = await client.get("/sub/")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    page = await resp.text()
    assert "Index of /sub/" in page
    assert 'href="./page.html"' in page
    assert 'href="./a%20%3Cb%3E%26c.txt">a &lt;b&gt;&amp;c.txt</a>' in page
    assert page.index("folder/") < page.index("page.html")  # folders first
    assert ".hidden" not in page
    assert 'href="../"' in page


async def test_mime_map(make_static: MakeStatic, www: Path) -> None:
    (www / "notes.md").write_bytes(b"# notes")
    (www / "data.weird").write_bytes(b"?")
    (www / "pic.PNG").write_bytes(b"png")
    client = await make_static(mime_types={".md": "text/markdown; charset=utf-8"})
    resp = await client.get("/notes.md")
    assert resp.headers["Content-Type"] == "text/markdown; charset=utf-8"
    resp = await client.get("/data.weird")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    resp = await client.get("/pic.PNG")
    assert resp.headers["Content-Type"] == "image/png"


@pytest.fixture
def precompressed(www: Path) -> dict[str, bytes]:
    """app.js with .gz and .br siblings (the .br bytes are a stand-in: never decoded)."""
    plain = b"console.log('hello');\n" * 100
    files = {"app.js": plain, "app.js.gz": gzip.compress(plain), "app.js.br": b"BROTLI" * 10}
    for name, data in files.items():
        (www / name).write_bytes(data)
    return files


async def test_precompressed_siblings(
    make_static: MakeStatic, precompressed: dict[str, bytes]
) -> None:
    client = await make_static()
    resp = await client.get("/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert resp.headers["Content-Encoding"] == "br"
    assert await resp.read() == precompressed["app.js.br"]
    resp = await client.get("/app.js", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp.headers["Vary"] == "Accept-Encoding"
    gz_etag = resp.headers["ETag"]
    assert await resp.read() == precompressed["app.js.gz"]
    resp = await client.get("/app.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0.5"})
    assert resp.headers["Content-Encoding"] == "gzip"
    resp = await client.get("/app.js", headers={"Accept-Encoding": "*, br;q=0"})
    assert resp.headers["Content-Encoding"] == "gzip"
    resp = await client.get("/app.js")
    assert "Content-Encoding" not in resp.headers
    assert resp.headers["ETag"] != gz_etag
    assert await resp.read() == precompressed["app.js"]
    resp = await client.get(
        "/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag}
    )
    assert resp.status == 304
    resp = await client.get("/app.js", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-3"})
    assert resp.status == 206
    assert await resp.read() == precompressed["app.js.gz"][:4]


async def test_precompressed_off(make_static: MakeStatic, precompressed: dict[str, bytes]) -> None:
    client = await make_static(precompressed=False, gzip=False)
    resp = await client.get("/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in resp.headers
    assert "Vary" not in resp.headers
    assert await resp.read() == precompressed["app.js"]


async def test_gzip_on_the_fly(make_static: MakeStatic, www: Path) -> None:
    (www / "short.txt").write_bytes(b"short text\n")
    (www / "pic.png").write_bytes(TEXT)
    client = await make_static()
    resp = await client.get("/text.txt", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await resp.read()) == TEXT
    etag = resp.headers["ETag"]
    plain = await client.get("/text.txt")
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    assert plain.headers["ETag"] != etag
    assert await plain.read() == TEXT
    resp = await client.get("/text.txt", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert resp.status == 304
    for name in ("short.txt", "pic.png"):  # below gzip_min_size; not a text type
        resp = await client.get(f"/{name}", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in resp.headers
    resp = await client.get("/text.txt", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in resp.headers


async def test_gzip_stream_of_a_big_text(make_static: MakeStatic) -> None:
    client = await make_static()
    resp = await client.get("/big.txt", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Transfer-Encoding"] == "chunked"
    body = await resp.read()
    assert len(body) < len(BIG_TEXT) // 10
    assert gzip.decompress(body) == BIG_TEXT
    etag = resp.headers["ETag"]
    resp = await client.get("/big.txt", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert resp.status == 304
    resp = await client.head("/big.txt", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert await resp.read() == b""
    # A range of a big text is served from the file as it is.
    resp = await client.get("/big.txt", headers={"Accept-Encoding": "gzip", "Range": "bytes=5-9"})
    assert resp.status == 206
    assert "Content-Encoding" not in resp.headers
    assert await resp.read() == BIG_TEXT[5:10]


async def test_gzip_off(make_static: MakeStatic) -> None:
    client = await make_static(gzip=False)
    resp = await client.get("/text.txt", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in resp.headers
    assert await resp.read() == TEXT


async def test_only_reading_methods(make_static: MakeStatic, www: Path) -> None:
    client = await make_static()
    before = snapshot(www)
    for method in ("PUT", "DELETE", "POST", "MKCOL", "PROPFIND", "MOVE"):
        resp = await client.request(method, "/small.bin", data=b"x")
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    resp = await client.options("/small.bin")
    assert resp.status == 200
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert snapshot(www) == before


@pytest.mark.parametrize(
    "target,statuses",
    [
        ("/../secret.txt", (400, 403, 404)),
        ("/%2e%2e/secret.txt", (403,)),
        ("/sub/%2E%2E/%2e%2e/secret.txt", (403,)),
        ("/sub/..%2f..%2fsecret.txt", (400,)),
        ("/%2Fetc%2Fpasswd", (400,)),
        ("/sub/%00.txt", (400,)),
        ("/%ff%fe", (400,)),
        ("/sub/../../secret.txt", (400, 403, 404)),
    ],
)
async def test_traversal_is_refused(
    make_static: MakeStatic, www: Path, target: str, statuses: tuple[int, ...]
) -> None:
    client = await make_static()
    assert client.port is not None
    before = snapshot(www.parent)
    status, _headers, body = await raw_request("127.0.0.1", client.port, "GET", target)
    assert status in statuses, (target, status, body)
    assert SECRET not in body
    assert snapshot(www.parent) == before


async def test_symlinks_out_of_the_root_are_refused(make_static: MakeStatic, www: Path) -> None:
    outside = www.parent / "outside"
    outside.mkdir()
    (outside / "file.txt").write_bytes(SECRET)
    (www / "to-secret.txt").symlink_to(www.parent / "secret.txt")
    (www / "to-outside").symlink_to(outside)
    (www / "to-small.bin").symlink_to(www / "small.bin")
    (www / "to-sub").symlink_to(www / "sub")
    (www / "index.html").unlink()
    client = await make_static(listing=True)
    for target in ("/to-secret.txt", "/to-outside/file.txt", "/to-outside/"):
        resp = await client.get(target)
        assert resp.status == 403, target
        assert SECRET not in await resp.read()
    resp = await client.get("/to-small.bin")
    assert resp.status == 200
    assert await resp.read() == SMALL
    resp = await client.get("/to-sub/page.html")
    assert await resp.read() == b"<p>page</p>\n"
    page = await (await client.get("/")).text()
    assert "to-outside" not in page
    assert "to-secret" not in page
    assert "to-small.bin" in page


async def test_odd_names_are_not_found(make_static: MakeStatic, www: Path) -> None:
    (www / "loop").symlink_to(www / "loop")
    client = await make_static()
    for target in (f"/{'n' * 300}", "/loop", "/loop/x", "/small.bin/x"):
        resp = await client.get(target)
        assert resp.status == 404, target


async def test_fifo_is_not_served(make_static: MakeStatic, www: Path) -> None:
    os.mkfifo(www / "pipe")
    client = await make_static()
    resp = await client.get("/pipe")
    assert resp.status == 404


async def test_error_pages_from_a_folder(
    make_static: MakeStatic, tmp_path: Path, www: Path
) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "404.html").write_bytes(b"<h1>nothing here</h1>")
    (pages / "403.html").write_bytes(b"<h1>keep out</h1>")
    (pages / "notes.txt").write_bytes(b"ignored")
    client = await make_static(error_pages=pages)
    resp = await client.get("/missing")
    assert resp.status == 404
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert await resp.read() == b"<h1>nothing here</h1>"
    resp = await client.get("/sub/")
    assert resp.status == 403
    assert await resp.read() == b"<h1>keep out</h1>"
    resp = await client.put("/small.bin", data=b"x")
    assert resp.status == 405  # no 405.html: the plain answer
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_error_page_from_one_file(make_static: MakeStatic, tmp_path: Path) -> None:
    page = tmp_path / "oops.html"
    page.write_bytes(b"<p>oops</p>")
    client = await make_static(error_pages=page)
    for target, status in (("/missing", 404), ("/sub/", 403)):
        resp = await client.get(target)
        assert resp.status == status
        assert await resp.read() == b"<p>oops</p>"
    resp = await client.put("/small.bin", data=b"x")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert await resp.read() == b"<p>oops</p>"


async def test_cache_ttl_bounds_how_long_a_change_goes_unseen(
    make_static: MakeStatic, www: Path
) -> None:
    client = await make_static(cache_ttl=0.3)
    assert await (await client.get("/small.bin")).read() == SMALL
    (www / "small.bin").write_bytes(b"changed")
    assert await (await client.get("/small.bin")).read() == SMALL  # still cached
    await asyncio.sleep(0.4)
    assert await (await client.get("/small.bin")).read() == b"changed"
    (www / "small.bin").unlink()
    await asyncio.sleep(0.4)
    assert (await client.get("/small.bin")).status == 404


async def test_without_cache_a_change_is_seen_at_once(make_static: MakeStatic, www: Path) -> None:
    client = await make_static(cache_ttl=0.0)
    assert await (await client.get("/small.bin")).read() == SMALL
    (www / "small.bin").write_bytes(b"changed")
    assert await (await client.get("/small.bin")).read() == b"changed"
