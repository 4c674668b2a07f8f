"""``davserver serve`` as a user runs it: embedded default, config files, signals."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from helpers import ServerProcess, free_port


def request(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_embedded_default_creates_data_and_prints_its_url(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process()
    assert (tmp_path / "data").is_dir()
    assert request("PUT", f"{server.url}/hello.txt", b"hi")[0] == 201
    assert (tmp_path / "data" / "hello.txt").read_bytes() == b"hi"
    assert server.stop() == 0
    out = server.proc.stdout.read() if server.proc.stdout else ""
    assert f"http://127.0.0.1:{server.port}/" in out


def test_config_file_mounts_side_by_side(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[[mounts]]\npath = "/a"\ntype = "webdav"\nroot = "one"\n'
        '[[mounts]]\npath = "/a/b"\ntype = "webdav"\nroot = "two"\n'
    )
    server = server_process("--config", str(conf))
    assert request("PUT", f"{server.url}/a/x.txt", b"1")[0] == 201
    assert request("PUT", f"{server.url}/a/b/y.txt", b"2")[0] == 201
    assert (tmp_path / "one" / "x.txt").read_bytes() == b"1"
    assert (tmp_path / "two" / "y.txt").read_bytes() == b"2"
    assert request("GET", f"{server.url}/elsewhere")[0] == 404


def test_root_override(tmp_path: Path, server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--root", str(tmp_path / "other"))
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201
    assert (tmp_path / "other" / "f").read_bytes() == b"x"


def test_bad_config_exits_before_listening(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[server]\nport = "eighty"\n[[mounts]]\npath="/"\ntype="webdav"\nroot="d"\n')
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "davserver", "serve", "--config", str(conf), "--port", str(port)],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{conf}: server.port: must be of type int" in done.stderr
    assert not (tmp_path / "d").exists()


def test_sigterm_lets_an_in_flight_upload_finish(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process()
    results: list[int] = []

    def slow_body():  # a chunked upload that takes about a second
        for _ in range(10):
            time.sleep(0.1)
            yield b"x" * 1000

    def upload() -> None:
        req = urllib.request.Request(f"{server.url}/slow.bin", data=slow_body(), method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            results.append(resp.status)

    worker = threading.Thread(target=upload)
    worker.start()
    time.sleep(0.4)
    server.proc.terminate()
    worker.join(timeout=30)
    assert server.proc.wait(timeout=30) == 0
    assert results == [201]
    assert (tmp_path / "data" / "slow.bin").read_bytes() == b"x" * 10_000
