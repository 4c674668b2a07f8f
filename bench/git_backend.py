"""Git backend benchmark (a benchmark, not a test: it always exits 0).

Usage: .venv/bin/python bench/git_backend.py [--puts 1000] [--duration 5]

1. Commit cost against repository size: 1,000 sequential PUTs (one connection, 4 KiB each,
   spread over 100 folders) into a repository that already holds 10,000 files in those 100
   folders, and the same PUTs into an empty repository where the 100 folders were just
   made with MKCOL. Prints both rates and the ratio (floor: the big repository costs at most
   2x the empty one).
2. Reads against the filesystem backend: GET of a 4 KiB file, PROPFIND Depth 0 of it and
   PROPFIND Depth 1 of a folder of 1,000 files, with wrk (1 thread, 16 connections) on a
   git-backed and a filesystem-backed server holding the same files, run one after the
   other per workload. Prints requests/s and git / filesystem (floor: 0.5).

Servers are `python -m davserver serve` processes on free loopback ports, each with its own
temporary folder; they are stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

FOLDERS = 100
FILES_PER_FOLDER = 100
BODY = bytes(range(256)) * 16
PUT_FLOOR = 2.0
READ_FLOOR = 0.5
LUA = """
wrk.method = os.getenv("METHOD")
if wrk.method == "PROPFIND" then
  wrk.headers["Depth"] = os.getenv("DEPTH")
  wrk.headers["Content-Type"] = "application/xml"
  wrk.body = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
end
local bad = 0
function response(status, headers, body)
  if status >= 300 then bad = bad + 1 end
end
"""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(work: Path, store: str) -> Iterator[int]:
    """Run davserver with one WebDAV mount at / (``store`` is its root or repo line)."""
    port = free_port()
    config = work / "davserver.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nstate_dir = "{work / "state"}"\n'
        f'access_log = false\n\n[[mounts]]\npath = "/"\ntype = "webdav"\n{store}\n'
    )
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "davserver", "serve", "--config", str(config),
         "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"davserver exited early; see {work / 'server.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("davserver did not start listening") from None
                time.sleep(0.05)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes = b"") -> int:
    """Send one request on a kept-alive connection; return the status."""
    conn.request(method, path, body=body, headers={"Content-Length": str(len(body))})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def seed(repo: Path) -> None:
    """One commit holding FOLDERS x FILES_PER_FOLDER small files, written with dulwich."""
    r = Repo.init_bare(str(repo), mkdir=True, default_branch=b"main")
    store = r.object_store
    root = Tree()
    for f in range(FOLDERS):
        tree = Tree()
        for i in range(FILES_PER_FOLDER):
            blob = Blob.from_string(b"seed file %d/%d\n" % (f, i))
            store.add_object(blob)
            tree.add(b"f%03d.txt" % i, 0o100644, blob.id)
        store.add_object(tree)
        root.add(b"dir%03d" % f, 0o040000, tree.id)
    store.add_object(root)
    commit = Commit()
    commit.tree = root.id
    commit.author = commit.committer = b"seed <seed@localhost>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"seed\n"
    store.add_object(commit)
    r.refs[b"refs/heads/main"] = commit.id
    r.close()


def put_rate(work: Path, seeded: bool, puts: int) -> float:
    """PUTs per second into a seeded or an empty repository."""
    repo = work / "store.git"
    if seeded:
        seed(repo)
    with server(work, f'backend = "git"\nrepo = "{repo}"') as port:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        if not seeded:
            for f in range(FOLDERS):
                assert request(conn, "MKCOL", f"/dir{f:03d}") == 201
        assert request(conn, "PUT", "/dir000/warm-up.bin", BODY) == 201
        start = time.perf_counter()
        for i in range(puts):
            status = request(conn, "PUT", f"/dir{i % FOLDERS:03d}/new-{i}.bin", BODY)
            assert status == 201, status
        elapsed = time.perf_counter() - start
        conn.close()
    return puts / elapsed


def fill(port: int) -> None:
    """The read fixtures: /bench/file4k.bin and /bench/dir1000/ with 1,000 files."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    assert request(conn, "MKCOL", "/bench") == 201
    assert request(conn, "PUT", "/bench/file4k.bin", BODY) == 201
    assert request(conn, "MKCOL", "/bench/dir1000") == 201
    for i in range(1000):
        assert request(conn, "PUT", f"/bench/dir1000/f{i:04d}.bin", BODY[: 100 + i]) == 201
    conn.close()


def wrk(port: int, path: str, method: str, depth: str, seconds: int, script: Path) -> float:
    """Requests per second wrk measures (1 thread, 16 connections)."""
    done = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, env={**os.environ, "METHOD": method,
                                                         "DEPTH": depth},
    )  # fmt: skip
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"wrk saw errors:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    """Run both parts and print the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--puts", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="davserver-gitbench-") as tmp:
        base = Path(tmp)
        for name in ("empty", "seeded", "fs", "git"):
            (base / name).mkdir()
        print(f"1. {args.puts} sequential PUTs of 4 KiB over {FOLDERS} folders")
        empty = put_rate(base / "empty", False, args.puts)
        print(f"   empty repository:                     {empty:8.1f} PUT/s")
        seeded = put_rate(base / "seeded", True, args.puts)
        total = FOLDERS * FILES_PER_FOLDER
        print(f"   repository with {total:,} files:         {seeded:8.1f} PUT/s")
        ratio = empty / seeded
        ok = ratio <= PUT_FLOOR
        print(f"   cost ratio (big / empty): {ratio:.2f}  (floor <= {PUT_FLOOR})  {verdict(ok)}")

        print(f"2. reads, wrk -t1 -c16 -d{args.duration}s, git backend vs filesystem backend")
        script = base / "bench.lua"
        script.write_text(LUA)
        workloads = [
            ("GET 4 KiB", "/bench/file4k.bin", "GET", ""),
            ("PROPFIND D0 file", "/bench/file4k.bin", "PROPFIND", "0"),
            ("PROPFIND D1 1000", "/bench/dir1000/", "PROPFIND", "1"),
        ]
        fs_store = f'root = "{base / "fs" / "store"}"'
        git_store = f'backend = "git"\nrepo = "{base / "git" / "store.git"}"'
        with server(base / "fs", fs_store) as fs_port, server(base / "git", git_store) as git_port:
            fill(fs_port)
            fill(git_port)
            print(f"   {'workload':<18} {'filesystem':>12} {'git':>12} {'git/fs':>8}")
            for label, path, method, depth in workloads:
                for port in (fs_port, git_port):  # warm-up
                    wrk(port, path, method, depth, 1, script)
                fs = wrk(fs_port, path, method, depth, args.duration, script)
                git = wrk(git_port, path, method, depth, args.duration, script)
                ok = git / fs >= READ_FLOOR
                print(
                    f"   {label:<18} {fs:10.0f}/s {git:10.0f}/s {git / fs:8.2f}"
                    f"  (floor >= {READ_FLOOR})  {verdict(ok)}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
