"""WSGI mounts (PEP 3333): the environ, bodies both ways, streaming, write(), exc_info,
close(), errors, X-Sendfile, the thread pool, and a real Flask application."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from davserver.app import create_app
from davserver.config import Config, ConfigError, MountConfig, ServerConfig

APPS = Path(__file__).parent / "apps"

# A validation problem must fail the test, whether raised, warned or found at collection.
pytestmark = [
    pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

MakeWsgi = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_wsgi(aiohttp_client: Any, tmp_path: Path) -> MakeWsgi:
    """Start a server with WSGI mounts: the validated test views at /v, the rule-breaking
    ones at /raw, Flask at /flask, and a static mount of the test's folder at /."""

    async def make(**options: Any) -> TestClient:
        def wsgi(path: str, app: str) -> MountConfig:
            return MountConfig(path=path, type="wsgi", app=app, pythonpath=(APPS,), **options)

        (tmp_path / "www").mkdir(exist_ok=True)
        mounts = (
            wsgi("/v", "wsgiapps:validated"),
            wsgi("/raw", "wsgiapps:raw"),
            wsgi("/flask", "flaskapp:app"),
            MountConfig(path="/", type="static", root=tmp_path / "www", cache_ttl=0.0),
        )
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=mounts
        )
        return await aiohttp_client(create_app(config))

    return make


async def test_get_whole_answer(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    resp = await client.get("/v/hello")
    assert resp.status == 200
    assert resp.headers["X-Hello"] == "1"
    assert resp.headers["Content-Type"] == "text/plain"
    assert await resp.read() == b"Hello, World!"
    resp = await client.head("/v/hello")
    assert resp.status == 200
    assert await resp.read() == b""


async def test_environ(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    resp = await client.post(
        "/v/environ/a%20b/c?x=1&y=%C3%A9",
        data=b"12345",
        headers={"Content-Type": "text/plain", "X-Thing": "caf\u00e9"},
    )
    assert resp.status == 200
    env = json.loads(await resp.read())
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/v"
    assert env["PATH_INFO"] == "/environ/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=%C3%A9"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(client.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_HOST"] == f"127.0.0.1:{client.port}"
    assert env["HTTP_X_THING"] == "caf\u00e9".encode().decode("latin-1")  # bytes as latin-1
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert "HTTP_CONTENT_LENGTH" not in env
    resp = await client.get("/v")
    env = json.loads(await resp.read())
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/v", "")


@pytest.mark.parametrize("how", ["length", "sized", "lines"])
async def test_post_bodies(make_wsgi: MakeWsgi, how: str) -> None:
    client = await make_wsgi()
    payload = os.urandom(1 << 20) + b"\nlast line without end"
    expected = f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
    resp = await client.post(f"/v/echo?how={how}", data=payload)
    assert await resp.text() == expected

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 50_000):
            yield payload[i : i + 50_000]

    resp = await client.post(f"/v/echo?how={how}", data=chunks())  # chunked
    assert await resp.text() == expected
    resp = await client.post(f"/v/echo?how={how}")
    assert await resp.text() == f"0 {hashlib.sha256(b'').hexdigest()}"


async def test_streamed_answer_arrives_as_it_is_yielded(
    make_wsgi: MakeWsgi, tmp_path: Path
) -> None:
    client = await make_wsgi()
    go = tmp_path / "go"
    resp = await client.get("/v/stream", params={"go": str(go)})
    assert resp.status == 200
    assert await asyncio.wait_for(resp.content.readline(), 10) == b"first\n"
    go.write_text("")
    assert await resp.content.read() == b"second\n"


async def test_write_callable(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    resp = await client.get("/v/writer")
    assert resp.status == 200
    assert await resp.read() == b"written twice and returned"


async def test_close_is_always_called(make_wsgi: MakeWsgi, tmp_path: Path) -> None:
    client = await make_wsgi()
    marker = tmp_path / "closed"
    resp = await client.get("/v/closing", params={"marker": str(marker)})
    assert await resp.read() == b"one two"
    assert marker.read_text() == "closed"


async def test_close_is_called_when_the_client_goes_away(
    make_wsgi: MakeWsgi, tmp_path: Path
) -> None:
    client = await make_wsgi()
    marker = tmp_path / "closed"
    resp = await client.get("/v/endless", params={"marker": str(marker)})
    assert len(await resp.content.readexactly(1 << 20)) == 1 << 20
    resp.close()
    for _ in range(100):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.read_text() == "closed"


async def test_error_responses(make_wsgi: MakeWsgi, caplog: pytest.LogCaptureFixture) -> None:
    client = await make_wsgi()
    caplog.set_level(logging.INFO, "davserver.wsgi")
    resp = await client.get("/v/failing")
    assert resp.status == 500
    assert "the view failed" in caplog.text
    resp = await client.get("/v/error-page")
    assert resp.status == 500
    assert await resp.read() == b"the application's own error page"
    resp = await client.get("/v/not-found")
    assert resp.status == 404
    assert await resp.read() == b"no such page in this app"
    resp = await client.get("/v/failing-midway")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert "midway" in caplog.text


async def test_wsgi_errors_go_to_the_log(
    make_wsgi: MakeWsgi, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_wsgi()
    caplog.set_level(logging.INFO, "davserver.wsgi")
    resp = await client.get("/v/errors")
    assert await resp.read() == b"logged"
    messages = [r.getMessage() for r in caplog.records if r.name == "davserver.wsgi"]
    assert "wsgi wsgiapps:validated: first problem" in messages
    assert "wsgi wsgiapps:validated: second problem" in messages


@pytest.mark.parametrize("view", ["bad-status", "hop-by-hop", "str-body", "no-start", "twice"])
async def test_protocol_breaches_give_500(make_wsgi: MakeWsgi, view: str) -> None:
    client = await make_wsgi()
    resp = await client.get(f"/raw/{view}")
    assert resp.status == 500


async def test_short_body_cuts_the_answer(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    resp = await client.get("/raw/short")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_app_error_pages_are_not_replaced(make_wsgi: MakeWsgi, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "404.html").write_bytes(b"<p>server 404</p>")
    (pages / "500.html").write_bytes(b"<p>server 500</p>")
    client = await make_wsgi(error_pages=pages)
    resp = await client.get("/v/not-found")
    assert await resp.read() == b"no such page in this app"
    resp = await client.get("/v/error-page")
    assert await resp.read() == b"the application's own error page"
    resp = await client.get("/v/failing")  # the server's own 500
    assert resp.status == 500
    assert await resp.read() == b"<p>server 500</p>"


async def test_x_sendfile(make_wsgi: MakeWsgi, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    data = os.urandom(200 << 10)
    (shared / "file.bin").write_bytes(data)
    (tmp_path / "secret").write_bytes(b"secret")
    client = await make_wsgi(x_sendfile=(shared,))
    resp = await client.get("/v/sendfile", params={"f": str(shared / "file.bin")})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/x-thing"
    assert await resp.read() == data
    resp = await client.get(
        "/v/sendfile", params={"f": str(shared / "file.bin")}, headers={"Range": "bytes=0-99"}
    )
    assert resp.status == 206
    assert await resp.read() == data[:100]
    resp = await client.get("/v/sendfile", params={"f": str(tmp_path / "secret")})
    assert resp.status == 403
    assert b"secret" not in await resp.read()


async def test_a_slow_view_does_not_block_the_server(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi(threads=2)
    slow = asyncio.ensure_future(client.get("/v/slow", params={"s": "1.5"}))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    resp = await client.get("/v/hello")
    assert await resp.read() == b"Hello, World!"
    assert time.monotonic() - start < 1.0
    assert not slow.done()
    assert await (await slow).read() == b"slow"


async def test_thread_pool_size_bounds_concurrency(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi(threads=2)
    start = time.monotonic()
    answers = await asyncio.gather(*(client.get("/v/slow", params={"s": "0.4"}) for _ in range(4)))
    assert [a.status for a in answers] == [200] * 4
    assert time.monotonic() - start >= 0.8  # two at a time


async def test_flask_form_post(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    resp = await client.get("/flask/")
    assert await resp.text() == '<a href="/flask/form">form</a> <a href="/flask/upload">upload</a>'
    resp = await client.post("/flask/form", data={"name": "Zoë & co", "age": "42"})
    assert resp.status == 200
    assert await resp.text() == "hello Zoë & co, you are 42"
    resp = await client.get("/flask/missing")
    assert resp.status == 404


async def test_flask_file_upload(make_wsgi: MakeWsgi) -> None:
    client = await make_wsgi()
    data = os.urandom(2 << 20)
    form = aiohttp.FormData()
    form.add_field("note", "a note")
    form.add_field("file", data, filename="photo.jpg", content_type="image/jpeg")
    resp = await client.post("/flask/upload", data=form)
    assert resp.status == 200
    assert await resp.json() == {
        "filename": "photo.jpg",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "a note",
    }


async def test_unloadable_app_stops_the_start(aiohttp_client: Any, tmp_path: Path) -> None:
    mount = MountConfig(path="/x", type="wsgi", app="wsgiapps:nothing", pythonpath=(APPS,))
    config = Config(server=ServerConfig(state_dir=tmp_path / "state"), mounts=(mount,))
    with pytest.raises(ConfigError, match="wsgiapps:nothing"):
        await aiohttp_client(create_app(config))
