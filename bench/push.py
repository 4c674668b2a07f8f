"""WebDAV-Push benchmark: how soon a client hears of a change, and what a subscription
costs a PUT.

Usage: .venv/bin/python bench/push.py [--changes 1000] [--collections 10] [--duration 10]

It starts `python -m davserver serve` (this interpreter's davserver) in a fresh temporary
folder with one worker process, push on (default settings: a merge window of 0.2 s) and
one WebDAV mount at / on the filesystem, and a push service of its own on another
loopback port (an aiohttp app that decrypts each message with the subscription's key,
as a real one would pass it on).

- Latency: ``--collections`` folders, each with one subscription; one client per folder
  PUTs a file, waits for the message that carries the change's sync token, and PUTs the
  next, ``--changes`` in all. The latency of a change is the time from the PUT's answer
  to the message's arrival at the push service: p50, p99 and the largest. Goal: p99 under
  one second. Twice: with the changes of a folder 0.3 s apart (each comes after a quiet
  merge window, and is sent at once), and back to back (each PUT right after the
  previous message: the merge window holds every message back).
- Cost: 8 connections PUT small files into one folder for ``--duration`` seconds, without
  a subscription and with one on that folder (its messages merged to at most one per
  window), ``--rounds`` rounds each (5), alternating; the median PUTs/s of each, and the server's
  CPU time per PUT (steadier than the rate on a shared machine), and the cost in per
  cent. Goal: under 5 %.

It is a benchmark, not a test: it asserts nothing and exits 0 unless the server fails.
Only loopback traffic; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

NS = "https://bitfire.at/webdav-push"
TOKEN = re.compile(rb"<D:sync-token>[^<]*-([0-9]+)</D:sync-token>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Service:
    """A push service: decrypts each message and notes when the change number arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.arrived: dict[str, dict[int, float]] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.count = 0

    def register_body(self, name: str) -> bytes:
        key, auth = ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
        self.keys[name] = (key, auth)
        self.arrived[name] = {}
        self.events[name] = asyncio.Event()
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return (
            f'<P:push-register xmlns:P="{NS}" xmlns:D="DAV:"><P:subscription>'
            f"<P:web-push-subscription><P:push-resource>http://127.0.0.1:{self.port}/{name}"
            f'</P:push-resource><P:subscription-public-key type="p256dh">{b64url(public)}'
            f"</P:subscription-public-key><P:auth-secret>{b64url(auth)}</P:auth-secret>"
            "</P:web-push-subscription></P:subscription><P:trigger><P:content-update>"
            "<D:sync-level>1</D:sync-level></P:content-update></P:trigger></P:push-register>"
        ).encode()

    async def receive(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        name = request.match_info["name"]
        key, auth = self.keys[name]
        plain = http_ece.decrypt(
            await request.read(), private_key=key, auth_secret=auth, version="aes128gcm"
        )
        found = TOKEN.search(plain)
        if found:
            self.arrived[name][int(found[1])] = now
            self.events[name].set()
        self.count += 1
        return web.Response(status=201)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{name}", self.receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


def start_server(folder: Path, port: int, service_port: int) -> subprocess.Popen[bytes]:
    (folder / "data").mkdir()
    config = folder / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{folder / "state"}"\nworkers = 1\naccess_log = false\n\n'
        '[push]\nenabled = true\nallow_hosts = ["127.0.0.1"]\n\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "{folder / "data"}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "davserver", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


async def latency(
    session: aiohttp.ClientSession,
    base: str,
    service: Service,
    collections: int,
    changes: int,
    gap: float,
    run: str,
) -> list[float]:
    """Seconds from each PUT's answer to its message (``gap``: seconds between a message
    and the next PUT of its folder)."""
    names = [f"{run}{i}" for i in range(collections)]
    for name in names:
        async with session.request("MKCOL", f"{base}/{name}/") as resp:
            assert resp.status == 201, resp.status
    await asyncio.sleep(0.5)
    for name in names:
        async with session.post(
            f"{base}/{name}/", data=service.register_body(name),
            headers={"Content-Type": "application/xml"},
        ) as resp:  # fmt: skip
            assert resp.status == 201, await resp.text()
    found: list[float] = []

    async def client(name: str, count: int) -> None:
        arrived = service.arrived[name]
        for i in range(count):
            seen = max(arrived, default=0)
            async with session.put(f"{base}/{name}/f{i}.txt", data=b"x") as resp:
                assert resp.status == 201, resp.status
            answered = time.monotonic()
            deadline = answered + 10
            while max(arrived, default=0) <= seen:
                service.events[name].clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"no message for change {i} of {name}")
                try:
                    await asyncio.wait_for(service.events[name].wait(), left)
                except TimeoutError:
                    continue
            found.append(arrived[max(arrived)] - answered)
            await asyncio.sleep(gap)

    per = changes // collections
    await asyncio.gather(*(client(name, per) for name in names))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def put_rate(
    session: aiohttp.ClientSession, url: str, seconds: float, pid: int
) -> tuple[float, float]:
    """PUTs per second over 8 connections into the folder ``url``, and the server's CPU
    milliseconds per PUT."""
    done = 0
    stop = time.monotonic() + seconds

    async def loop(worker: int) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < stop:
            async with session.put(f"{url}w{worker}-{i % 50}.txt", data=b"x" * 100) as resp:
                assert resp.status in (201, 204), resp.status
            done += 1
            i += 1

    started, cpu = time.monotonic(), cpu_seconds(pid)
    await asyncio.gather(*(loop(w) for w in range(8)))
    return done / (time.monotonic() - started), 1000 * (cpu_seconds(pid) - cpu) / done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    service = Service()
    runner = await service.start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(Path(tmp), port, service.port)
        pid = proc.pid
        base = f"http://127.0.0.1:{port}"
        try:
            connector = aiohttp.TCPConnector(limit=32)
            async with aiohttp.ClientSession(connector=connector) as session:
                print(f"load average before: {os.getloadavg()[0]:.2f}")
                for gap, run in ((0.3, "spaced"), (0.0, "backtoback")):
                    found = await latency(
                        session, base, service, args.collections, args.changes, gap, run
                    )
                    print(
                        f"latency, {run}, over {len(found)} changes ({args.collections} "
                        f"collections): p50 {percentile(found, 0.5) * 1000:.0f} ms, "
                        f"p99 {percentile(found, 0.99) * 1000:.0f} ms, "
                        f"max {max(found) * 1000:.0f} ms (goal: p99 under 1000 ms)"
                    )
                async with session.request("MKCOL", f"{base}/load/") as resp:
                    assert resp.status == 201
                without: list[tuple[float, float]] = []
                with_sub: list[tuple[float, float]] = []
                sent = 0
                for _ in range(args.rounds):
                    without.append(await put_rate(session, f"{base}/load/", args.duration, pid))
                    async with session.post(
                        f"{base}/load/", data=service.register_body("load"),
                        headers={"Content-Type": "application/xml"},
                    ) as resp:  # fmt: skip
                        assert resp.status == 201
                        location = resp.headers["Location"]
                    before = service.count
                    with_sub.append(await put_rate(session, f"{base}/load/", args.duration, pid))
                    await asyncio.sleep(0.5)
                    sent += service.count - before
                    async with session.delete(base + location) as resp:
                        assert resp.status == 204
                a = statistics.median(r for r, _ in without)
                b = statistics.median(r for r, _ in with_sub)
                print(
                    f"PUT rate (median) without a subscription: {a:.0f}/s, with one: "
                    f"{b:.0f}/s ({sent} messages): {100 * (a - b) / a:.1f} % fewer"
                )
                for name, pick in (("least", min), ("median", statistics.median)):
                    ca = pick(c for _, c in without)
                    cb = pick(c for _, c in with_sub)
                    print(
                        f"server CPU per PUT ({name} of the rounds): {ca:.3f} ms without, "
                        f"{cb:.3f} ms with: {100 * (cb - ca) / ca:.1f} % more (goal: under 5 %)"
                    )
                print(f"rounds (PUTs/s, CPU ms per PUT): without {without}, with {with_sub}")
                print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
