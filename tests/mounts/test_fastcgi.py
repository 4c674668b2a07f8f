"""FastCGI mounts: a real PHP application under Debian's php-fpm (GET, a POST form, a
100 MiB upload, a 1 GiB answer streamed with flat memory, a worker that crashes, php-fpm
stopped and started again), and a Python FastCGI application (flup) the server starts
and restarts itself; kept connections, timeouts, X-Sendfile."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestClient
from helpers import ServerProcess
from rss import PeakRSS

from davserver.app import ROUTER_KEY, create_app
from davserver.config import Config, ConfigError, MountConfig, ServerConfig, load

APPS = Path(__file__).parent / "apps"
PHP = APPS / "php"
FLUP = (sys.executable, str(APPS / "fcgiapp.py"))
MiB = 1 << 20


def php_fpm_binary() -> str:
    found = sorted(Path("/usr/sbin").glob("php-fpm*"))
    assert found, "php-fpm is not installed (scripts/test installs it)"
    return str(found[-1])


class PhpFpm:
    """php-fpm run by the test, unprivileged, in a folder of its own, on a Unix socket."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "php.sock"
        self.conf = folder / "php-fpm.conf"
        self.conf.write_text(
            f"""
[global]
pid = {folder}/php-fpm.pid
error_log = {folder}/php-fpm.log
daemonize = no

[www]
listen = {self.socket}
pm = static
pm.max_children = 3
catch_workers_output = yes
php_admin_value[upload_max_filesize] = 200M
php_admin_value[post_max_size] = 200M
php_admin_value[memory_limit] = 64M
php_admin_value[output_buffering] = 0
php_admin_value[upload_tmp_dir] = {folder}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # As root, php-fpm wants to be told it may stay root (-R).
        root = ["-R"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [php_fpm_binary(), "-F", "-n", "-y", str(self.conf), *root,
             "-d", "extension=posix"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            assert self.proc.poll() is None, (self.folder / "php-fpm.log").read_text()
            assert time.monotonic() < deadline, "php-fpm did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.socket.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def php_fpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpFpm]:
    fpm = PhpFpm(tmp_path_factory.mktemp("fpm"))
    fpm.start()
    yield fpm
    fpm.stop()


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_fcgi(aiohttp_client: Any, tmp_path: Path) -> MakeClient:
    """A server with FastCGI mounts: /php (php-fpm, when its socket is given) and /py
    (flup, started by the server), with X-Sendfile from ``tmp_path/downloads``."""

    async def make(php_socket: Path | None = None, **options: Any) -> TestClient:
        (tmp_path / "downloads").mkdir(exist_ok=True)
        sendfile = (tmp_path / "downloads",)
        mounts = [
            MountConfig(path="/py", type="fastcgi", command=FLUP, x_sendfile=sendfile, **options)
        ]
        if php_socket is not None:
            mounts.append(
                MountConfig(path="/php", type="fastcgi", socket=str(php_socket), root=PHP,
                            x_sendfile=sendfile, **options)
            )  # fmt: skip
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
            mounts=tuple(mounts),
        )
        client: TestClient = await aiohttp_client(create_app(config))
        for _ in range(100):  # the server starts flup: wait until it answers
            async with client.get("/py/") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.05)
        return client

    return make


# -- PHP under php-fpm --------------------------------------------------------------------


async def test_php_get_and_cgi_environment(make_fcgi: MakeClient, php_fpm: PhpFpm) -> None:
    client = await make_fcgi(php_fpm.socket)
    resp = await client.get("/php/hello.php/extra/path?x=1&y=%C3%A9")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert await resp.text() == "hello from php /php/hello.php [/extra/path] x=1&y=%C3%A9"
    resp = await client.get("/php/")  # the folder's index file
    assert await resp.text() == "index of /php/index.php"
    resp = await client.get("/php/missing.php")
    assert resp.status == 404


async def test_php_post_form(make_fcgi: MakeClient, php_fpm: PhpFpm) -> None:
    client = await make_fcgi(php_fpm.socket)
    resp = await client.post("/php/form.php?q=2", data={"name": "Zoë", "n": "1"})
    assert resp.status == 200
    assert json.loads(await resp.read()) == {
        "method": "POST", "post": {"name": "Zoë", "n": "1"}, "get": {"q": "2"}
    }  # fmt: skip


async def test_php_upload_of_100_mib(make_fcgi: MakeClient, php_fpm: PhpFpm) -> None:
    client = await make_fcgi(php_fpm.socket, timeout=120.0)
    data = os.urandom(MiB) * 100
    digest = hashlib.sha256(data)
    # With a Content-Length: PHP ignores a body without one (a chunked one).
    form = aiohttp.FormData()
    form.add_field("f", data, filename="big.bin", content_type="application/octet-stream")
    resp = await client.post("/php/upload.php", data=form)
    assert resp.status == 200
    assert await resp.text() == f"0 {100 * MiB} {digest.hexdigest()}"


async def test_php_streams_1_gib_with_flat_memory(
    php_fpm: PhpFpm, tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = tmp_path / "php.toml"
    conf.write_text(
        f'[server]\nworkers = 1\n[[mounts]]\npath = "/php"\ntype = "fastcgi"\n'
        f'socket = "{php_fpm.socket}"\nroot = "{PHP}"\n'
    )
    server = server_process("--config", str(conf))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/php/big.php?mib=4") as resp:  # warm up
            assert len(await resp.read()) == 4 * MiB
        baseline = psutil.Process(server.proc.pid).memory_info().rss
        received = 0
        with PeakRSS(server.proc.pid) as rss:
            async with s.get(f"{server.url}/php/big.php") as resp:
                assert resp.status == 200
                async for chunk in resp.content.iter_chunked(MiB):
                    received += len(chunk)
    assert received == 1 << 30
    grown = rss.peak - baseline
    print(f"RSS baseline {baseline >> 20} MiB, +{grown >> 20} MiB while streaming 1 GiB")
    assert grown < 64 * MiB


async def test_php_worker_crash_is_502_and_the_next_request_works(
    make_fcgi: MakeClient, php_fpm: PhpFpm, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fcgi(php_fpm.socket)
    assert (await client.get("/php/hello.php")).status == 200
    with caplog.at_level(logging.WARNING, "davserver.fastcgi"):
        resp = await client.get("/php/crash.php")
    assert resp.status == 502
    assert "fastcgi /php: connection lost" in caplog.text
    for _ in range(5):  # php-fpm starts another child; kept connections are replaced
        resp = await client.get("/php/hello.php")
        assert resp.status == 200


async def test_php_fpm_down_is_502_then_reconnected(
    make_fcgi: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "own-fpm").mkdir()
    fpm = PhpFpm(tmp_path / "own-fpm")
    fpm.start()
    try:
        client = await make_fcgi(fpm.socket)
        assert (await client.get("/php/hello.php")).status == 200
        fpm.stop()
        with caplog.at_level(logging.WARNING, "davserver.fastcgi"):
            resp = await client.get("/php/hello.php")
        assert resp.status == 502
        assert "fastcgi /php: cannot connect" in caplog.text
        await asyncio.to_thread(fpm.start)
        resp = await client.get("/php/hello.php")
        assert resp.status == 200
    finally:
        fpm.stop()


async def test_php_x_sendfile(make_fcgi: MakeClient, php_fpm: PhpFpm, tmp_path: Path) -> None:
    client = await make_fcgi(php_fpm.socket)
    (tmp_path / "downloads" / "file.txt").write_bytes(b"sent by the server")
    resp = await client.get(f"/php/sendfile.php?f={tmp_path}/downloads/file.txt")
    assert resp.status == 200
    assert await resp.read() == b"sent by the server"
    assert resp.headers["Content-Type"].startswith("text/plain")


# -- a Python FastCGI application, started by the server --------------------------------


async def test_python_app_environment_and_bodies(make_fcgi: MakeClient) -> None:
    client = await make_fcgi()
    resp = await client.get("/py/")
    assert resp.headers["X-App"] == "flup"
    assert await resp.text() == "Hello from FastCGI"
    resp = await client.post(
        "/py/environ/a%20b?x=1", data=b"12345", headers={"Content-Type": "text/plain"}
    )
    env = json.loads(await resp.read())
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/py"
    assert env["PATH_INFO"] == "/environ/a b"
    assert env["QUERY_STRING"] == "x=1"
    assert env["CONTENT_LENGTH"] == "5" and env["CONTENT_TYPE"] == "text/plain"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REQUEST_URI"] == "/py/environ/a%20b?x=1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("davserver/")
    data = os.urandom(3 * MiB + 17)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: streamed through
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    for body in (data, chunked()):
        resp = await client.post("/py/echo", data=body)
        assert await resp.text() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


async def test_python_app_answer_is_streamed(make_fcgi: MakeClient) -> None:
    client = await make_fcgi()
    resp = await client.get("/py/stream?n=3&pause=0.4")
    assert resp.status == 200
    start = time.monotonic()
    first = await resp.content.readline()
    assert first == b"part 0\n"
    assert time.monotonic() - start < 0.35  # before the application finished
    assert await resp.read() == b"part 1\npart 2\n"


async def test_python_app_crash_is_502_and_it_is_started_again(
    make_fcgi: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fcgi()
    with caplog.at_level(logging.WARNING, "davserver.fastcgi"):
        resp = await client.get("/py/crash")
        assert resp.status == 502
        for _ in range(100):
            resp = await client.get("/py/")
            if resp.status == 200:
                break
            await asyncio.sleep(0.1)
    assert resp.status == 200
    assert "fastcgi /py: process 0 exited (status 3)" in caplog.text


async def test_python_app_timeout_is_504(
    make_fcgi: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fcgi(timeout=0.5)
    with caplog.at_level(logging.WARNING, "davserver.fastcgi"):
        resp = await client.get("/py/slow?s=3")
    assert resp.status == 504
    assert "fastcgi /py: silent for 0.5s: /py/slow?s=3" in caplog.text
    assert (await client.get("/py/")).status == 200


async def test_python_app_stderr_is_logged(
    make_fcgi: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fcgi()
    with caplog.at_level(logging.WARNING, "davserver.fastcgi"):
        assert await (await client.get("/py/stderr")).text() == "logged"
    assert "a problem reported on stderr" in caplog.text


async def test_x_sendfile_outside_the_allowed_folders_is_403(
    make_fcgi: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fcgi()
    (tmp_path / "secret.txt").write_text("secret")
    with caplog.at_level(logging.WARNING, "davserver"):
        resp = await client.get(f"/py/sendfile?X-Sendfile={tmp_path}/secret.txt")
    assert resp.status == 403
    assert "secret" not in await resp.text()
    assert "X-Sendfile" in caplog.text and "refused: not in an allowed folder" in caplog.text


async def test_kept_connections_are_reused(make_fcgi: MakeClient) -> None:
    client = await make_fcgi()
    mount = next(m for m in client.app[ROUTER_KEY].mounts if m.prefix == "/py")
    kept = []
    for _ in range(5):
        resp = await client.get("/py/")
        assert resp.status == 200
        # The body of an answer with a Content-Length can reach the client before the
        # application's end of request reaches the server and the connection goes back
        # to the pool: wait for it (the test client shares the server's loop).
        await resp.read()
        async with asyncio.timeout(5):
            while not mount.pool._idle:
                await asyncio.sleep(0.001)
        kept.append(mount.pool._idle[-1][0])
    assert len(mount.pool._idle) == 1  # one connection served them all, one at a time
    assert all(conn is kept[0] for conn in kept)


def test_fastcgi_options_are_checked(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    for body, message in [
        ("", "socket: missing"),
        ('socket = "/s"\ncommand = ["x"]', "socket: not with command"),
        ('socket = "nowhere"', "is neither a path"),
        ('socket = "/s"\nprocesses = 0', "processes: must be at least 1"),
        ('socket = "/s"\nthreads = 2', "not an option of fastcgi mounts"),
    ]:
        conf.write_text(f'[[mounts]]\npath = "/p"\ntype = "fastcgi"\n{body}\n')
        with pytest.raises(ConfigError, match=message):
            load(conf)
    conf.write_text('[[mounts]]\npath = "/p"\ntype = "fastcgi"\nsocket = "127.0.0.1:9000"\n')
    assert load(conf).mounts[0].socket == "127.0.0.1:9000"


async def test_requests_beyond_the_pool_wait_for_a_connection(
    make_fcgi: MakeClient, php_fpm: PhpFpm
) -> None:
    # php-fpm has 3 children, each bound to a connection while it is open: with
    # pool_size = 3, the 9 requests take turns instead of waiting in php-fpm's queue.
    client = await make_fcgi(php_fpm.socket, pool_size=3, timeout=5.0)
    start = time.monotonic()
    answers = await asyncio.gather(*(client.get("/php/slow.php") for _ in range(9)))
    assert [a.status for a in answers] == [200] * 9
    assert [await a.text() for a in answers] == ["slow"] * 9
    assert time.monotonic() - start >= 0.85  # three rounds of three
