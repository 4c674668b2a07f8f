"""Instructions per request: davserver under callgrind, a fixed load, a count that repeats.

Usage: .venv/bin/python bench/instructions.py [--requests 400] [--workloads get,propfind0,put]
                                              [--python .venv/bin/python] [--pythonpath DIR]

Wall-clock figures need a quiet machine (bench/run); this one does not. It runs the server
(one process, filesystem WebDAV, on the first CPU) under valgrind's callgrind and, for each
workload, sends 200 requests to warm up, then counts the instructions the server executes
(every thread, user space) while it answers ``--requests`` more, sent by a small client on
the second CPU over 4 keep-alive connections in turns. The same build gives the same count
within a fraction of a percent whatever else the machine is doing, so two builds compare
(``--python`` the interpreter whose davserver is measured, ``--pythonpath`` a folder put
before its site-packages, such as a copy of another build's ``davserver`` package). Time
in the kernel and waits do not count: PUT's disk work is not in it. About a minute. See
docs/benchmarks.md. It installs valgrind (apt-get) when it is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from webdav import apt_install

REPO = Path(__file__).resolve().parent.parent
WARMUP = 200
BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n'
)


def request_bytes(workload: str, i: int) -> bytes:
    """The ``i``-th request of a workload, as bench/lua/workload.lua sends it."""
    if workload == "get":
        return b"GET /bench/file4k.bin HTTP/1.1\r\nHost: bench\r\n\r\n"
    if workload == "propfind0":
        head = (
            b"PROPFIND /bench/file4k.bin HTTP/1.1\r\nHost: bench\r\nDepth: 0\r\n"
            b"Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        )
        return head + BODY
    if workload == "put":
        head = b"PUT /bench/put/p%d.bin HTTP/1.1\r\nHost: bench\r\nContent-Length: 4096\r\n\r\n"
        return head % (i % 8) + b"x" * 4096
    raise SystemExit(f"unknown workload {workload!r} (get, propfind0, put)")


def answer(conn: socket.socket) -> None:
    """Read one answer (its head and its Content-Length of body)."""
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        buf += chunk
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            continue
        if not head.startswith(b"HTTP/1.1 2"):
            raise SystemExit(f"unexpected answer: {head.splitlines()[0]!r}")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) >= length:
            return


def load(port: int, workload: str, count: int) -> None:
    """``count`` requests on 4 connections, one request on each in turn."""
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        for start in range(0, count, len(conns)):
            for k, conn in enumerate(conns):
                conn.sendall(request_bytes(workload, start + k))
            for conn in conns:
                answer(conn)
    finally:
        for conn in conns:
            conn.close()


def fixtures(tmp: Path) -> Path:
    """The data folder and the config (one WebDAV mount, one process, state in tmp)."""
    data = tmp / "data"
    (data / "bench" / "put").mkdir(parents=True)
    (data / "bench" / "file4k.bin").write_bytes(os.urandom(4096))
    for i in range(8):
        (data / "bench" / "put" / f"p{i}.bin").write_bytes(os.urandom(4096))
    config = tmp / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp / "state"}"\nworkers = 1\n\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "filesystem"\nroot = "{data}"\n'
    )
    return config


def wait_until_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Return once the server answers (under callgrind a start takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited at start (see its log)")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/file4k.bin", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not answer in time")


def control(*args: str) -> None:
    """callgrind_control (zero the counters, dump them)."""
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--workloads", default="get,propfind0,put")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--pythonpath", default="")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        apt_install("valgrind")
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {client_cpu})
    with tempfile.TemporaryDirectory(prefix="davinstr-") as name:
        tmp = Path(name)
        config = fixtures(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": args.pythonpath} if args.pythonpath else None
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.%p",
            args.python, "-m", "davserver", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING",
        ]  # fmt: skip
        with open(tmp / "server.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.sched_setaffinity(0, {server_cpu}),
            )  # fmt: skip
        try:
            wait_until_up(port, proc)
            print(f"{'workload':<10} {'requests':>8} {'instructions/request':>21}")
            for workload in args.workloads.split(","):
                load(port, workload, WARMUP)
                control("-z", str(proc.pid))
                load(port, workload, args.requests)
                control("-d", workload, str(proc.pid))
                dump = max(tmp.glob(f"callgrind.{proc.pid}.*"), key=lambda p: p.stat().st_mtime)
                total = next(
                    int(line.split()[1])
                    for line in dump.read_text().splitlines()
                    if line.startswith("summary:")
                )
                print(f"{workload:<10} {args.requests:>8} {total // args.requests:>21,}")
        finally:
            proc.terminate()
            proc.wait(timeout=120)


if __name__ == "__main__":
    sys.exit(main())
