"""Soak benchmark: minutes of mixed WebDAV load with faults against one davserver.

Usage: .venv/bin/python bench/soak.py [--duration 300] [--connections 32]
                                      [--backend filesystem|git] [--seed 1]

It starts `python -m davserver serve` (this interpreter's davserver, so the project's venv)
in a fresh temporary folder with one WebDAV mount at / on the chosen backend, on a free
loopback port, and creates /soak/d0/ .. /soak/d3/ holding 8 files per client. Then
``--connections`` clients, each one keep-alive connection and its own seeded RNG, run for
``--duration`` seconds a mix of 40 % GET, 30 % PUT (0 B to 1 MiB, a quarter chunked, some
with If-Match), 15 % PROPFIND (Depth 0 and 1), 10 % LOCK + PUT with the token + UNLOCK
(sometimes with a PUT without the token, which must get 423) and 5 % faults on raw sockets:
uploads cut off in the middle (Content-Length or chunked, closed with FIN or RST), answers
not read (GET, PROPFIND, a whole PUT), request headers cut off.

Each client alone writes its own 8 files, and it is sequential, so the bytes of the last
PUT it got 201/204 for are what every GET of its own must return (an upload cut off must
leave the previous bytes); any client may read anyone's file and must then see bytes that
were sent whole to it. A PUT whose answer was not read has an unknown outcome: its client
does not write that file for 5 s, after which the file must hold either the old or the new
bytes, and what it holds is the truth from then on.

At the end it stops the load, GETs every file and compares it with the last successful
PUT, checks that a PROPFIND Depth infinity lists exactly the expected names (no temporary
files) with the expected ETags and lengths and no lock left, that the folder on disk holds
nothing else (filesystem backend), that the server still answers and that it logged no
error, and compares the server's resident memory (its workers' included) at the end of
the load with the memory after the first minute (at most +10 %). It prints the figures,
writes them to bench/results/soak-YYYYmmdd-HHMMSS/ (summary.json, table.md, server.log)
and exits 1 when a check fails. Only loopback traffic; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from webdav import table  # bench/ is on sys.path: this script runs as bench/soak.py

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FOLDERS = 4
FILES_PER_CLIENT = 8
# operation -> weight (percent)
MIX = {"GET": 40, "PUT": 30, "PROPFIND": 15, "LOCK": 10, "fault": 5}
MEMORY_LIMIT = 1.10  # RSS at the end / RSS after the first minute
BASELINE_S = 60.0  # "after the first minute"
SAMPLE_EVERY_S = 2.0
SETTLE_S = 5.0  # how long a PUT whose answer was not read may still take to land
REQUEST_TIMEOUT_S = 60.0
MAX_EXAMPLES = 25  # failures described in the report, at most
EXAMPLES_PER_CHECK = 3
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:getetag/><D:getcontentlength/><D:resourcetype/><D:lockdiscovery/>"
    b"</D:prop></D:propfind>\n"
)
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner><D:href>soak-client-{n}</D:href></D:owner></D:lockinfo>\n"
)
XML = {"Content-Type": "application/xml; charset=utf-8"}


# ---------------------------------------------------------------- state and figures


@dataclass(eq=False)
class FileState:
    """What a file's owner knows about it."""

    url: str  # percent-encoded URL path
    sha: str  # sha256 of the bytes of the last successful PUT
    size: int
    etag: str | None  # from that PUT's answer (None when not known)
    sent: set[str] = field(default_factory=set)  # every body sent whole and not refused
    maybe: tuple[str, int] | None = None  # (sha, size) of a PUT with an unknown outcome
    settle_at: float = 0.0  # until then that PUT may still land: its owner does not write

    def writable(self, now: float) -> bool:
        """Whether the owner may write it now (no PUT of unknown outcome pending)."""
        return self.maybe is None or now >= self.settle_at


@dataclass
class Stats:
    """Everything counted during the run."""

    ops: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)  # how often each check ran
    outcomes: Counter[str] = field(default_factory=Counter)  # of PUTs with unknown outcomes
    failures: Counter[str] = field(default_factory=Counter)  # how often each check failed
    latencies: dict[str, list[float]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    running: bool = False  # requests are counted while the load runs only

    def request(self, method: str, status: int | str, seconds: float) -> None:
        """Count one request of the load (its status, or the client exception's name)."""
        if not self.running:
            return
        self.requests[method] += 1
        self.statuses[f"{method} {status}"] += 1
        self.latencies.setdefault(method, []).append(seconds)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        """Count one run of a check; remember the first failures' details."""
        self.checks[name] += 1
        if not ok:
            self.fail(name, detail)
        return ok

    def fail(self, name: str, detail: str) -> None:
        """Count a failure of a check and keep an example."""
        self.failures[name] += 1
        if self.failures[name] <= EXAMPLES_PER_CHECK and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"t={time.monotonic() - self.started:6.1f}s {name}: {detail}")


@dataclass
class Sample:
    """The server process at one moment of the run."""

    t: float  # seconds since the load started
    rss_kib: int
    threads: int
    fds: int
    requests: int  # requests sent so far
    cpu_s: float  # server CPU time so far


@dataclass
class Answer:
    """A complete HTTP answer."""

    status: int
    body: bytes
    headers: Mapping[str, str]


# ---------------------------------------------------------------- helpers


def sha(data: bytes) -> str:
    """Hex sha256 of data."""
    return hashlib.sha256(data).hexdigest()


def url_path(href: str) -> str:
    """The decoded path of an href, without a trailing slash."""
    return unquote(urlsplit(href).path).rstrip("/")


def parse_multistatus(body: bytes) -> dict[str, dict[str, ET.Element]] | None:
    """Decoded path -> {property name: element} of the 200 propstats (None: not XML)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    out: dict[str, dict[str, ET.Element]] = {}
    for resp in root.iter("{DAV:}response"):
        props: dict[str, ET.Element] = {}
        for ps in resp.iter("{DAV:}propstat"):
            if " 200 " in (ps.findtext("{DAV:}status") or ""):
                props.update((p.tag, p) for prop in ps.iter("{DAV:}prop") for p in prop)
        out[url_path(resp.findtext("{DAV:}href") or "")] = props
    return out


def etag_and_length(props: Mapping[str, ET.Element]) -> tuple[str | None, str | None]:
    """getetag and getcontentlength of one PROPFIND response (None when not there)."""
    etag, length = props.get("{DAV:}getetag"), props.get("{DAV:}getcontentlength")
    return (None if etag is None else etag.text, None if length is None else length.text)


def body_of(rng: random.Random) -> bytes:
    """A random body: 10 % up to 16 B (empty too), 40 % up to 16 KiB, 25 % up to 256 KiB
    (the server's one-step limit), 25 % up to 1 MiB."""
    r = rng.random()
    top = 16 if r < 0.1 else 16 << 10 if r < 0.5 else 256 << 10 if r < 0.75 else 1 << 20
    return rng.randbytes(rng.randint(0, top))


async def chunks(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    """data in random pieces (aiohttp sends an async iterator chunked)."""
    pos = 0
    while pos < len(data):
        step = rng.randint(1 << 10, 128 << 10)
        yield data[pos : pos + step]
        pos += step


def proc_sample(pid: int, t: float, requests: int) -> Sample | None:
    """RSS, threads, open descriptors and CPU time of a server process and its children
    (davserver's workers) added up; None when it is gone."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    rss = threads = fds = 0
    cpu = 0.0
    for one in [pid, *map(int, children)]:
        try:
            status = Path(f"/proc/{one}/status").read_text()
            fds += len(os.listdir(f"/proc/{one}/fd"))
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a worker that just exited
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(values["VmRSS"].split()[0])
        threads += int(values["Threads"])
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return Sample(round(t, 1), rss, threads, fds, requests, cpu)


# ---------------------------------------------------------------- one client


class Client:
    """One connection's worth of load: a sequential loop of operations with its own RNG,
    writing only its own files."""

    def __init__(
        self, n: int, port: int, files: list[list[FileState]], stats: Stats, seed: int
    ) -> None:
        self.n = n
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.files = files  # every client's files; files[n] are this one's
        self.mine = files[n]
        self.stats = stats
        self.rng = random.Random(f"{seed}-{n}")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        """Close the client's connection."""
        await self.session.close()

    async def call(
        self,
        method: str,
        url: str,
        expect: tuple[int, ...],
        headers: Mapping[str, str] | None = None,
        data: bytes | AsyncIterator[bytes] | None = None,
    ) -> Answer | None:
        """One request; an unexpected status or a client error counts as a failure.
        None when no answer came."""
        t0 = time.monotonic()
        try:
            async with self.session.request(
                method, self.base + url, headers=headers, data=data
            ) as resp:
                answer = Answer(resp.status, await resp.read(), resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.request(method, type(exc).__name__, time.monotonic() - t0)
            self.stats.fail("client errors (disconnects, timeouts)", f"{method} {url}: {exc!r}")
            return None
        self.stats.request(method, answer.status, time.monotonic() - t0)
        self.stats.check(
            "statuses as expected",
            answer.status in expect,
            f"{method} {url} -> {answer.status} (expected {expect}): {answer.body[:300]!r}",
        )
        return answer

    async def run(self, deadline: float) -> None:
        """Operations until the deadline."""
        ops, weights = list(MIX), list(MIX.values())
        while time.monotonic() < deadline:
            op = self.rng.choices(ops, weights)[0]
            writable = [f for f in self.mine if f.writable(time.monotonic())]
            if op in ("PUT", "LOCK") and not writable:
                op = "GET"  # every file has a PUT of unknown outcome pending (rare)
            self.stats.ops[op] += 1
            if op == "GET":
                await self.get()
            elif op == "PUT":
                await self.put(self.rng.choice(writable))
            elif op == "PROPFIND":
                await self.propfind()
            elif op == "LOCK":
                await self.lock(self.rng.choice(writable))
            else:
                await self.fault(self.rng.choice(writable) if writable else None)

    # ------------------------------------------------ reads

    def check_own(self, f: FileState, data: bytes, etag: str | None, check: str) -> None:
        """The owner read its file: the last successful PUT's bytes, or those of a PUT with
        an unknown outcome, which then become the truth."""
        got = sha(data)
        landed = f.maybe is not None and got == f.maybe[0]
        pending = f" (or {f.maybe[0][:12]}, unknown outcome)" if f.maybe else ""
        ok = self.stats.check(
            check,
            got == f.sha or landed,
            f"{f.url}: {len(data)} bytes {got[:12]}, last PUT {f.size} bytes {f.sha[:12]}"
            + pending,
        )
        if landed:
            f.sha, f.size, f.etag, f.maybe = got, len(data), etag, None
            self.stats.outcomes["landed"] += 1
        elif ok and f.maybe is not None:
            if time.monotonic() >= f.settle_at:
                f.maybe = None
                self.stats.outcomes["did not land"] += 1
        elif ok and f.etag is not None:
            self.stats.check(
                "ETag of GET = ETag of the last PUT", etag == f.etag, f"{f.url}: {etag} != {f.etag}"
            )

    async def get(self) -> None:
        """GET one of this client's files (50 %) or anyone's."""
        own = self.rng.random() < 0.5
        owner = self.n if own else self.rng.randrange(len(self.files))
        f = self.rng.choice(self.files[owner])
        answer = await self.call("GET", f.url, (200,))
        if answer is None or answer.status != 200:
            return
        if own:
            self.check_own(f, answer.body, answer.headers.get("ETag"), "owner GET = last PUT")
        else:
            got = sha(answer.body)
            self.stats.check(
                "reader GET = bytes sent whole",
                got in f.sent,
                f"{f.url}: {len(answer.body)} bytes {got[:12]} were never sent whole",
            )

    async def propfind(self) -> None:
        """PROPFIND Depth 0 of an own file (checked against the last PUT) or of anything,
        or Depth 1 of a folder (checked: exactly the expected members)."""
        r = self.rng.random()
        if r < 0.6:
            own = r < 0.4
            f = self.rng.choice(self.mine if own else self.rng.choice(self.files))
            answer = await self.call(
                "PROPFIND", f.url, (207,), {**XML, "Depth": "0"}, PROPFIND_BODY
            )
            if answer is None or answer.status != 207:
                return
            found = parse_multistatus(answer.body) or {}
            if not self.stats.check(
                "PROPFIND answers", list(found) == [unquote(f.url)], f"{f.url}: {list(found)}"
            ):
                return
            if own and f.maybe is None:
                got = etag_and_length(found[unquote(f.url)])
                self.stats.check(
                    "PROPFIND Depth 0 = last PUT (ETag, length)",
                    got == (f.etag, str(f.size)) or (f.etag is None and got[1] == str(f.size)),
                    f"{f.url}: {got}, last PUT {(f.etag, f.size)}",
                )
            return
        k = self.rng.randrange(FOLDERS)
        folder = f"/soak/d{k}"
        answer = await self.call(
            "PROPFIND", folder + "/", (207,), {**XML, "Depth": "1"}, PROPFIND_BODY
        )
        if answer is None or answer.status != 207:
            return
        found = set(parse_multistatus(answer.body) or {})
        want = {folder} | {
            unquote(f.url) for fs in self.files for f in fs if f.url.startswith(folder + "/")
        }
        self.stats.check(
            "PROPFIND Depth 1 lists exactly the files",
            found == want,
            f"{folder}/: extra {sorted(found - want)[:5]}, missing {sorted(want - found)[:5]}",
        )

    # ------------------------------------------------ writes

    def landed(self, f: FileState, data: bytes, answer: Answer) -> None:
        """A PUT of data got 201/204: its bytes are the file's truth."""
        f.sha, f.size, f.etag, f.maybe = sha(data), len(data), answer.headers.get("ETag"), None

    def unknown(self, f: FileState, data: bytes) -> None:
        """A PUT of data has an unknown outcome (no answer, or a 5xx)."""
        f.maybe, f.settle_at = (sha(data), len(data)), time.monotonic() + SETTLE_S

    async def put_body(
        self, f: FileState, data: bytes, headers: dict[str, str], expect: tuple[int, ...]
    ) -> Answer | None:
        """PUT data to an own file (a quarter chunked) and track what the file now holds."""
        digest = sha(data)
        f.sent.add(digest)
        chunked = self.rng.random() < 0.25
        answer = await self.call(
            "PUT", f.url, expect, headers, chunks(data, self.rng) if chunked else data
        )
        if answer is not None and answer.status in (201, 204):
            self.landed(f, data, answer)
        elif answer is None or answer.status >= 500:
            self.unknown(f, data)
        elif digest != f.sha:
            f.sent.discard(digest)  # refused: nobody may ever see these bytes
        return answer

    async def put(self, f: FileState) -> None:
        """PUT a random body; 15 % with If-Match: the ETag of the last PUT."""
        headers = {"Content-Type": "application/octet-stream"}
        if f.etag is not None and f.maybe is None and self.rng.random() < 0.15:
            headers["If-Match"] = f.etag
            self.stats.ops["PUT with If-Match"] += 1
        await self.put_body(f, body_of(self.rng), headers, (204,))

    async def lock(self, f: FileState) -> None:
        """LOCK an own file, (30 %: PUT without the token: 423), PUT with it, UNLOCK."""
        answer = await self.call(
            "LOCK",
            f.url,
            (200,),
            {**XML, "Depth": "0", "Timeout": "Second-60"},
            LOCK_BODY.format(n=self.n).encode(),
        )
        token = answer.headers.get("Lock-Token", "") if answer else ""
        if not (answer and answer.status == 200 and token.startswith("<")):
            return
        try:
            if self.rng.random() < 0.3:
                refused = await self.put_body(f, body_of(self.rng), {}, (423,))
                if refused is not None:
                    self.stats.check(
                        "PUT without the lock token refused (423)",
                        refused.status == 423,
                        f"{f.url} -> {refused.status}",
                    )
            await self.put_body(f, body_of(self.rng), {"If": f"({token})"}, (204,))
        finally:
            await self.call("UNLOCK", f.url, (204,), {"Lock-Token": token})

    # ------------------------------------------------ faults

    async def raw(self, data: bytes, *, read: int = 0, rst: bool = False) -> None:
        """Send data on a new connection, read up to ``read`` bytes of the answer, close
        (with an RST when ``rst``)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            if read:
                await asyncio.wait_for(reader.read(read), 30)
            await asyncio.sleep(self.rng.random() * 0.05)  # let the server get going
        finally:
            if rst:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def head(self, method: str, url: str, extra: str = "") -> bytes:
        """A request head."""
        return f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{extra}\r\n".encode()

    async def fault(self, f: FileState | None) -> None:
        """One fault on a raw connection (cut uploads need a writable own file ``f``)."""
        kinds = ["GET answer not read", "PROPFIND answer not read", "request head cut off"]
        if f is not None:
            kinds += ["upload cut off (Content-Length)", "upload cut off (chunked)"] * 2
            kinds += ["PUT answer not read"]
        kind = self.rng.choice(kinds)
        rst = self.rng.random() < 0.5
        self.stats.faults[kind + (" RST" if rst else " FIN")] += 1
        self.stats.requests["fault"] += 1
        try:
            await asyncio.wait_for(self.inject(kind, f, rst), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.stats.fail("fault injection errors", f"{kind}: {exc!r}")
        if kind.startswith("upload") and f is not None:
            answer = await self.call("GET", f.url, (200,))
            if answer is not None and answer.status == 200:
                self.check_own(
                    f, answer.body, answer.headers.get("ETag"), "after a cut upload: old bytes"
                )

    async def inject(self, kind: str, f: FileState | None, rst: bool) -> None:
        """Do the fault ``kind``."""
        rng = self.rng
        if kind == "GET answer not read":
            g = rng.choice(rng.choice(self.files))
            await self.raw(self.head("GET", g.url), read=rng.choice((0, 1, 1000)), rst=rst)
        elif kind == "PROPFIND answer not read":
            head = self.head(
                "PROPFIND",
                f"/soak/d{rng.randrange(FOLDERS)}/",
                f"Depth: 1\r\nContent-Length: {len(PROPFIND_BODY)}\r\n",
            )
            await self.raw(head + PROPFIND_BODY, read=rng.choice((0, 1, 500)), rst=rst)
        elif kind == "request head cut off":
            head = self.head("PUT", rng.choice(rng.choice(self.files)).url, "Content-Length: 9\r\n")
            await self.raw(head[: rng.randrange(1, len(head) - 2)], rst=rst)
        elif kind == "PUT answer not read":
            assert f is not None
            data = rng.randbytes(rng.randint(0, 64 << 10))
            f.sent.add(sha(data))
            self.unknown(f, data)
            await self.raw(
                self.head("PUT", f.url, f"Content-Length: {len(data)}\r\n") + data, rst=rst
            )
        else:
            assert f is not None
            data = rng.randbytes(rng.randint(64 << 10, 1 << 20))
            cut = rng.randrange(len(data))
            if kind == "upload cut off (chunked)":
                parts, pos = [], 0
                while pos < cut:
                    step = min(rng.randint(1, 64 << 10), cut - pos)
                    parts.append(b"%x\r\n%s\r\n" % (step, data[pos : pos + step]))
                    pos += step
                head = self.head("PUT", f.url, "Transfer-Encoding: chunked\r\n")
                await self.raw(head + b"".join(parts), rst=rst)
            else:
                head = self.head("PUT", f.url, f"Content-Length: {len(data)}\r\n")
                await self.raw(head + data[:cut], rst=rst)


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    """The davserver process under test."""

    backend: str
    tmp: Path
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        """The folder served (filesystem backend)."""
        return self.tmp / "root"

    def start(self) -> None:
        """Start it on a free loopback port and wait (30 s at most) until it answers."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        store = (
            f'root = "{self.root}"'
            if self.backend == "filesystem"
            else f'backend = "git"\nrepo = "{self.tmp / "store.git"}"'
        )
        config = self.tmp / "davserver.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nstate_dir = "{self.tmp / "state"}"\n'
            f'access_log = false\n\n[[mounts]]\npath = "/"\ntype = "webdav"\n{store}\n'
            "depth_infinity = true\n"
        )
        cmd = [
            sys.executable,
            "-m",
            "davserver",
            "serve",
            "--config",
            str(config),
            "--port",
            str(self.port),
            "--log-level",
            "INFO",
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"davserver did not start (see {self.log})")
            time.sleep(0.1)

    def answers(self) -> bool:
        """Whether OPTIONS / gets 200 within 10 s."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def settle(self, limit: float = 30.0) -> None:
        """Wait until the server uses under 10 % of a core over 0.5 s (``limit`` s at most)."""
        assert self.proc is not None
        end = time.monotonic() + limit
        prev = proc_sample(self.proc.pid, 0, 0)
        while prev is not None and time.monotonic() < end:
            time.sleep(0.5)
            cur = proc_sample(self.proc.pid, 0, 0)
            if cur is None or cur.cpu_s - prev.cpu_s < 0.05:
                return
            prev = cur

    def stop(self) -> int | None:
        """Stop it by its PID (TERM, KILL after 40 s); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        return proc.returncode


# ---------------------------------------------------------------- the run


def make_files(clients: int) -> list[list[FileState]]:
    """Each client's files: 8 each, two per folder; one name per client needs encoding."""
    files = []
    for n in range(clients):
        mine = []
        for i in range(FILES_PER_CLIENT):
            name = f"c{n:02d}-{i}.bin" if i < FILES_PER_CLIENT - 1 else f"c{n:02d} é-{i}.bin"
            mine.append(FileState(f"/soak/d{i % FOLDERS}/{quote(name)}", "", 0, None))
        files.append(mine)
    return files


async def fixtures(port: int, files: list[list[FileState]], stats: Stats, seed: int) -> None:
    """Create the folders and every file (201 each), one connection per client."""
    clients = [Client(n, port, files, stats, seed) for n in range(len(files))]

    async def fill(c: Client) -> None:
        """PUT a first body to each of the client's files."""
        for f in c.mine:
            await c.put_body(f, body_of(c.rng), {}, (201,))

    try:
        for url in ["/soak/", *(f"/soak/d{k}/" for k in range(FOLDERS))]:
            await clients[0].call("MKCOL", url, (201,))
        if not stats.failures:
            await asyncio.gather(*(fill(c) for c in clients))
    finally:
        for c in clients:
            await c.close()
    if stats.failures:
        raise SystemExit("fixtures failed:\n" + "\n".join(stats.examples))


async def load(
    server: Server, files: list[list[FileState]], stats: Stats, args: argparse.Namespace
) -> list[Sample]:
    """Run the clients for the duration while sampling the server; the samples (the last
    one taken as the load stops)."""
    assert server.proc is not None
    pid = server.proc.pid
    clients = [Client(n, server.port, files, stats, args.seed) for n in range(len(files))]
    samples: list[Sample] = []
    stats.started = t0 = time.monotonic()
    stats.running = True
    deadline = t0 + args.duration

    def sample() -> None:
        """Record the server's state now."""
        s = proc_sample(pid, time.monotonic() - t0, stats.requests.total())
        if s is not None:
            samples.append(s)

    async def sampler() -> None:
        """Sample every SAMPLE_EVERY_S; print a line each minute."""
        minute = 60
        while True:
            sample()
            t = samples[-1].t if samples else 0
            if t >= minute:
                last = samples[-1]
                print(
                    f"  {last.t:5.0f} s: {last.requests:,} requests, RSS "
                    f"{last.rss_kib / 1024:.1f} MiB",
                    flush=True,
                )
                minute += 60
            await asyncio.sleep(SAMPLE_EVERY_S)

    task = asyncio.create_task(sampler())
    try:
        runs = asyncio.gather(*(c.run(deadline) for c in clients))
        # Every request is bounded by REQUEST_TIMEOUT_S (an operation makes 4 at most).
        await asyncio.wait_for(runs, args.duration + 5 * REQUEST_TIMEOUT_S)
    except TimeoutError:
        stats.fail("clients stop in time", "a client was still running long after the end")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sample()
        stats.running = False
        for c in clients:
            await c.close()
    return samples


async def final_checks(server: Server, files: list[list[FileState]], stats: Stats) -> None:
    """Every file's bytes, the names, ETags and lengths a PROPFIND Depth infinity shows,
    no lock left, and (filesystem) nothing else on disk."""
    checker = Client(0, server.port, files, stats, 0)
    try:
        for fs in files:
            for f in fs:
                answer = await checker.call("GET", f.url, (200,))
                if answer is not None and answer.status == 200:
                    checker.check_own(
                        f, answer.body, answer.headers.get("ETag"), "final: bytes = last PUT"
                    )
        answer = await checker.call(
            "PROPFIND", "/soak/", (207,), {**XML, "Depth": "infinity"}, PROPFIND_BODY
        )
        found = parse_multistatus(answer.body) if answer and answer.status == 207 else None
        if found is None:
            stats.fail("final: PROPFIND Depth infinity", "no multistatus")
            return
        by_path = {unquote(f.url): f for fs in files for f in fs}
        want = {"/soak", *(f"/soak/d{k}" for k in range(FOLDERS)), *by_path}
        stats.check(
            "final: PROPFIND Depth infinity lists exactly the files",
            set(found) == want,
            f"extra {sorted(set(found) - want)[:5]}, missing {sorted(want - set(found))[:5]}",
        )
        for path, props in found.items():
            locks = props.get("{DAV:}lockdiscovery")
            stats.check(
                "final: no lock left",
                locks is None or locks.find("{DAV:}activelock") is None,
                f"{path} is still locked",
            )
            f = by_path.get(path)
            if f is not None and f.maybe is None:
                got = etag_and_length(props)
                stats.check(
                    "final: PROPFIND ETag and length = last PUT",
                    got[1] == str(f.size) and (f.etag is None or got[0] == f.etag),
                    f"{path}: {got}, last PUT {(f.etag, f.size)}",
                )
        if server.backend == "filesystem":
            on_disk = {"/" + str(p.relative_to(server.root)) for p in server.root.rglob("*")}
            stats.check(
                "final: nothing else on disk (no temporary files)",
                on_disk == want,
                f"extra {sorted(on_disk - want)[:5]}, missing {sorted(want - on_disk)[:5]}",
            )
    finally:
        await checker.close()


# ---------------------------------------------------------------- report


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of values (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def log_problems(log: Path) -> list[str]:
    """The server log's ERROR and CRITICAL lines and tracebacks."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return [ln for ln in lines if " ERROR " in ln or " CRITICAL " in ln or "Traceback" in ln]


def server_code() -> str:
    """Where the server's code comes from: the repository's commit (and how many files of
    davserver/ and backends/ have changes), or the folder PYTHONPATH leads to."""

    def run(*cmd: str) -> str:
        """What a command prints."""
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
        return done.stdout.strip()

    package = Path(run(sys.executable, "-c", "import davserver; print(davserver.__file__)")).parent
    if package != REPO / "davserver":
        return f"from {package}"
    git = ("git", "-C", str(REPO))
    changed = len(run(*git, "status", "--porcelain", "--", "davserver", "backends").splitlines())
    head = run(*git, "rev-parse", "--short", "HEAD")
    return head + (f" + {changed} changed files" if changed else "")


def report(
    args: argparse.Namespace,
    stats: Stats,
    samples: list[Sample],
    extra: dict[str, tuple[str, bool]],
) -> tuple[list[str], bool, dict[str, object]]:
    """The printed lines, whether every check passed, and the figures for summary.json."""
    end = samples[-1] if samples else None
    baseline_t = min(BASELINE_S, args.duration / 2)
    base = next((s for s in samples if s.t >= baseline_t), None)
    lines = [
        f"Timeline of the server (master and workers added up; a sample every {SAMPLE_EVERY_S:g} s"
        " in summary.json):"
    ]
    rows = [["t (s)", "requests", "req/s", "RSS MiB", "threads", "fds", "server CPU %"]]
    marks = [
        s
        for i, s in enumerate(samples)
        if i == 0 or s is end or s.t // 30 != samples[i - 1].t // 30
    ]
    for prev, s in zip([None, *marks], marks, strict=False):
        dt = s.t - prev.t if prev is not None else 0.0
        rate = f"{(s.requests - prev.requests) / dt:,.0f}" if prev and dt > 0 else "-"
        cpu = f"{100 * (s.cpu_s - prev.cpu_s) / dt:.0f}" if prev and dt > 0 else "-"
        rows.append(
            [
                f"{s.t:.0f}",
                f"{s.requests:,}",
                rate,
                f"{s.rss_kib / 1024:.1f}",
                str(s.threads),
                str(s.fds),
                cpu,
            ]
        )
    lines += table(rows)
    elapsed = end.t if end else args.duration
    total = stats.requests.total()
    lines += [
        "",
        f"Requests: {total:,} in {elapsed:.0f} s = {total / elapsed:,.0f} req/s "
        f"({args.connections} connections)",
    ]
    rows = [["request", "count", "p50 ms", "p99 ms", "max ms"]]
    for method in sorted(stats.latencies):
        lat = stats.latencies[method]
        rows.append(
            [
                method,
                f"{len(lat):,}",
                f"{1000 * percentile(lat, 0.5):.1f}",
                f"{1000 * percentile(lat, 0.99):.1f}",
                f"{1000 * max(lat):.1f}",
            ]
        )
    rows.append(["fault (raw socket)", f"{stats.requests['fault']:,}", "-", "-", "-"])
    lines += table(rows)
    lines += ["", "Operations: " + ", ".join(f"{k} {v:,}" for k, v in stats.ops.most_common())]
    lines += ["Statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stats.statuses.items()))]
    lines += [
        "Faults injected: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stats.faults.items()))
    ]

    rows = [["check", "figure", "verdict"]]
    ok = True

    def verdict(name: str, figure: str, passed: bool) -> None:
        """Add a row of the checks table."""
        nonlocal ok
        ok = ok and passed
        rows.append([name, figure, "PASS" if passed else "FAIL"])

    for name in sorted(stats.checks.keys() | stats.failures.keys()):
        n, bad = stats.checks.get(name, stats.failures[name]), stats.failures[name]
        verdict(name, f"{n:,} checked, {bad:,} failed", bad == 0)
    outcomes = f"{stats.outcomes['landed']:,} landed, {stats.outcomes['did not land']:,} did not"
    rows.append(["PUTs with an unknown outcome (answer not read, 5xx)", outcomes, "-"])
    for name, (figure, passed) in extra.items():
        verdict(name, figure, passed)
    if base and end and base is not end:
        ratio = end.rss_kib / base.rss_kib
        figure = (
            f"after {base.t:.0f} s {base.rss_kib / 1024:.1f} MiB, at the end ({end.t:.0f} s) "
            f"{end.rss_kib / 1024:.1f} MiB: {ratio:.3f}x (limit {MEMORY_LIMIT:.2f}x)"
        )
        verdict("memory: RSS at the end / after the first minute", figure, ratio <= MEMORY_LIMIT)
    else:
        ratio = None
        verdict("memory: RSS at the end / after the first minute", "no samples", False)
    lines += ["", *table(rows)]
    if stats.examples:
        lines += ["", "First failures:", *(f"  {e}" for e in stats.examples)]
    figures = {
        "requests": total,
        "req_per_s": total / elapsed,
        "rss_baseline_kib": base.rss_kib if base else None,
        "rss_baseline_t": base.t if base else None,
        "rss_end_kib": end.rss_kib if end else None,
        "rss_peak_kib": max(s.rss_kib for s in samples) if samples else None,
        "rss_ratio": ratio,
        "checks": rows[1:],
    }
    return lines, ok, figures


# ---------------------------------------------------------------- main


def on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into SystemExit, so that the server gets stopped."""
    raise SystemExit(128 + signum)


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load (300)")
    ap.add_argument("--connections", type=int, default=32, help="concurrent clients (32)")
    ap.add_argument("--backend", choices=("filesystem", "git"), default="filesystem")
    ap.add_argument("--seed", type=int, default=1, help="seed of the clients' RNGs (1)")
    args = ap.parse_args()
    if args.duration < 2 or args.connections < 1:
        ap.error("--duration must be >= 2 and --connections >= 1")
    return args


def main() -> int:
    """Start the server, load it, check, report; 1 when a check failed."""
    args = parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    results = BENCH / "results" / time.strftime("soak-%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="davsoak-"))
    server = Server(args.backend, tmp, results / "server.log")
    stats = Stats()
    files = make_files(args.connections)
    header = [
        f"soak: {args.backend} backend, {args.connections} connections, {args.duration:g} s, "
        f"seed {args.seed}; davserver {server_code()}, Python {sys.version.split()[0]}, "
        f"aiohttp {aiohttp.__version__}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start",
    ]
    print(header[0], flush=True)
    extra: dict[str, tuple[str, bool]] = {}
    samples: list[Sample] = []
    try:
        server.start()
        assert server.proc is not None
        print(
            f"  davserver pid {server.proc.pid} at http://127.0.0.1:{server.port}/, data in {tmp}",
            flush=True,
        )
        asyncio.run(fixtures(server.port, files, stats, args.seed))
        samples = asyncio.run(load(server, files, stats, args))
        print("  load stopped; final checks", flush=True)
        server.settle()
        time.sleep(SETTLE_S)  # any PUT of unknown outcome has landed by now, or never will
        asyncio.run(final_checks(server, files, stats))
        alive = server.proc.poll() is None and server.answers()
        extra["server answers after the load"] = ("OPTIONS / -> 200" if alive else "no", alive)
    finally:
        code = server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    extra["server stops cleanly (SIGTERM)"] = (f"exit code {code}", code == 0)
    problems = log_problems(server.log)
    extra["server log: no ERROR line, no traceback"] = (f"{len(problems)} lines", not problems)
    lines, ok, figures = report(args, stats, samples, extra)
    if problems:
        lines += ["", "Server log problems (first 20):", *(f"  {p}" for p in problems[:20])]
    text = "\n".join(["", *lines, "", f"RESULT: {'PASS' if ok else 'FAIL'}"])
    print(text)
    (results / "table.md").write_text("\n".join(header) + "\n" + text + "\n")
    summary = {
        "header": header,
        "args": vars(args),
        "passed": ok,
        **figures,
        "ops": stats.ops,
        "statuses": stats.statuses,
        "faults": stats.faults,
        "check_runs": stats.checks,
        "unknown_outcomes": stats.outcomes,
        "check_failures": stats.failures,
        "examples": stats.examples,
        "samples": [vars(s) for s in samples],
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nsummary.json, table.md, server.log: {results.relative_to(REPO)}/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
