"""FastCGI and ASGI mounts against their peers: hello-world requests/s from one run.

Usage: python3 bench/apps.py [--duration S] [--warmup S] [--rounds N] [--connections N]

In one run it starts, each on a free loopback port:
- php-fpm (Debian's, unprivileged, in a temporary folder) with ``hello.php``, and in front
  of that same php-fpm: davserver (a fastcgi mount), nginx and lighttpd, each one process
  (davserver ``workers = 1``, nginx ``worker_processes 1``, lighttpd as it comes). Each
  front has a pool of its own in php-fpm (4 static children on its own Unix socket): a
  php-fpm child stays with a connection while it is open, so fronts that keep their
  connections (davserver ``pool_size = 4``; nginx ``fastcgi_keep_conn`` with an upstream
  ``keepalive 4``) would otherwise hold the children the others wait for;
- the ASGI hello-world ``asgi_app`` defined in this file, under davserver (an asgi mount,
  ``workers = 1``) and under uvicorn, one worker, both with uvloop and httptools (uvicorn's
  usual production set-up) and with asyncio and h11 (what a plain ``pip install uvicorn``
  runs).
It checks every answer once, then measures each with wrk (1 thread, 16 connections; servers
interleaved in every round, in turn forwards and backwards) and prints requests/s, the
server's CPU time per request and the median of the per-round ratios. It installs what it
needs itself: wrk, php-fpm, nginx and lighttpd with apt-get, uvicorn into
bench/.venv-mounts. A benchmark, not a test: it reports, it does not judge. Every process
it starts is stopped by its PID; only loopback traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mounts
from mounts import Server, check, ensure_apt, sh, start, stop, table, wrk

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
UVICORN = "uvicorn[standard]==0.54.0"
HELLO = b"Hello, World!\n"
PHP_FRONTS = ("davserver", "nginx", "lighttpd")  # each has its own php-fpm pool
PHP_HELLO = b"Hello from PHP!\n"
COMPARISONS = (
    ("PHP hello world (php-fpm)", "davserver-fastcgi", "nginx-fastcgi"),
    ("PHP hello world (php-fpm)", "davserver-fastcgi", "lighttpd-fastcgi"),
    ("ASGI hello world", "davserver-asgi", "uvicorn-uvloop-httptools"),
    ("ASGI hello world", "davserver-asgi", "uvicorn-asyncio-h11"),
)


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """The ASGI hello world davserver and uvicorn serve."""
    if scope["type"] != "http":
        return  # no lifespan: both servers go on without it
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"14")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO})


def php_fpm(tmp: Path) -> list[str] | None:
    """php-fpm's command line (its configuration written), or None when missing."""
    if not ensure_apt("php-fpm8.2", "php-fpm") and not list(Path("/usr/sbin").glob("php-fpm*")):
        return None
    binary = str(sorted(Path("/usr/sbin").glob("php-fpm*"))[-1])
    conf = tmp / "php-fpm.conf"
    pools = "".join(
        f"""[{front}]
listen = {tmp}/{front}.sock
listen.mode = 0666
pm = static
pm.max_children = 4
pm.max_requests = 0
"""
        for front in PHP_FRONTS
    )
    conf.write_text(
        f"""[global]
pid = {tmp}/php-fpm.pid
error_log = {tmp}/php-fpm.log
daemonize = no
{pools}"""
    )
    root = ["-R"] if os.geteuid() == 0 else []
    return [binary, "-F", "-n", "-y", str(conf), *root]


def nginx_conf(tmp: Path, port: int) -> Path:
    """nginx in front of php-fpm, one worker, connections to php-fpm kept open."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-tmp;
    proxy_temp_path {tmp}/nginx-tmp;
    fastcgi_temp_path {tmp}/nginx-tmp;
    uwsgi_temp_path {tmp}/nginx-tmp;
    scgi_temp_path {tmp}/nginx-tmp;
    upstream php {{ server unix:{tmp}/nginx.sock; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        location ~ \\.php$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_keep_conn on;
            fastcgi_pass php;
        }}
    }}
}}
"""
    )
    return conf


def lighttpd_conf(tmp: Path, port: int) -> Path:
    """lighttpd in front of php-fpm (mod_fastcgi, its connections kept open)."""
    conf = tmp / "lighttpd.conf"
    conf.write_text(
        f"""server.modules = ("mod_fastcgi")
server.document-root = "{tmp}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{tmp}/lighttpd-error.log"
server.max-keep-alive-requests = 1000000
fastcgi.server = (".php" => (("socket" => "{tmp}/lighttpd.sock", "check-local" => "disable")))
"""
    )
    return conf


def davserver_conf(tmp: Path) -> Path:
    """davserver: one worker, php-fpm at /php, the ASGI app at /asgi."""
    conf = tmp / "davserver.toml"
    conf.write_text(
        f"""[server]
access_log = false
workers = 1
state_dir = "{tmp}/state"

[[mounts]]
path = "/php"
type = "fastcgi"
socket = "{tmp}/davserver.sock"
root = "{tmp}/www"
pool_size = 4

[[mounts]]
path = "/asgi"
type = "asgi"
app = "apps:asgi_app"
pythonpath = ["{BENCH}"]
"""
    )
    return conf


def ensure_uvicorn() -> Path | None:
    """bench/.venv-mounts/bin/uvicorn (with uvloop and httptools)."""
    uvicorn = mounts.VENV / "bin" / "uvicorn"
    if uvicorn.exists():
        return uvicorn
    if not (mounts.VENV / "bin" / "python").exists():
        sh([sys.executable, "-m", "venv", str(mounts.VENV)])
    pip = [str(mounts.VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    sh([*pip, "--disable-pip-version-check", UVICORN])
    return uvicorn if uvicorn.exists() else None


def make_servers(tmp: Path) -> tuple[Server, list[Server]]:
    """php-fpm, and the servers measured (those that cannot run carry a problem)."""
    www = tmp / "www"
    www.mkdir(parents=True)
    (www / "hello.php").write_text('<?php echo "Hello from PHP!\\n";\n')
    (tmp / "nginx-tmp").mkdir()
    for p in (tmp, www):
        p.chmod(0o755)  # nginx's worker runs as nobody
    fpm = Server("php-fpm", php_fpm(tmp) or [], "", b"")
    if not fpm.cmd:
        fpm.problem = "php-fpm not available"
    davserver = REPO / ".venv" / "bin" / "davserver"
    dav = [str(davserver), "serve", "--config", str(davserver_conf(tmp)),
           "--log-level", "WARNING", "--port", "@PORT@"]  # fmt: skip
    servers = [
        Server("davserver-fastcgi", dav, "/php/hello.php", PHP_HELLO),
        Server("nginx-fastcgi", [], "/hello.php", PHP_HELLO),
        Server("lighttpd-fastcgi", [], "/hello.php", PHP_HELLO),
        Server("davserver-asgi", [], "/asgi/", HELLO, shares="davserver-fastcgi"),
        Server("uvicorn-uvloop-httptools", [], "/", HELLO),
        Server("uvicorn-asyncio-h11", [], "/", HELLO),
    ]
    if not davserver.exists():
        servers[0].problem = f"{davserver} is missing (run scripts/test)"
    nginx = ensure_apt("nginx", "nginx")
    if nginx:
        servers[1].cmd = [nginx, "-p", f"{tmp}/", "-c", "@NGINX@", "-g", "daemon off;"]
    else:
        servers[1].problem = "nginx not available"
    lighttpd = ensure_apt("lighttpd", "lighttpd")
    if lighttpd:
        servers[2].cmd = [lighttpd, "-D", "-f", "@LIGHTTPD@"]
    else:
        servers[2].problem = "lighttpd not available"
    uvicorn = ensure_uvicorn()
    for srv, loop, http in ((servers[4], "uvloop", "httptools"), (servers[5], "asyncio", "h11")):
        if uvicorn:
            srv.cmd = [str(uvicorn), "--app-dir", str(BENCH), "--host", "127.0.0.1",
                       "--port", "@PORT@", "--workers", "1", "--loop", loop, "--http", http,
                       "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                       "apps:asgi_app"]  # fmt: skip
        else:
            srv.problem = "uvicorn could not be installed"
    return fpm, servers


def start_with_conf(srv: Server, tmp: Path) -> None:
    """Start a server whose configuration names its port (nginx, lighttpd)."""
    if "@NGINX@" in srv.cmd or "@LIGHTTPD@" in srv.cmd:
        port = mounts.free_port()
        make = nginx_conf if "@NGINX@" in srv.cmd else lighttpd_conf
        conf = str(make(tmp, port))
        srv.cmd = [conf if a in ("@NGINX@", "@LIGHTTPD@") else a for a in srv.cmd]
        start(srv, tmp, port)
        return
    start(srv, tmp)


def report(servers: dict[str, Server], args: argparse.Namespace) -> str:
    """The tables of requests/s and of the ratios."""
    rows = [["server", "URL", "req/s (median)", "runs", "CPU µs/req", "problem"]]
    for srv in servers.values():
        runs = " ".join(f"{r:,.0f}" for r in srv.rps)
        median = f"{statistics.median(srv.rps):,.0f}" if srv.rps else "-"
        cpu = f"{statistics.median(srv.cpu_us):.1f}" if srv.cpu_us else "-"
        rows.append([srv.name, srv.path, median, runs, cpu, srv.problem or "-"])
    ratios = [["workload", "davserver", "reference", "ratio", "per round"]]
    for label, mine, ref in COMPARISONS:
        a, b = servers[mine], servers[ref]
        if a.rps and b.rps and all(b.rps) and not a.problem and not b.problem:
            rounds = [x / y for x, y in zip(a.rps, b.rps, strict=True)]
            cells = [f"{statistics.median(rounds):.2f}x", " ".join(f"{r:.2f}" for r in rounds)]
        else:
            cells = ["-", "not measured"]
        ratios.append([label, mine, ref, *cells])
    return (
        f"{table(rows)}\n\n{table(ratios)}\n\n"
        f"wrk -t1 -c{args.connections}, {args.duration:g} s per run after a {args.warmup:g} s "
        f"warm-up, {args.rounds} round(s), servers interleaved; {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f} at the end. CPU µs/req: the front server's "
        "processes only (php-fpm's time is not in it; the davserver process shared by "
        "both mounts is measured during each mount's own runs)"
    )


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (the median ratio is kept)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    return ap.parse_args()


def main() -> int:
    """Set up, measure, report; stop everything started."""
    args = parse_args()
    if not ensure_apt("wrk", "wrk"):
        sys.exit("wrk is missing and could not be installed")
    with tempfile.TemporaryDirectory(prefix="davbench-apps-") as name:
        tmp = Path(name)
        fpm, measured = make_servers(tmp)
        servers = {s.name: s for s in measured}
        try:
            if not fpm.problem:
                fpm.proc = mounts.subprocess.Popen(
                    fpm.cmd, cwd=tmp, stdin=mounts.subprocess.DEVNULL,
                    stdout=mounts.subprocess.DEVNULL, stderr=mounts.subprocess.DEVNULL,
                )  # fmt: skip
                deadline = time.monotonic() + 20
                while not (tmp / "lighttpd.sock").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            for srv in servers.values():
                if srv.shares:
                    other = servers[srv.shares]
                    srv.port, srv.proc = other.port, other.proc
                    srv.problem = srv.problem or other.problem or check(srv)
                elif not srv.problem:
                    start_with_conf(srv, tmp)
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
            for srv in [*servers.values(), fpm]:
                stop(srv)
        print(report(servers, args), flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
