"""HTTPS: ``[server] tls_cert`` and ``tls_key`` make the real server speak TLS only.

A self-signed certificate for 127.0.0.1 is made with the ``openssl`` command (scripts/test
installs it); the clients trust exactly that certificate."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from helpers import ServerProcess, free_port, snapshot, start_server


@dataclass
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate (and its key) for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("cert")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return Certificate(cert, key)


@dataclass
class TlsSite:
    server: ServerProcess
    root: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, certificate: Certificate) -> Iterator[TlsSite]:
    """A WebDAV server at / over HTTPS."""
    base = tmp_path_factory.mktemp("tls")
    (base / "data").mkdir()
    (base / "data" / "kept.txt").write_bytes(b"kept")
    (base / "tls.toml").write_text(
        f'[server]\ntls_cert = "{certificate.cert}"\ntls_key = "{certificate.key}"\n'
        "read_timeout = 2.0\nmax_body_size = 4096\n"
        '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "data"\n'
    )
    server = start_server(base, "--config", str(base / "tls.toml"))
    yield TlsSite(server, base / "data")
    server.stop()


async def test_put_get_propfind_over_https(site: TlsSite, certificate: Certificate) -> None:
    context = certificate.client_context()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.put(f"{site.url}/hello.txt", data=b"over tls") as resp:
            assert resp.status == 201
            assert resp.headers["Location"] == f"{site.url}/hello.txt"  # the scheme is https
        async with session.get(f"{site.url}/hello.txt") as resp:
            assert resp.status == 200
            assert await resp.read() == b"over tls"
        async with session.request("PROPFIND", f"{site.url}/", headers={"Depth": "1"}) as resp:
            assert resp.status == 207
            body = await resp.text()
        assert "<D:href>/hello.txt</D:href>" in body
        assert "<D:href>/kept.txt</D:href>" in body
        async with session.delete(f"{site.url}/hello.txt") as resp:
            assert resp.status == 204
    assert (site.root / "kept.txt").read_bytes() == b"kept"


async def test_a_client_that_does_not_trust_the_certificate_is_refused(site: TlsSite) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{site.url}/kept.txt")


def test_plain_http_to_the_tls_port_is_dropped_and_nothing_breaks(
    site: TlsSite, certificate: Certificate
) -> None:
    before = snapshot(site.root)
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as sock:
        sock.sendall(
            b"PUT /plain.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nplain"
        )
        try:
            reply = sock.recv(1000)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/")  # no answer in clear text; the server hung up
    assert site.server.proc.poll() is None
    assert snapshot(site.root) == before
    # The server still speaks TLS to the next client.
    with (
        socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as raw,
        certificate.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.selected_alpn_protocol() in (None, "http/1.1")
        sock.sendall(b"GET /kept.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nkept")


def test_limits_hold_over_tls(site: TlsSite, certificate: Certificate) -> None:
    """A chunked body past max_body_size gets its 413 through TLS too; nothing is kept."""
    before = snapshot(site.root)
    with (
        socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as raw,
        certificate.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(
            b"PUT /kept.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):
            sock.sendall(b"800\r\n" + b"x" * 2048 + b"\r\n")
            time.sleep(0.05)
        answer = b""
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            while data := sock.recv(65536):
                answer += data
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert snapshot(site.root) == before


def test_a_silent_tls_client_is_dropped_after_read_timeout(site: TlsSite) -> None:
    """A client that connects and never starts the handshake holds its place only for
    read_timeout (2 s here)."""
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=6) as sock:
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
        assert 1.5 < time.monotonic() - started < 5


def test_urls_printed_at_start_say_https(tmp_path: Path, certificate: Certificate) -> None:
    (tmp_path / "tls.toml").write_text(
        f'[server]\ntls_cert = "{certificate.cert}"\ntls_key = "{certificate.key}"\n'
        '[[mounts]]\npath = "/files"\ntype = "webdav"\nroot = "data"\n'
    )
    server = start_server(tmp_path, "--config", str(tmp_path / "tls.toml"))
    assert server.stop() == 0
    out = server.proc.stdout.read() if server.proc.stdout else ""
    assert f"at https://127.0.0.1:{server.port}/files/" in out
    assert "http://" not in out


def test_a_key_that_does_not_fit_the_certificate_stops_the_start(
    tmp_path: Path, certificate: Certificate
) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-out", str(other)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    for key, expected in ((other, "KEY_VALUES_MISMATCH|key values mismatch"),
                          (certificate.cert, "cannot use")):  # fmt: skip
        conf = tmp_path / "bad.toml"
        conf.write_text(
            f'[server]\ntls_cert = "{certificate.cert}"\ntls_key = "{key}"\n'
            '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "data"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "davserver", "serve", "--config", str(conf),
             "--port", str(free_port())],
            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"{conf}: server.tls_cert: cannot use" in done.stderr
        assert re.search(expected, done.stderr), done.stderr
        assert "Traceback" not in done.stderr
