"""ASGI mounts: a real Starlette application (the scope, lifespan, bodies streamed both
ways with a 50 MiB upload, WebSocket echo, a view that raises, X-Sendfile) and a Django
ASGI application, each under a mount path."""

from __future__ import annotations

import asyncio
import base64
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
from helpers import ServerProcess

from davserver.app import create_app
from davserver.config import (
    AccessConfig,
    AuthConfig,
    Config,
    ConfigError,
    MountConfig,
    ServerConfig,
)

APPS = Path(__file__).parent / "apps"
MiB = 1 << 20

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_asgi(aiohttp_client: Any, tmp_path: Path) -> MakeClient:
    """A server with Starlette at /star and Django at /dj."""

    async def make(**server: Any) -> TestClient:
        (tmp_path / "downloads").mkdir(exist_ok=True)
        mounts = (
            MountConfig(path="/star", type="asgi", app="starletteapp:app", pythonpath=(APPS,),
                        x_sendfile=(tmp_path / "downloads",)),
            MountConfig(path="/dj", type="asgi", app="djangoapp:application",
                        pythonpath=(APPS,)),
        )  # fmt: skip
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False, **server),
            mounts=mounts,
        )
        client: TestClient = await aiohttp_client(create_app(config))
        return client

    return make


async def test_scope_root_path_and_lifespan_state(make_asgi: MakeClient) -> None:
    client = await make_asgi()
    resp = await client.get("/star/")
    assert resp.headers["X-App"] == "starlette"
    assert await resp.text() == "Hello from Starlette"
    resp = await client.post("/star/scope/a%20b/c?x=1&y=%C3%A9", data=b"", headers={"X-Thing": "t"})
    scope = json.loads(await resp.read())
    assert scope["path"] == "/star/scope/a b/c"
    assert scope["root_path"] == "/star"
    assert scope["raw_path"] == "/star/scope/a%20b/c"
    assert scope["query_string"] == "x=1&y=%C3%A9"
    assert scope["url_for"].endswith("/star/")  # the app builds its URLs under the mount
    assert scope["client"][0] == "127.0.0.1"
    assert scope["started"] == "yes"  # set by the lifespan start-up
    assert scope["method"] == "POST" and scope["header"] == "t"
    assert (await client.get("/star/nowhere")).status == 404  # the app's own 404


async def test_upload_of_50_mib_is_streamed_in(make_asgi: MakeClient) -> None:
    client = await make_asgi()
    data = os.urandom(MiB) * 50
    digest = hashlib.sha256(data).hexdigest()

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(data), MiB):
            yield data[i : i + MiB]

    for body in (data, chunked()):
        resp = await client.put("/star/echo", data=body)
        assert resp.status == 200
        # More than one piece: the body reached the app as it came, not gathered first.
        assert await resp.text() == f"{50 * MiB} {digest} True"


async def test_answer_is_streamed_out(make_asgi: MakeClient) -> None:
    client = await make_asgi()
    resp = await client.get("/star/stream?n=3&pause=0.4")
    start = time.monotonic()
    assert await resp.content.readline() == b"part 0\n"
    assert time.monotonic() - start < 0.35
    assert await resp.read() == b"part 1\npart 2\n"


async def test_an_app_that_raises_is_500_with_its_traceback_logged(
    make_asgi: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_asgi()
    with caplog.at_level(logging.ERROR, "davserver.asgi"):
        resp = await client.get("/star/fail")
    assert resp.status == 500
    assert "asgi starletteapp:app: GET /star/fail failed" in caplog.text
    assert "RuntimeError: the view failed" in caplog.text
    assert (await client.get("/star/")).status == 200


async def test_websocket_echo(make_asgi: MakeClient) -> None:
    client = await make_asgi()
    async with client.ws_connect("/star/ws", protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("hi")
        assert await ws.receive_str() == "echo: hi"
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes() == b"cba"
        await ws.send_str("close")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4000
    async with client.ws_connect("/star/ws") as ws:  # the client closes first
        await ws.send_str("x")
        assert await ws.receive_str() == "echo: x"
    assert (await client.get("/star/")).status == 200


async def test_websocket_refused_or_failing(
    make_asgi: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_asgi()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/star/ws-refuse")
    assert refused.value.status == 403
    with caplog.at_level(logging.ERROR, "davserver.asgi"):
        async with client.ws_connect("/star/ws") as ws:
            await ws.send_str("raise")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1011
    assert "RuntimeError: the socket view failed" in caplog.text


async def test_websocket_obeys_the_access_rules(aiohttp_client: Any, tmp_path: Path) -> None:
    import bcrypt

    from davserver.auth import htpasswd

    accounts = tmp_path / "users"
    users = {"ann": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}
    await asyncio.to_thread(htpasswd.write, accounts, users)
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(
                path="/star",
                type="asgi",
                app="starletteapp:app",
                pythonpath=(APPS,),
                access=AccessConfig(),
            ),
        ),
        auth=AuthConfig(htpasswd=accounts),
    )
    client = await aiohttp_client(create_app(config))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/star/ws")
    assert refused.value.status == 401
    login = {"Authorization": "Basic " + base64.b64encode(b"ann:pw").decode()}
    async with client.ws_connect("/star/ws", headers=login) as ws:
        await ws.send_str("in")
        assert await ws.receive_str() == "echo: in"


async def test_lifespan_shutdown_runs_when_the_server_stops(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "shutdown"
    monkeypatch.setenv("ASGI_SHUTDOWN_MARKER", str(marker))
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(MountConfig(path="/", type="asgi", app="starletteapp:app", pythonpath=(APPS,)),),
    )
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/")).status == 200
    assert not marker.exists()
    await client.close()
    assert marker.read_text() == "shut down"


async def test_x_sendfile(
    make_asgi: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_asgi()
    (tmp_path / "downloads" / "f.txt").write_bytes(b"file body")
    resp = await client.get(f"/star/sendfile?X-Sendfile={tmp_path}/downloads/f.txt")
    assert resp.status == 200
    assert await resp.read() == b"file body"
    (tmp_path / "secret").write_text("secret")
    with caplog.at_level(logging.WARNING, "davserver"):
        resp = await client.get(f"/star/sendfile?X-Sendfile={tmp_path}/secret")
    assert resp.status == 403
    assert "refused: not in an allowed folder" in caplog.text


async def test_django(make_asgi: MakeClient) -> None:
    client = await make_asgi()
    resp = await client.get("/dj/")
    assert resp.status == 200
    assert await resp.text() == "Hello from Django"
    resp = await client.post("/dj/where/a/b?x=1", data=b"payload")
    assert json.loads(await resp.read()) == {
        "path": "/dj/where/a/b",
        "path_info": "/where/a/b",
        "script_name": "/dj",
        "reverse": "/dj/",
        "method": "POST",
        "body": "payload",
        "get": {"x": "1"},
    }
    assert (await client.get("/dj/nothing")).status == 404


async def test_a_missing_app_or_a_failed_start_up_stops_the_start(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "badlife.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
    )
    for spec, message in [
        ("no_such_module:app", "ASGI app 'no_such_module:app': cannot load"),
        ("badlife:app", "start-up failed: no database"),
    ]:
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
            mounts=(MountConfig(path="/", type="asgi", app=spec, pythonpath=(tmp_path,)),),
        )
        with pytest.raises(ConfigError, match=message):
            await aiohttp_client(create_app(config))
        await asyncio.sleep(0)


async def test_websocket_outlives_the_connection_deadlines(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = tmp_path / "ws.toml"
    conf.write_text(
        f"[server]\nworkers = 1\nread_timeout = 1.0\nidle_timeout = 1.0\n"
        f'[[mounts]]\npath = "/star"\ntype = "asgi"\napp = "starletteapp:app"\n'
        f'pythonpath = ["{APPS}"]\n'
    )
    server = server_process("--config", str(conf))
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{server.url}/star/ws") as ws:
        for _ in range(2):
            await asyncio.sleep(1.5)  # longer than read_timeout and idle_timeout
            await ws.send_str("still here")
            assert await ws.receive_str() == "echo: still here"
