"""X-Sendfile-Range (a byte range of a file) and X-Sendfile2 (several files or ranges,
one after the other), from allowed folders only, for CGI, WSGI, FastCGI and ASGI mounts
alike: each refusal with its status and log line."""

from __future__ import annotations

import asyncio
import logging
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp.test_utils import TestClient

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

APPS = Path(__file__).parent / "apps"
A = bytes(range(10))  # a.bin
B = b"0123456789abcdef"  # "b file.bin"
CGI_SCRIPT = f"""#!{sys.executable}
import os, urllib.parse
query = dict(urllib.parse.parse_qsl(os.environ.get("QUERY_STRING", "")))
print("Content-Type: application/x-thing")
if "status" in query:
    print("Status: " + query["status"])
for name, value in query.items():
    if name.lower().startswith(("x-sendfile", "content-range")):
        print(f"{{name}}: {{value}}")
print()
print("never sent")
"""
VIEWS = {  # the URL of each mount's view that answers with the query's headers
    "cgi": "/cgi/headers.py",
    "wsgi": "/wsgi/sendfile-headers",
    "fastcgi": "/fcgi/sendfile",
    "asgi": "/asgi/sendfile",
}


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "a.bin").write_bytes(A)
    (downloads / "b file.bin").write_bytes(B)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "cgi").mkdir()
    script = tmp_path / "cgi" / "headers.py"
    script.write_text(CGI_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    allowed = (downloads,)
    mounts = (
        MountConfig(path="/cgi", type="cgi", root=tmp_path / "cgi", x_sendfile=allowed),
        MountConfig(path="/wsgi", type="wsgi", app="wsgiapps:validated",
                    pythonpath=(APPS,), x_sendfile=allowed),
        MountConfig(path="/fcgi", type="fastcgi",
                    command=(sys.executable, str(APPS / "fcgiapp.py")), x_sendfile=allowed),
        MountConfig(path="/asgi", type="asgi", app="starletteapp:app", pythonpath=(APPS,),
                    x_sendfile=allowed),
    )  # fmt: skip
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=mounts
    )
    client: TestClient = await aiohttp_client(create_app(config))
    for _ in range(100):  # the FastCGI application is started by the server
        if (await client.get("/fcgi/")).status == 200:
            break
        await asyncio.sleep(0.05)
    return client


def url(kind: str, **headers: str) -> str:
    return VIEWS[kind] + "?" + urlencode(headers)


@pytest.mark.parametrize("kind", VIEWS)
async def test_a_range_of_a_file(client: TestClient, tmp_path: Path, kind: str) -> None:
    target = url(
        kind,
        **{"X-Sendfile": f"{tmp_path}/downloads/a.bin", "X-Sendfile-Range": "bytes=2-5",
           "Content-Range": "bytes 2-5/10", "status": "206 Partial Content"},
    )  # fmt: skip
    resp = await client.get(target)
    assert resp.status == 206
    assert await resp.read() == A[2:6]
    assert resp.headers["Content-Length"] == "4"
    assert resp.headers["Content-Range"] == "bytes 2-5/10"  # the application's
    assert resp.headers["Content-Type"].startswith(("application/x-thing", "text/plain"))
    # To the end of the file, with the application's 200.
    resp = await client.get(
        url(kind, **{"X-Sendfile": f"{tmp_path}/downloads/a.bin", "X-Sendfile-Range": "7-"})
    )
    assert resp.status == 200
    assert await resp.read() == A[7:]


@pytest.mark.parametrize("kind", VIEWS)
async def test_several_files_in_one_answer(client: TestClient, tmp_path: Path, kind: str) -> None:
    folder = f"{tmp_path}/downloads"
    listed = f"{quote(folder + '/a.bin')} 0-1, {quote(folder + '/b file.bin')} 3-, {quote(folder + '/a.bin')}"
    resp = await client.get(url(kind, **{"X-Sendfile2": listed}))
    assert resp.status == 200
    body = await resp.read()
    assert body == A[0:2] + B[3:] + A
    assert resp.headers["Content-Length"] == str(len(body))
    resp = await client.head(url(kind, **{"X-Sendfile2": listed}))
    assert resp.status == 200
    assert await resp.read() == b""


@pytest.mark.parametrize("kind", VIEWS)
async def test_a_file_outside_the_allowed_folders_is_403(
    client: TestClient, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = f"{tmp_path}/downloads"
    listed = f"{quote(folder + '/a.bin')}, {quote(folder + '/../secret.txt')} 0-2"
    with caplog.at_level(logging.WARNING, "davserver"):
        resp = await client.get(url(kind, **{"X-Sendfile2": listed}))
        assert resp.status == 403
        assert "secret" not in await resp.text()
        resp = await client.get(
            url(kind, **{"X-Sendfile": f"{tmp_path}/secret.txt", "X-Sendfile-Range": "0-2"})
        )
        assert resp.status == 403
    refusals = [r for r in caplog.records if "refused: not in an allowed folder" in r.message]
    assert len(refusals) == 2


@pytest.mark.parametrize("kind", VIEWS)
async def test_bad_ranges_and_missing_files(
    client: TestClient, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = f"{tmp_path}/downloads/a.bin"
    with caplog.at_level(logging.WARNING, "davserver"):
        for bad in ("5-100", "x-y", "6-2"):
            resp = await client.get(url(kind, **{"X-Sendfile": a, "X-Sendfile-Range": bad}))
            assert resp.status == 502
        resp = await client.get(url(kind, **{"X-Sendfile2": f"{a} 0-1 2-3"}))
        assert resp.status == 502
        resp = await client.get(url(kind, **{"X-Sendfile2": f"{tmp_path}/downloads/none 0-1"}))
        assert resp.status == 404
    assert "of '" + a + "': it has 10" in caplog.text
    assert "malformed range 'x-y'" in caplog.text
    assert "no such file" in caplog.text
