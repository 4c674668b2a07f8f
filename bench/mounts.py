"""Static and WSGI mounts against their peers: requests/s ratios from one run.

Usage: python3 bench/mounts.py [--duration S] [--warmup S] [--rounds N] [--connections N]

In one run it starts, each on a free loopback port:
- davserver (``.venv/bin/davserver``) with a static mount of a folder holding a 4 KiB file
  and a WSGI mount of the hello-world application ``app`` defined in this file;
- the bare aiohttp app (``bench/bare_aiohttp.py``), answering the same 4096 bytes from memory;
- nginx (one foreground master, ``worker_processes auto``) serving the same file;
- gunicorn with one sync worker serving the same hello-world application.
It checks every answer once, then measures each with wrk (1 thread, 16 connections; servers
interleaved in every round, in turn forwards and backwards) and prints requests/s, the median
of the per-round ratios and PASS/FAIL for the floors: static >= 0.8x bare aiohttp,
WSGI >= 1.0x gunicorn (the nginx ratio is reported as it is). It installs what it needs
itself: wrk and nginx with apt-get, gunicorn into bench/.venv-mounts. A benchmark, not a
test: the exit code is 0 even when a floor fails. Every process it starts is stopped by
its PID; only loopback traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv-mounts"
GUNICORN_VERSION = "23.0.0"
BODY_4K = b"x" * 4096  # what bare_aiohttp.py answers, so the file holds the same bytes
HELLO = b"Hello, World!\n"
# (label, server measured, reference server, floor or None when reported as is)
COMPARISONS = (
    ("static GET 4 KiB", "davserver-static", "aiohttp-bare", 0.8),
    ("static GET 4 KiB", "davserver-static", "nginx", None),
    ("WSGI hello world", "davserver-wsgi", "gunicorn-sync", 1.0),
)


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    """The WSGI hello-world both davserver and gunicorn serve."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


@dataclass
class Server:
    """One server under test and the URL measured on it."""

    name: str
    cmd: list[str]
    path: str
    expect: bytes
    shares: str = ""  # the server whose process this one is (same davserver, other mount)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    problem: str = ""
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU time per request

    @property
    def url(self) -> str:
        """The URL wrk requests."""
        return f"http://127.0.0.1:{self.port}{self.path}"


# ---------------------------------------------------------------- setup


def sh(cmd: list[str]) -> int:
    """Run a command (15 minutes at most), echoing it first; its exit code."""
    print("+", shlex.join(cmd), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(cmd, env=env, check=False, timeout=900).returncode


def ensure_apt(binary: str, package: str) -> str | None:
    """The path of ``binary``, installing ``package`` with apt-get when it is missing."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if sh(install) != 0:
        sh(["apt-get", "update", "-qq"])
        sh(install)
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")


def ensure_gunicorn() -> Path | None:
    """bench/.venv-mounts/bin/gunicorn, creating the venv when needed."""
    gunicorn = VENV / "bin" / "gunicorn"
    if gunicorn.exists():
        return gunicorn
    if sh([sys.executable, "-m", "venv", str(VENV)]) != 0:
        return None
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    sh([*pip, "--disable-pip-version-check", f"gunicorn=={GUNICORN_VERSION}"])
    return gunicorn if gunicorn.exists() else None


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(tmp: Path, www: Path, port: int) -> Path:
    """A minimal nginx configuration serving ``www`` on a loopback port."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-tmp;
    proxy_temp_path {tmp}/nginx-tmp;
    fastcgi_temp_path {tmp}/nginx-tmp;
    uwsgi_temp_path {tmp}/nginx-tmp;
    scgi_temp_path {tmp}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ }}
    }}
}}
"""
    )
    return conf


def davserver_conf(tmp: Path, www: Path) -> Path:
    """davserver's configuration: the static folder and the hello-world application."""
    conf = tmp / "davserver.toml"
    conf.write_text(
        f"""[server]
access_log = false
state_dir = "{tmp}/state"

[[mounts]]
path = "/static"
type = "static"
root = "{www}"

[[mounts]]
path = "/app"
type = "wsgi"
app = "mounts:app"
pythonpath = ["{BENCH}"]
threads = 8
"""
    )
    return conf


def make_servers(tmp: Path, args: argparse.Namespace) -> list[Server]:
    """The servers of this run (those that cannot run carry a problem)."""
    www = tmp / "www"
    www.mkdir(parents=True)
    (www / "file4k.bin").write_bytes(BODY_4K)
    (tmp / "nginx-tmp").mkdir()
    # nginx's workers run as nobody: let them reach the file.
    for p in (tmp, www):
        p.chmod(0o755)
    davserver = REPO / ".venv" / "bin" / "davserver"
    python = REPO / ".venv" / "bin" / "python"
    dav_conf = davserver_conf(tmp, www)
    dav = [str(davserver), "serve", "--config", str(dav_conf), "--log-level", "WARNING"]
    servers = [
        Server("davserver-static", [*dav, "--port", "@PORT@"], "/static/file4k.bin", BODY_4K),
        Server("aiohttp-bare", [str(python), str(BENCH / "bare_aiohttp.py"), "--port", "@PORT@"],
               "/file4k.bin", BODY_4K),
        Server("nginx", [], "/file4k.bin", BODY_4K),
        Server("davserver-wsgi", [], "/app/", HELLO, shares="davserver-static"),
        Server("gunicorn-sync", [], "/", HELLO),
    ]  # fmt: skip
    if not davserver.exists():
        servers[0].problem = f"{davserver} is missing (run scripts/test or pip install -e .)"
    nginx = None if args.skip_nginx else ensure_apt("nginx", "nginx")
    if nginx:
        servers[2].cmd = [nginx, "-p", f"{tmp}/", "-c", "@CONF@", "-g", "daemon off;"]
    else:
        servers[2].problem = "nginx not available"
    gunicorn = ensure_gunicorn()
    if gunicorn:
        servers[4].cmd = [str(gunicorn), "--workers", "1", "--worker-class", "sync",
                          "--bind", "127.0.0.1:@PORT@", "--chdir", str(BENCH),
                          "--log-level", "warning", "mounts:app"]  # fmt: skip
    else:
        servers[4].problem = "gunicorn could not be installed"
    return servers


# ---------------------------------------------------------------- processes


def start(srv: Server, tmp: Path, port: int = 0) -> None:
    """Start a server on ``port`` (a free one when 0); wait until it answers the measured
    URL correctly."""
    if not srv.cmd:
        return
    srv.port = port or free_port()
    cmd = [a.replace("@PORT@", str(srv.port)) for a in srv.cmd]
    if "@CONF@" in cmd:
        cmd[cmd.index("@CONF@")] = str(nginx_conf(tmp, tmp / "www", srv.port))
    log = tmp / f"{srv.name}.log"
    print(f"starting {srv.name}: {shlex.join(cmd)}", flush=True)
    with log.open("wb") as out:
        srv.proc = subprocess.Popen(
            cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            srv.problem = f"exited with {srv.proc.returncode} at start (log: {log})"
            return
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        srv.problem = f"did not listen within 30 s (log: {log})"
        return
    srv.problem = check(srv)


def check(srv: Server) -> str:
    """What is wrong with the server's answer to the measured URL ("" when nothing is)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", srv.path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer: {exc}"
    if resp.status != 200 or body != srv.expect:
        return f"wrong answer: {resp.status}, {len(body)} bytes"
    return ""


def stop(srv: Server) -> None:
    """Stop a server by its PID: TERM, then KILL after 10 s."""
    proc = srv.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- measuring


def cpu_ticks(pid: int) -> int:
    """CPU ticks (user + system) used so far by ``pid`` and its live descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for tid in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
    return total


def wrk(srv: Server, seconds: float, connections: int) -> tuple[float, float, str]:
    """Requests/s of one wrk run, the server's CPU microseconds per request, and what went
    wrong ("" when nothing did)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", srv.url]
    pid = srv.proc.pid if srv.proc else 0
    ticks = cpu_ticks(pid)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    ticks = cpu_ticks(pid) - ticks
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", res.stdout, re.M)
    count = re.search(r"^\s*(\d+) requests in", res.stdout, re.M)
    if res.returncode != 0 or rps is None or count is None:
        return 0.0, 0.0, f"wrk failed: {res.stdout[-300:]}{res.stderr[-300:]}"
    cpu_us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(int(count.group(1)), 1)
    problems = []
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", res.stdout)
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx")
    errors = re.search(r"Socket errors: (.*)", res.stdout)
    # gunicorn's sync worker closes every connection: wrk counts those as read errors.
    if errors and srv.name != "gunicorn-sync":
        problems.append(f"socket errors: {errors.group(1)}")
    return float(rps.group(1)), cpu_us, ", ".join(problems)


def table(rows: list[list[str]]) -> str:
    """A Markdown table."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(servers: dict[str, Server], args: argparse.Namespace) -> str:
    """The tables of requests/s and of the ratios with their floors."""
    rows = [["server", "URL", "req/s (median)", "runs", "CPU µs/req", "problem"]]
    for srv in servers.values():
        runs = " ".join(f"{r:,.0f}" for r in srv.rps)
        median = f"{statistics.median(srv.rps):,.0f}" if srv.rps else "-"
        cpu = f"{statistics.median(srv.cpu_us):.1f}" if srv.cpu_us else "-"
        rows.append([srv.name, srv.path, median, runs, cpu, srv.problem or "-"])
    ratios = [["workload", "davserver", "reference", "ratio", "per round", "floor", "PASS/FAIL"]]
    for label, mine, ref, floor in COMPARISONS:
        a, b = servers[mine], servers[ref]
        wanted = "-" if floor is None else f">= {floor}x"
        if a.rps and b.rps and not a.problem and not b.problem:
            # Each round's pair ran back to back: its ratio is the least disturbed by
            # whatever else loads the machine, so the median of those is the result.
            rounds = [x / y for x, y in zip(a.rps, b.rps, strict=True)]
            ratio = statistics.median(rounds)
            verdict = "reported" if floor is None else "PASS" if ratio >= floor else "FAIL"
            each = " ".join(f"{r:.2f}" for r in rounds)
            cells = [f"{ratio:.2f}x", each, wanted, verdict]
        else:
            cells = ["-", "-", wanted, "not measured"]
        ratios.append([label, mine, ref, *cells])
    load = os.getloadavg()[0]
    return (
        f"{table(rows)}\n\n{table(ratios)}\n\n"
        f"wrk -t1 -c{args.connections}, {args.duration:g} s per run after a {args.warmup:g} s "
        f"warm-up, {args.rounds} round(s), servers interleaved; {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at the end. CPU µs/req: the server's processes' CPU time "
        "per request (all nginx workers, the gunicorn worker; the shared davserver process "
        "measured during its own runs only), less disturbed by other load than req/s"
    )


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (the median ratio is kept)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--skip-nginx", action="store_true", help="do not install or run nginx")
    return ap.parse_args()


def main() -> int:
    """Set up, measure, report; stop everything started."""
    args = parse_args()
    if not ensure_apt("wrk", "wrk"):
        sys.exit("wrk is missing and could not be installed")
    with tempfile.TemporaryDirectory(prefix="davbench-mounts-") as name:
        tmp = Path(name)
        servers = {s.name: s for s in make_servers(tmp, args)}
        try:
            for srv in servers.values():
                if srv.shares:
                    other = servers[srv.shares]
                    srv.port, srv.proc = other.port, other.proc
                    srv.problem = srv.problem or other.problem
                    srv.problem = srv.problem or check(srv)
                elif not srv.problem:
                    start(srv, tmp)
            live = [s for s in servers.values() if not s.problem]
            for srv in live:
                wrk(srv, args.warmup, args.connections)
            for i in range(args.rounds):
                for srv in live if i % 2 == 0 else live[::-1]:
                    rps, cpu_us, problem = wrk(srv, args.duration, args.connections)
                    srv.rps.append(rps)
                    srv.cpu_us.append(cpu_us)
                    srv.problem = srv.problem or problem
        finally:
            for srv in servers.values():
                stop(srv)
        print(report(servers, args), flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
