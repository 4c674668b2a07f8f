"""The multi-host figures (not a test): throughput of PUT and of a LOCK/PUT/UNLOCK cycle,
for one davserver process with its state in SQLite (one host), one process with its
state in PostgreSQL, and two processes ("two hosts": own ports, own state folders) on
one PostgreSQL database and one data folder.

    .venv/bin/python bench/hosts.py [--duration 5] [--warmup 1] [--clients 16]

PostgreSQL is a private cluster started for the run (tests/pgcluster.py: Debian's
binaries, a Unix socket in a temporary folder). The load comes from this process
(asyncio + aiohttp, ``--clients`` concurrent clients, each on its own keep-alive
connection, spread over the hosts in turn); on a small machine it shares the cores with
the servers, so the figures are ratios between the set-ups, measured alike, more than
absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import Cluster  # noqa: E402  (the tests' cluster, reused)

BODY = os.urandom(4096)
LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    b"</D:lockinfo>"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: Path, data: Path, url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    """One davserver process serving ``data`` at /dav, its state in ``url`` or in SQLite."""
    folder.mkdir(parents=True)
    state = f'[state]\nurl = "{url}"\n\n' if url else ""
    config = folder / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{folder / "state"}"\nworkers = 1\naccess_log = false\n'
        f"pin_cpu = false\n\n{state}"
        f'[[mounts]]\npath = "/dav"\ntype = "webdav"\nroot = "{data}"\n'
    )
    port = free_port()
    davserver = ROOT / ".venv" / "bin" / "davserver"
    with open(folder / "log", "wb") as log:
        proc = subprocess.Popen(
            [str(davserver), "serve", "--config", str(config), "--port", str(port),
             "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import urllib.request

            urllib.request.urlopen(base + "/dav/", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"davserver did not start: {(folder / 'log').read_text()}")


Workload = Callable[[aiohttp.ClientSession, str, int, list[int]], Awaitable[None]]


async def put(session: aiohttp.ClientSession, base: str, client: int, done: list[int]) -> None:
    """PUT a 4 KiB file (one of ten per client), again and again."""
    n = 0
    while True:
        async with session.put(f"{base}/dav/bench/p{client}-{n % 10}.txt", data=BODY) as r:
            assert r.status in (201, 204), r.status
            await r.read()
        done[0] += 1
        n += 1


async def cycle(session: aiohttp.ClientSession, base: str, client: int, done: list[int]) -> None:
    """LOCK a file, PUT it with the token, UNLOCK it: one cycle."""
    url = f"{base}/dav/bench/c{client}.txt"
    while True:
        async with session.request(
            "LOCK", url, data=LOCK_BODY, headers={"Timeout": "Second-60"}
        ) as r:
            assert r.status in (200, 201), r.status
            token = r.headers["Lock-Token"]
            await r.read()
        async with session.put(url, data=BODY, headers={"If": f"({token})"}) as r:
            assert r.status in (201, 204), r.status
            await r.read()
        async with session.request("UNLOCK", url, headers={"Lock-Token": token}) as r:
            assert r.status == 204, r.status
        done[0] += 1


async def measure(
    bases: list[str], work: Workload, clients: int, warmup: float, duration: float
) -> float:
    """Operations per second of ``work`` by ``clients`` clients spread over ``bases``."""
    done = [0]
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in range(clients)
    ]
    try:
        async with (
            aiohttp.ClientSession() as setup,
            setup.request("MKCOL", bases[0] + "/dav/bench/") as r,
        ):
            assert r.status in (201, 405), r.status
        tasks = [
            asyncio.create_task(work(sessions[i], bases[i % len(bases)], i, done))
            for i in range(clients)
        ]
        await asyncio.sleep(warmup)
        start, first = time.monotonic(), done[0]
        await asyncio.sleep(duration)
        rate = (done[0] - first) / (time.monotonic() - start)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return rate
    finally:
        for session in sessions:
            await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="davserver-bench-hosts-"))
    cluster = Cluster()
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, float, float]] = []
    try:
        cluster.start()
        setups: list[tuple[str, list[str | None]]] = [
            ("1 process, SQLite", [None]),
            ("1 process, PostgreSQL", [cluster.new_database()]),
        ]
        url = cluster.new_database()
        setups.append(("2 hosts, PostgreSQL", [url, url]))
        for n, (name, urls) in enumerate(setups):
            data = tmp / f"data{n}"
            data.mkdir()
            bases = []
            for h, state in enumerate(urls):
                proc, base = start(tmp / f"setup{n}-host{h}", data, state)
                procs.append(proc)
                bases.append(base)
            rates = [
                asyncio.run(measure(bases, work, args.clients, args.warmup, args.duration))
                for work in (put, cycle)
            ]
            rows.append((name, rates[0], rates[1]))
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            procs.clear()
    finally:
        for proc in procs:
            proc.kill()
        cluster.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.clients} clients, {args.duration:g} s each (after {args.warmup:g} s), "
          f"{os.cpu_count()} CPUs shared with the load\n")  # fmt: skip
    print("| set-up | PUT/s | LOCK+PUT+UNLOCK cycles/s |")
    print("|---|---:|---:|")
    for name, puts, cycles in rows:
        print(f"| {name} | {puts:.0f} | {cycles:.0f} |")


if __name__ == "__main__":
    main()
