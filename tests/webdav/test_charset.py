"""Text files are served with a charset (``[server] default_charset``) on WebDAV GET/HEAD,
git mounts (past versions too) and static mounts; XML, JSON and binary types are not,
nor is PROPFIND's getcontenttype changed."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from davserver.app import create_app
from davserver.config import Config, ConfigError, MountConfig, ServerConfig, parse
from davserver.dav.charset import with_charset

UTF8 = "héllo wörld ✓\n".encode()
FILES = {
    "a.txt": ("text/plain; charset=utf-8", UTF8),
    "page.html": ("text/html; charset=utf-8", b"<p>\xc3\xa9</p>\n"),
    "style.css": ("text/css; charset=utf-8", b"p{}\n"),
    "event.ics": ("text/calendar; charset=utf-8", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
    "data.json": ("application/json", b'{"a": "\xc3\xa9"}\n'),
    "feed.xml": (None, b'<?xml version="1.0" encoding="iso-8859-1"?><a>\xe9</a>\n'),
    "image.svg": ("image/svg+xml", b"<svg/>\n"),
    "blob.bin": ("application/octet-stream", b"\x00\x01"),
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        ("text/javascript", "text/javascript; charset=utf-8"),
        ("application/javascript", "application/javascript; charset=utf-8"),
        ("text/markdown; variant=GFM", "text/markdown; variant=GFM; charset=utf-8"),
        ("text/plain; charset=iso-8859-1", "text/plain; charset=iso-8859-1"),
        ("text/plain;Charset=latin1", "text/plain;Charset=latin1"),
        ("text/xml", "text/xml"),
        ("text/vnd.example+xml", "text/vnd.example+xml"),
        ("application/xml", "application/xml"),
        ("image/svg+xml", "image/svg+xml"),
        ("application/json", "application/json"),
        ("image/png", "image/png"),
        ("application/octet-stream", "application/octet-stream"),
    ],
)
def test_which_types_get_a_charset(given: str, expected: str) -> None:
    assert with_charset(given, "utf-8") == expected


def test_an_empty_default_charset_adds_none() -> None:
    assert with_charset("text/plain", "") == "text/plain"


@pytest.mark.parametrize("value", ["no-such-encoding", "utf-8; x=y", "utf-8\r\nX-Evil: 1"])
def test_an_unusable_default_charset_is_a_config_error(value: str, tmp_path: Path) -> None:
    data = {
        "server": {"default_charset": value},
        "mounts": [{"path": "/", "type": "webdav", "root": "d"}],
    }
    with pytest.raises(ConfigError, match=r"server\.default_charset"):
        parse(data, "t.toml", tmp_path)


async def serve(aiohttp_client: Any, tmp_path: Path, charset: str, **mount: Any) -> TestClient:
    """A server with one mount at / (its options as keywords) and ``default_charset``."""
    server = ServerConfig(state_dir=tmp_path / "state", access_log=False, default_charset=charset)
    config = Config(server=server, mounts=(MountConfig(path="/", **mount),))
    return await aiohttp_client(
        create_app(config), auto_decompress=False, skip_auto_headers=("Accept-Encoding",)
    )


def expected_type(name: str) -> str:
    wanted, _ = FILES[name]
    if wanted is None:  # the system's type for .xml: text/xml or application/xml
        return "xml"
    return wanted


def check_type(header: str, name: str) -> None:
    wanted = expected_type(name)
    if wanted == "xml":
        assert "xml" in header and "charset" not in header, header
    else:
        assert header == wanted


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for name, (_, data) in FILES.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("name", list(FILES))
async def test_webdav_get_and_head(
    aiohttp_client: Any, tmp_path: Path, tree: Path, name: str
) -> None:
    client = await serve(aiohttp_client, tmp_path, "utf-8", type="webdav", root=tree)
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/" + name)
        assert resp.status == 200
        check_type(resp.headers["Content-Type"], name)
    assert await (await client.get("/" + name)).read() == FILES[name][1]


async def test_webdav_ranges_carry_the_charset(
    aiohttp_client: Any, tmp_path: Path, tree: Path
) -> None:
    client = await serve(aiohttp_client, tmp_path, "utf-8", type="webdav", root=tree)
    resp = await client.get("/a.txt", headers={"Range": "bytes=0-4"})
    assert resp.status == 206
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    resp = await client.get("/a.txt", headers={"Range": "bytes=0-1,4-5"})
    assert resp.status == 206
    assert resp.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    body = await resp.read()
    assert body.count(b"Content-Type: text/plain; charset=utf-8\r\n") == 2


async def test_propfind_getcontenttype_is_unchanged(
    aiohttp_client: Any, tmp_path: Path, tree: Path
) -> None:
    client = await serve(aiohttp_client, tmp_path, "utf-8", type="webdav", root=tree)
    resp = await client.request(
        "PROPFIND", "/a.txt", headers={"Depth": "0"},
        data=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontenttype/>'
        b"</D:prop></D:propfind>",
    )  # fmt: skip
    assert resp.status == 207
    assert re.search(rb"<D:getcontenttype>text/plain</D:getcontenttype>", await resp.read())


@pytest.mark.parametrize(
    ("charset", "header"), [("", "text/plain"), ("iso-8859-1", "text/plain; charset=iso-8859-1")]
)
async def test_the_default_charset_is_configurable(
    aiohttp_client: Any, tmp_path: Path, tree: Path, charset: str, header: str
) -> None:
    client = await serve(aiohttp_client, tmp_path, charset, type="webdav", root=tree)
    assert (await client.get("/a.txt")).headers["Content-Type"] == header
    static = await serve(aiohttp_client, tmp_path, charset, type="static", root=tree)
    assert (await static.get("/a.txt")).headers["Content-Type"] == header


async def test_git_mount_current_and_past_versions(aiohttp_client: Any, tmp_path: Path) -> None:
    repo = tmp_path / "store.git"
    client = await serve(aiohttp_client, tmp_path, "utf-8", type="webdav", backend="git", repo=repo)
    assert (await client.put("/a.txt", data=UTF8)).status == 201
    assert (await client.put("/data.json", data=b"{}")).status == 201
    resp = await client.get("/a.txt")
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await resp.read() == UTF8
    assert (await client.head("/a.txt")).headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await client.get("/data.json")).headers["Content-Type"] == "application/json"
    history = await (await client.get("/a.txt?history=json")).json()
    version = history["versions"][0]["version"]
    resp = await client.get(f"/a.txt?version={version}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("name", list(FILES))
async def test_static_mount(aiohttp_client: Any, tmp_path: Path, tree: Path, name: str) -> None:
    client = await serve(aiohttp_client, tmp_path, "utf-8", type="static", root=tree)
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/" + name)
        assert resp.status == 200
        check_type(resp.headers["Content-Type"], name)
    # Again, from the mount's memory cache.
    check_type((await client.get("/" + name)).headers["Content-Type"], name)


async def test_static_gzip_and_mime_types(aiohttp_client: Any, tmp_path: Path, tree: Path) -> None:
    (tree / "long.txt").write_bytes(UTF8 * 200)
    (tree / "notes.md").write_bytes(UTF8)
    (tree / "old.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    client = await serve(
        aiohttp_client, tmp_path, "utf-8", type="static", root=tree,
        mime_types={"md": "text/markdown"},
    )  # fmt: skip
    resp = await client.get("/long.txt", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert gzip.decompress(await resp.read()) == UTF8 * 200
    resp = await client.get("/notes.md")
    assert resp.headers["Content-Type"] == "text/markdown; charset=utf-8"
    latin = await serve(
        aiohttp_client, tmp_path, "utf-8", type="static", root=tree,
        mime_types={"txt": "text/plain; charset=iso-8859-1"},
    )  # fmt: skip
    assert (await latin.get("/old.txt")).headers["Content-Type"] == "text/plain; charset=iso-8859-1"
