"""Stall benchmark: does a hostile PROPFIND hold up the other requests?

Usage: .venv/bin/python bench/stall.py [--duration 10] [--hostile 1]

It starts `python -m davserver serve` (this interpreter's davserver) in a fresh temporary
folder, with one worker process (with several, the GETs could land on a worker the
hostile requests do not hold: the stall of one event loop is what is measured) and one
WebDAV mount at / on the filesystem, holding a small file and two folders of 100 and
2,000 files. For each case, ``--hostile`` clients send the same PROPFIND
``Depth: 1`` of a folder over and over for ``--duration`` seconds, while one more client
GETs the small file in a loop on its own connection and records each GET's latency:

- ``repeat``: a 600 KB body naming one property 100,000 times (answered once per member);
- ``distinct``: 1,000 distinct properties (the most ``max_propfind_props`` allows), each
  answered 404 for each member: the largest answer a request may ask for.

A first case runs the GETs alone (the baseline). For each case it reports the GET latency
(p50, p99, max), the number of PROPFINDs answered, their mean wall time, and the server's
CPU time per PROPFIND (the CPU time of the process over the case, less what the GETs cost
in the baseline, divided by the PROPFINDs). The goal: GET p99 under 100 ms while the
hostile requests run. The machine's load average before and after is printed too: on a
shared machine, other work inflates every figure.

It is a benchmark, not a test: it asserts nothing and exits 0 unless the server fails.
Only loopback traffic; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

SMALL = b"hello\n" * 10
FOLDERS = (100, 2000)
GOAL_MS = 100.0


def body(kind: str) -> bytes:
    """The hostile PROPFIND body of ``kind`` (repeat or distinct)."""
    names = ["<x:a/>"] * 100_000 if kind == "repeat" else [f"<x:p{i}/>" for i in range(1000)]
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:x">'
        f"<D:prop>{''.join(names)}</D:prop></D:propfind>"
    ).encode()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Case:
    """One run: what the hostile clients sent, and what was measured."""

    name: str
    folder: int | None
    kind: str | None
    gets: list[float] = field(default_factory=list)  # seconds each
    propfinds: list[float] = field(default_factory=list)  # seconds each
    cpu: float = 0.0  # server CPU seconds over the case
    seconds: float = 0.0
    failures: int = 0


class Server:
    """The davserver process under test, serving ``root`` on a free loopback port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.tmp / "davserver.toml"
        config.write_text(
            f'[server]\nstate_dir = "{self.tmp / "state"}"\naccess_log = false\nworkers = 1\n\n'
            f'[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "{self.root}"\n'
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "davserver", "serve", "--config", str(config),
             "--port", str(self.port), "--log-level", "WARNING"],
            cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(self.tmp / "server.log").open("wb"), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("davserver did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


async def get_loop(url: str, duration: float) -> tuple[list[float], int]:
    """GET ``url`` every 5 ms or so (a client, not a load) for ``duration`` seconds: the
    latency of each, and how many failed."""
    latencies: list[float] = []
    failures = 0
    until = time.monotonic() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while time.monotonic() < until:
            start = time.perf_counter()
            async with session.get(url) as resp:
                data = await resp.read()
            latencies.append(time.perf_counter() - start)
            failures += resp.status != 200 or data != SMALL
            await asyncio.sleep(0.005)
    return latencies, failures


def get_client(url: str, duration: float) -> None:
    """The GET client, in a process of its own (so that reading the hostile answers in
    this one does not delay it): prints its latencies as JSON."""
    latencies, failures = asyncio.run(get_loop(url, duration))
    print(json.dumps({"latencies": latencies, "failures": failures}))


async def propfind_loop(
    session: aiohttp.ClientSession, url: str, data: bytes, case: Case, until: float
) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        async with session.request("PROPFIND", url, data=data, headers={"Depth": "1"}) as resp:
            async for _ in resp.content.iter_chunked(1 << 16):
                pass
        if resp.status != 207:
            case.failures += 1
        case.propfinds.append(time.perf_counter() - start)


async def run_case(server: Server, case: Case, duration: float, hostile: int) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert server.proc is not None
    getter = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--get-client", f"{base}/small.txt", "--duration", str(duration),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    until = time.monotonic() + duration
    # Each hostile client on a connection of its own.
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=300)
        )
        for _ in range(hostile)
    ]
    try:
        cpu = cpu_seconds(server.proc.pid)
        started = time.monotonic()
        if case.kind is not None:
            data = body(case.kind)
            url = f"{base}/f{case.folder}/"
            await asyncio.gather(*(propfind_loop(s, url, data, case, until) for s in sessions))
        out, _ = await getter.communicate()
        case.seconds = time.monotonic() - started
        case.cpu = cpu_seconds(server.proc.pid) - cpu
    finally:
        for s in sessions:
            await s.close()
    found = json.loads(out)
    case.gets = found["latencies"]
    case.failures += found["failures"]


def report(cases: list[Case], load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    base = cases[0]
    get_cpu = base.cpu / max(1, len(base.gets))  # server CPU per GET, from the baseline
    rows = [["case", "GETs", "GET p50 ms", "GET p99 ms", "GET max ms", "PROPFINDs",
             "PROPFIND mean ms", "CPU ms / PROPFIND", "failures"]]  # fmt: skip
    for c in cases:
        ms = [g * 1000 for g in c.gets]
        per = (c.cpu - get_cpu * len(c.gets)) / len(c.propfinds) * 1000 if c.propfinds else 0
        rows.append([
            c.name, str(len(c.gets)), f"{statistics.median(ms):.1f}",
            f"{percentile(ms, 0.99):.1f}", f"{max(ms):.1f}", str(len(c.propfinds)),
            f"{statistics.mean(c.propfinds) * 1000:.0f}" if c.propfinds else "-",
            f"{per:.0f}" if c.propfinds else "-", str(c.failures),
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    worst = max(percentile([g * 1000 for g in c.gets], 0.99) for c in cases)
    verdict = "met" if worst < GOAL_MS else "NOT met"
    before, after = load
    lines += [
        "",
        f"GET p99 goal {GOAL_MS:.0f} ms: {verdict} (worst p99 {worst:.1f} ms).",
        f"{os.cpu_count()} CPUs; load average before {before[0]:.2f} {before[1]:.2f} "
        f"{before[2]:.2f}, after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--hostile", type=int, default=1, help="PROPFIND clients at once")
    parser.add_argument("--get-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.get_client:
        get_client(args.get_client, args.duration)
        return 0
    return asyncio.run(run(args.duration, args.hostile))


async def run(duration: float, hostile: int) -> int:
    """Every case against one server; the report on stdout."""
    with tempfile.TemporaryDirectory(prefix="davserver-stall-") as tmp:
        server = Server(Path(tmp))
        server.root.mkdir()
        (server.root / "small.txt").write_bytes(SMALL)
        for n in FOLDERS:
            folder = server.root / f"f{n}"
            folder.mkdir()
            for i in range(n):
                (folder / f"file-{i:05d}.txt").write_bytes(b"x" * (i % 500))
        cases = [Case("GETs alone", None, None)]
        cases += [
            Case(f"{kind}, {n} files", n, kind) for kind in ("repeat", "distinct") for n in FOLDERS
        ]
        load_before = os.getloadavg()
        server.start()
        try:
            for case in cases:
                await run_case(server, case, duration, hostile)
                print(
                    f"{case.name}: {len(case.gets)} GETs, {len(case.propfinds)} PROPFINDs",
                    flush=True,
                )
        finally:
            server.stop()
        print()
        print(report(cases, (load_before, os.getloadavg())))
        return 1 if any(c.failures for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
