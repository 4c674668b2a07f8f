"""Helpers shared by the tests (importable as ``helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry below ``folder`` (hidden ones too): files with their bytes, folders None,
    symlinks ``b"->"`` and their target. An entry that vanishes while the walk goes on (a
    temporary file the server has just renamed or removed) is left out, not an error."""
    out: dict[str, bytes | None] = {}
    vanished: list[str] = []

    def gone(exc: OSError) -> None:  # a folder listed, then removed before it was read
        if isinstance(exc, FileNotFoundError):
            vanished.append(os.path.normpath(os.path.relpath(str(exc.filename), folder)))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=gone):
        rel = os.path.relpath(dirpath, folder)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for f in filenames:
            full = os.path.join(dirpath, f)
            try:
                out[os.path.normpath(os.path.join(rel, f))] = (
                    b"->" + os.readlink(full).encode()
                    if os.path.islink(full)
                    else Path(full).read_bytes()
                )
            except FileNotFoundError:
                continue
    for name in vanished:
        out.pop(name, None)
    return out


def fill_stock(stock: str) -> None:
    """Have the helper make files ahead in the stock folder ``stock`` and wait until a
    batch is at hand (davserver/runtime/tempstock.py; closer.start came first). Takes
    come oldest first: the files held now are the next ones taken."""
    from davserver.runtime import tempstock

    probe = os.path.join(stock, "probe")
    deadline = time.monotonic() + 10
    while (fd := tempstock.place(stock, probe)) is None:
        assert time.monotonic() < deadline, "no files made ahead"
        time.sleep(0.01)
    os.unlink(probe)
    os.close(fd)


def made_ahead(stock: str) -> set[int]:
    """The inodes of the unnamed files this process holds in the stock folder ``stock``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(stock + "/#") and target.endswith(" (deleted)"):
            inodes.add(os.stat(f"/proc/self/fd/{fd}").st_ino)
    return inodes


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A ``davserver serve`` process started by a test."""

    proc: subprocess.Popen[str]
    port: int
    cwd: Path
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        # Drain the output as it comes: a full pipe would stop the server at its next
        # log line.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def log(self) -> str:
        """Everything the server has written so far (all of it once it has stopped)."""
        if self.proc.poll() is not None and self.reader is not None:
            self.reader.join(timeout=10)
        return "".join(self.output)

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(cwd: Path, *args: str, port: int | None = None) -> ServerProcess:
    """Run ``python -m davserver serve ARGS --port PORT`` in ``cwd``; wait until it listens."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "davserver", "serve", "--port", str(port), *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    server = ServerProcess(proc, port, cwd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {server.log()}")
        # The start-up lines come once the server (every worker) accepts requests.
        if " at http" in server.log():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return server
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not start listening: {server.log()}")


async def raw_request(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """Send one request with the target exactly as given (no client-side normalization)."""
    import asyncio

    reader, writer = await asyncio.open_connection(host, port)
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        parsed[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), parsed, rest
