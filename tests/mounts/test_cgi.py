"""CGI mounts (RFC 3875): meta-variables, request bodies, redirects, streaming, timeouts,
crashes, X-Sendfile and hostile paths."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers import ServerProcess, raw_request, snapshot

from davserver.app import ROUTER_KEY, create_app
from davserver.config import Config, MountConfig, ServerConfig
from davserver.dav.identity import USER

SECRET = b"secret bytes outside every allowed folder\n"

MakeCgi = Callable[..., Awaitable[TestClient]]

ENV_SCRIPT = """
import json, os, sys
body = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n")
sys.stdout.write(json.dumps({"env": dict(os.environ), "body": body.decode("latin-1")}))
"""


def script(folder: Path, name: str, code: str, mode: int = 0o755) -> Path:
    """Write a Python CGI script (run by this interpreter) into ``folder``."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(code))
    path.chmod(mode)
    return path


@pytest.fixture
def cgi_root(tmp_path: Path) -> Path:
    """The CGI folder, with the environment-dumping script as env.py."""
    root = tmp_path / "cgi"
    root.mkdir()
    script(root, "env.py", ENV_SCRIPT)
    return root


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A folder X-Sendfile may send from, and a secret file outside it."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "data.bin").write_bytes(bytes(range(256)) * 1024)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return folder


@pytest.fixture
def make_cgi(aiohttp_client: Any, tmp_path: Path, cgi_root: Path, shared: Path) -> MakeCgi:
    """Start a server with the CGI mount at /cgi-bin (options as keywords) and a static
    mount of ``shared`` at /static, the target of local redirects."""

    async def make(*, login: bool = False, **options: Any) -> TestClient:
        options.setdefault("x_sendfile", (shared,))
        mounts = (
            MountConfig(path="/cgi-bin", type="cgi", root=cgi_root, **options),
            MountConfig(path="/static", type="static", root=shared, cache_ttl=0.0),
        )
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=mounts
        )
        app = create_app(config)
        if login:  # stands in for authentication, which sets request[USER]
            app.middlewares.append(_login)
        return await aiohttp_client(app)

    return make


@web.middleware
async def _login(request: web.Request, handler: Any) -> web.StreamResponse:
    if "X-Test-User" in request.headers:
        request[USER] = request.headers["X-Test-User"]
    return await handler(request)


async def env_of(resp: aiohttp.ClientResponse) -> tuple[dict[str, str], bytes]:
    """The environment and stdin that env.py reported."""
    assert resp.status == 200, await resp.text()
    data = json.loads(await resp.read())
    return data["env"], data["body"].encode("latin-1")


async def test_every_meta_variable(make_cgi: MakeCgi, cgi_root: Path) -> None:
    client = await make_cgi(env={"SITE": "test"})
    resp = await client.post(
        "/cgi-bin/env.py/extra/a%20b?x=1&y=%20",
        data=b"hello",
        headers={
            "Content-Type": "text/plain",
            "X-Custom": "one",
            "Proxy": "http://evil:8080",
            "X_Under": "dropped",
            "Authorization": "Basic dTpw",
        },
    )
    env, body = await env_of(resp)
    assert body == b"hello"
    assert env["AUTH_TYPE"] == ""
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["PATH_INFO"] == "/extra/a b"
    assert env["PATH_TRANSLATED"] == f"{cgi_root}/extra/a b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_USER"] == ""
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(client.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("davserver/")
    assert env["HTTP_X_CUSTOM"] == "one"
    assert env["HTTP_HOST"] == f"127.0.0.1:{client.port}"
    assert env["HTTP_AUTHORIZATION"] == "Basic dTpw"
    assert env["SCRIPT_FILENAME"] == str(cgi_root / "env.py")
    assert env["SITE"] == "test"
    assert env["PATH"]
    for absent in ("HTTP_PROXY", "HTTP_X_UNDER", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
        assert absent not in env
    assert "PYTEST_CURRENT_TEST" not in env  # the server's own environment stays out


@pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")
async def test_authenticated_user(make_cgi: MakeCgi) -> None:
    client = await make_cgi(login=True)
    resp = await client.get(
        "/cgi-bin/env.py", headers={"X-Test-User": "ann", "Authorization": "Basic YW5uOnB3"}
    )
    env, _ = await env_of(resp)
    assert (env["REMOTE_USER"], env["AUTH_TYPE"]) == ("ann", "Basic")
    assert "HTTP_AUTHORIZATION" not in env  # the server's credentials, not the script's


async def test_get_without_body_or_path_info(make_cgi: MakeCgi) -> None:
    client = await make_cgi()
    env, body = await env_of(await client.get("/cgi-bin/env.py"))
    assert body == b""
    assert env["REQUEST_METHOD"] == "GET"
    assert env["QUERY_STRING"] == ""
    assert env["PATH_INFO"] == ""
    assert "PATH_TRANSLATED" not in env
    assert "CONTENT_LENGTH" not in env
    env, _ = await env_of(await client.get("/cgi-bin/env.py/dir/"))
    assert env["PATH_INFO"] == "/dir/"


async def test_post_body_reaches_the_script(make_cgi: MakeCgi, cgi_root: Path) -> None:
    script(
        cgi_root,
        "digest.py",
        """
        import hashlib, os, sys
        data = sys.stdin.buffer.read()
        print("Content-Type: text/plain\\n")
        print(len(data), hashlib.sha256(data).hexdigest(), os.environ.get("CONTENT_LENGTH"))
        """,
    )
    client = await make_cgi()
    payload = os.urandom(3 << 20)
    resp = await client.post("/cgi-bin/digest.py", data=payload)
    assert resp.status == 200
    assert (await resp.text()).split() == [
        str(len(payload)),
        hashlib.sha256(payload).hexdigest(),
        str(len(payload)),
    ]

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    resp = await client.post("/cgi-bin/digest.py", data=chunks())  # chunked
    assert (await resp.text()).split() == [
        str(len(payload)),
        hashlib.sha256(payload).hexdigest(),
        "None",
    ]


async def test_status_and_headers_are_passed_on(make_cgi: MakeCgi, cgi_root: Path) -> None:
    script(
        cgi_root,
        "teapot.py",
        """
        import sys
        sys.stdout.write("Status: 418 I'm a teapot\\nContent-Type: text/plain\\n")
        sys.stdout.write("Set-Cookie: a=1\\nSet-Cookie: b=2\\nConnection: close\\n\\nshort and stout")
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/teapot.py")
    assert resp.status == 418
    assert resp.reason == "I'm a teapot"
    assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert await resp.read() == b"short and stout"
    resp = await client.head("/cgi-bin/teapot.py")
    assert resp.status == 418
    assert await resp.read() == b""


async def test_local_redirects(make_cgi: MakeCgi, cgi_root: Path) -> None:
    script(cgi_root, "to-static.py", 'print("Location: /static/data.bin\\n")')
    script(cgi_root, "to-env.py", 'print("Location: /cgi-bin/env.py/p?from=redirect\\n")')
    script(cgi_root, "loop.py", 'print("Location: /cgi-bin/loop.py\\n")')
    client = await make_cgi()
    resp = await client.get("/cgi-bin/to-static.py")
    assert resp.status == 200
    assert await resp.read() == bytes(range(256)) * 1024
    resp = await client.post("/cgi-bin/to-env.py", data=b"dropped")
    env, body = await env_of(resp)
    assert (env["REQUEST_METHOD"], env["QUERY_STRING"], env["PATH_INFO"]) == (
        "GET",
        "from=redirect",
        "/p",
    )
    assert body == b""
    resp = await client.get("/cgi-bin/loop.py")
    assert resp.status == 502


async def test_client_redirects(make_cgi: MakeCgi, cgi_root: Path) -> None:
    script(cgi_root, "away.py", 'print("Location: http://example.org/elsewhere\\n")')
    script(cgi_root, "other-host.py", 'print("Location: //example.org/x\\n")')
    script(
        cgi_root,
        "moved.py",
        """
        print("Status: 301 Moved Permanently")
        print("Location: http://example.org/new")
        print("Content-Type: text/html\\n")
        print("<a href='http://example.org/new'>moved</a>")
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/away.py", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "http://example.org/elsewhere"
    resp = await client.get("/cgi-bin/other-host.py", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "//example.org/x"
    resp = await client.get("/cgi-bin/moved.py", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "http://example.org/new"
    assert b"moved</a>" in await resp.read()


async def test_response_streams_before_the_script_ends(
    make_cgi: MakeCgi, cgi_root: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script(
        cgi_root,
        "slow.py",
        f"""
        import os, sys, time
        sys.stdout.write("Content-Type: text/plain\\n\\nfirst\\n")
        sys.stdout.flush()
        deadline = time.monotonic() + 20
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        sys.stdout.write("second\\n")
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/slow.py")
    assert resp.status == 200
    assert await asyncio.wait_for(resp.content.readline(), 10) == b"first\n"
    go.write_text("")
    assert await resp.content.read() == b"second\n"


async def test_a_client_going_away_kills_the_script(
    make_cgi: MakeCgi, cgi_root: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script(
        cgi_root,
        "endless.py",
        f"""
        import os, sys
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        sys.stdout.write("Content-Type: text/plain\\n\\n")
        while True:
            sys.stdout.write("x" * 65536)
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/endless.py")
    assert len(await resp.content.readexactly(1 << 20)) == 1 << 20
    await asyncio.sleep(0.5)  # every buffer between the script and the client fills up
    resp.close()
    pid = int(pidfile.read_text())
    for _ in range(100):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the script still runs after its client went away")
    router = client.server.app[ROUTER_KEY]
    for _ in range(60):
        if not router.in_flight:
            break
        await asyncio.sleep(0.05)
    assert router.in_flight == 0  # the request's handler is done too, at once


async def test_timeout_kills_the_script(
    make_cgi: MakeCgi, cgi_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "pid"
    script(
        cgi_root,
        "sleepy.py",
        f"""
        import os, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        """,
    )
    client = await make_cgi(timeout=0.5)
    caplog.set_level(logging.WARNING, "davserver.cgi")
    resp = await client.get("/cgi-bin/sleepy.py")
    assert resp.status == 504
    pid = int(pidfile.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "killed" in caplog.text


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.exit(3)",
        "print('no header block at all')",
        "print('Content-Type: text/plain')",  # ends before the blank line
        "print('Bad Header Line\\n')",
        "print('Status: abc\\n')",
        "print('\\nbody without headers')",
        "raise SystemExit(1)",
    ],
)
async def test_crash_or_bad_headers_give_502(make_cgi: MakeCgi, cgi_root: Path, code: str) -> None:
    script(cgi_root, "bad.py", code)
    client = await make_cgi()
    resp = await client.get("/cgi-bin/bad.py")
    assert resp.status == 502


async def test_error_pages_replace_502_and_504(
    make_cgi: MakeCgi, cgi_root: Path, tmp_path: Path
) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "502.html").write_text("<p>script broke</p>")
    (pages / "504.html").write_text("<p>script too slow</p>")
    script(cgi_root, "bad.py", "print('garbage')")
    script(cgi_root, "slow.py", "import time; time.sleep(30)")
    script(
        cgi_root,
        "own.py",
        "print('Status: 502 Upstream Down\\nContent-Type: text/plain\\n\\nmine')",
    )
    client = await make_cgi(error_pages=pages, timeout=0.5)
    resp = await client.get("/cgi-bin/bad.py")
    assert (resp.status, await resp.text()) == (502, "<p>script broke</p>")
    resp = await client.get("/cgi-bin/slow.py")
    assert (resp.status, await resp.text()) == (504, "<p>script too slow</p>")
    resp = await client.get("/cgi-bin/own.py")  # the script's own answer stays
    assert (resp.status, await resp.text()) == (502, "mine\n")


async def test_crash_midway_cuts_the_answer(make_cgi: MakeCgi, cgi_root: Path) -> None:
    script(
        cgi_root,
        "midway.py",
        """
        import sys
        sys.stdout.write("Content-Type: text/plain\\n\\npartial")
        sys.stdout.flush()
        sys.exit(1)
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/midway.py")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_stderr_goes_to_the_log(
    make_cgi: MakeCgi, cgi_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script(
        cgi_root,
        "noisy.py",
        """
        import sys
        sys.stderr.write("something odd\\nsecond line")
        print("Content-Type: text/plain\\n\\nok")
        """,
    )
    client = await make_cgi()
    caplog.set_level(logging.WARNING, "davserver.cgi")
    resp = await client.get("/cgi-bin/noisy.py")
    assert await resp.text() == "ok\n"
    messages = [r.getMessage() for r in caplog.records if r.name == "davserver.cgi"]
    assert "cgi /cgi-bin/noisy.py: something odd" in messages
    assert "cgi /cgi-bin/noisy.py: second line" in messages


async def test_only_executable_files_under_the_root_run(
    make_cgi: MakeCgi, cgi_root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x'); print('Content-Type: text/plain\\n')"
    script(cgi_root, "plain.py", code, mode=0o644)
    outside = script(tmp_path / "outside", "evil.py", code)
    (cgi_root / "link.py").symlink_to(outside)
    (cgi_root / "linkdir").symlink_to(outside.parent)
    (cgi_root / "sub").mkdir()
    client = await make_cgi()
    before = snapshot(tmp_path)
    for target, status in (
        ("/cgi-bin/plain.py", 403),
        ("/cgi-bin/missing.py", 404),
        ("/cgi-bin/sub/", 403),
        ("/cgi-bin/", 403),
        ("/cgi-bin/link.py", 403),
        ("/cgi-bin/linkdir/evil.py", 403),
    ):
        resp = await client.get(target)
        assert resp.status == status, target
    assert client.port is not None
    for target in (
        "/cgi-bin/../outside/evil.py",
        "/cgi-bin/%2e%2e/outside/evil.py",
        "/cgi-bin/sub/..%2f..%2foutside/evil.py",
        "/cgi-bin/env.py/../../outside/evil.py",
        "/cgi-bin/%2Foutside%2Fevil.py",
    ):
        status, _, _ = await raw_request("127.0.0.1", client.port, "GET", target)
        assert status in (400, 403, 404), target
    assert not marker.exists()
    assert snapshot(tmp_path) == before


async def test_a_fifo_is_not_run(make_cgi: MakeCgi, cgi_root: Path) -> None:
    os.mkfifo(cgi_root / "fifo", 0o777)
    client = await make_cgi()
    resp = await client.get("/cgi-bin/fifo")
    assert resp.status == 403


async def test_x_sendfile_allowed(make_cgi: MakeCgi, cgi_root: Path, shared: Path) -> None:
    data = (shared / "data.bin").read_bytes()
    script(
        cgi_root,
        "send.py",
        f"""
        print("X-Sendfile: {shared / "data.bin"}")
        print("Content-Type: application/x-thing")
        print("Content-Disposition: attachment; filename=data.bin")
        print("Content-Length: 3\\n")
        print("ignored body")
        """,
    )
    client = await make_cgi()
    resp = await client.get("/cgi-bin/send.py")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/x-thing"
    assert resp.headers["Content-Disposition"] == "attachment; filename=data.bin"
    assert "X-Sendfile" not in resp.headers
    assert await resp.read() == data
    etag = resp.headers["ETag"]
    resp = await client.get("/cgi-bin/send.py", headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == data[10:20]
    resp = await client.get("/cgi-bin/send.py", headers={"If-None-Match": etag})
    assert resp.status == 304


@pytest.mark.parametrize(
    "value",
    ["{tmp}/secret.txt", "{tmp}/shared/../secret.txt", "../secret.txt", "{tmp}/shared/link"],
)
async def test_x_sendfile_refused(
    make_cgi: MakeCgi,
    cgi_root: Path,
    shared: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    (shared / "link").symlink_to(tmp_path / "secret.txt")
    script(cgi_root, "leak.py", f'print("X-Sendfile: {value.format(tmp=tmp_path)}\\n")')
    client = await make_cgi()
    caplog.set_level(logging.WARNING, "davserver")
    resp = await client.get("/cgi-bin/leak.py")
    assert resp.status == 403
    assert SECRET not in await resp.read()
    assert "X-Sendfile" in caplog.text and "refused" in caplog.text


async def test_x_sendfile_off_by_default(make_cgi: MakeCgi, cgi_root: Path, shared: Path) -> None:
    script(cgi_root, "send.py", f'print("X-Sendfile: {shared / "data.bin"}\\n")')
    client = await make_cgi(x_sendfile=())
    resp = await client.get("/cgi-bin/send.py")
    assert resp.status == 403


GIB = 1 << 30


async def test_one_gib_answer_is_streamed(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    cgi = tmp_path / "cgi"
    script(
        cgi,
        "gib.py",
        f"""
        import os
        os.write(1, b"Content-Type: application/octet-stream\\n\\n")
        block = b"x" * (1 << 20)
        for _ in range({GIB} >> 20):
            view = memoryview(block)
            while view:
                view = view[os.write(1, view):]
        """,
    )
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[server]\naccess_log = false\n[[mounts]]\npath = "/cgi-bin"\ntype = "cgi"\nroot = "cgi"\n'
    )
    server = server_process("--config", str(conf))
    proc = psutil.Process(server.proc.pid)
    received = 0
    peak = baseline = proc.memory_info().rss
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/cgi-bin/gib.py") as resp,
    ):
        assert resp.status == 200
        async for chunk in resp.content.iter_chunked(1 << 20):
            received += len(chunk)
            if received % (64 << 20) < len(chunk):
                peak = max(peak, proc.memory_info().rss)
    assert received == GIB
    assert peak - baseline < 64 << 20
