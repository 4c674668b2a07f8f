"""Side-by-side WebDAV benchmark: davserver vs Apache mod_dav, WsgiDAV and bare aiohttp.

Usage: bench/run [--duration S] [--warmup S] [--rounds N] [--pin off|on] [--workers N]
                 [--workloads LIST]
   or: python3 bench/webdav.py [same options]

In one run it starts davserver twice (filesystem WebDAV; once unpinned, as users run it, and
once pinned to the first CPU; with --workers N > 1 a third time, unpinned with one worker),
Apache httpd with mod_dav, WsgiDAV 4.4 on cheroot and a bare aiohttp app, each on a free
loopback port with a fresh temporary folder, creates the same fixtures on the DAV servers over
HTTP, then measures every workload with wrk (1 thread, 16 connections), servers interleaved
per workload, and prints requests/s, the ratios and PASS/FAIL per floor. By default nothing
but the pinned davserver is pinned (--pin on pins every server to the first CPU and wrk to the
second, as earlier runs did).
It installs what it needs itself: wrk and apache2 (apt-get) and a venv with the peers
(bench/.venv-peers). A benchmark, not a test: the exit code is 0 even when a floor fails.
See docs/benchmarks.md.
"""

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_VENV = BENCH / ".venv-peers"
REQUIREMENTS = BENCH / "requirements-peers.txt"
WRK_SCRIPT = BENCH / "lua" / "workload.lua"
HZ = os.sysconf("SC_CLK_TCK")

# workload -> (label, path requested on the server); the fixtures below create these paths.
WORKLOADS: dict[str, tuple[str, str]] = {
    "get": ("GET 4 KiB", "/bench/file4k.bin"),
    "put": ("PUT 4 KiB x8 paths", "/bench/put/"),
    "propfind0": ("PROPFIND D0 file", "/bench/file4k.bin"),
    "propfind1": ("PROPFIND D1 1000", "/bench/dir1000/"),
}
# Column names. "davserver" runs unpinned, as users run it; "davserver-pinned" is the same
# server pinned to the first CPU (wrk on the second): both are measured in every run.
# "davserver-1w" is davserver with one worker, unpinned: only with --workers N > 1.
DAV, DAV_PINNED, DAV_1W = "davserver", "davserver-pinned", "davserver-1w"
SERVERS = (DAV, DAV_PINNED, DAV_1W, "apache", "wsgidav", "aiohttp-bare")
APACHE = Path("/usr/sbin/apache2")
APACHE_MODULES = Path("/usr/lib/apache2/modules")


@dataclass(frozen=True)
class Floor:
    """A reported check: davserver's requests/s >= factor x the reference's.

    ``dav`` is the davserver column compared ("" = the one run like the peers: unpinned by
    default, pinned with --pin on); ``unpinned_only`` floors are n/a in a --pin on run.
    A ``one_process`` floor with ``dav`` "" is about one process: with --workers N > 1 it is
    computed on davserver-1w. ``multi_worker`` floors are n/a unless --workers N > 1.
    """

    workload: str
    ref: str
    factor: float
    dav: str = ""
    unpinned_only: bool = False
    one_process: bool = False
    multi_worker: bool = False


FLOORS = (
    Floor("get", "aiohttp-bare", 0.5),
    Floor("put", "wsgidav", 3.0),
    Floor("propfind0", "wsgidav", 3.0),
    Floor("propfind1", "wsgidav", 15.0),
    # Issue 21: unpinned, one process, against Apache; and pinning must not be what makes
    # davserver fast.
    Floor("propfind0", "apache", 0.6, unpinned_only=True, one_process=True),
    Floor("propfind1", "apache", 1.0, unpinned_only=True, one_process=True),
    Floor("put", "apache", 0.8, unpinned_only=True, one_process=True),
    *(Floor(wl, DAV_PINNED, 0.9, dav=DAV) for wl in WORKLOADS),
    # Issue 14: N workers, unpinned, against Apache and against one worker in the same run.
    Floor("get", "apache", 0.6, unpinned_only=True, multi_worker=True),
    *(
        Floor(wl, "apache", 1.0, unpinned_only=True, multi_worker=True)
        for wl in ("put", "propfind0", "propfind1")
    ),
    *(Floor(wl, DAV_1W, 1.5, dav=DAV, unpinned_only=True, multi_worker=True) for wl in WORKLOADS),
)
PUT_PATHS = 8
FILE_4K = bytes(range(256)) * 16
PROPFIND_ALLPROP = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n'
)
NOISY_OTHER_PCT = 25.0  # other processes' CPU (% of one core) above which a run is flagged


@dataclass
class Server:
    """One server under test: how to start it and, once started, where it listens."""

    name: str
    cmd: list[str]
    workloads: tuple[str, ...]
    tmp: Path
    config: str = ""  # text of the config file tmp/config_name; @PORT@ is replaced at start
    config_name: str = ""
    pinned: bool = False  # the server on the first CPU, wrk on the second
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    problem: str = ""  # set when the server cannot be measured (not installed, fixtures bad)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Run:
    """The outcome of one wrk run."""

    server: str
    workload: str
    seconds: int
    connections: int
    rps: float = 0.0
    requests: int = 0
    non2xx: int = 0
    socket_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    other_cpu_pct: float = 0.0
    settle_s: float = 0.0
    problem: str = ""

    @property
    def flags(self) -> str:
        """Short text naming what is wrong with this run ('' when nothing is)."""
        out = []
        if self.problem:
            out.append(self.problem)
        if self.non2xx:
            out.append(f"{self.non2xx} non-2xx")
        if self.socket_errors:
            out.append(f"{self.socket_errors} socket errors/timeouts")
        if self.other_cpu_pct > NOISY_OTHER_PCT:
            out.append("noisy machine")
        return ", ".join(out)

    @property
    def has_errors(self) -> bool:
        """True when the run failed or saw non-2xx responses or socket errors."""
        return bool(self.problem or self.non2xx or self.socket_errors)


# ---------------------------------------------------------------- setup


def sh(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run a command (bounded to 15 minutes), echoing it first; return its exit code."""
    print("+", shlex.join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=False, timeout=900).returncode


def apt_install(package: str) -> None:
    """apt-get install a Debian package (apt-get update first only if the install fails)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if sh(install, env) != 0:
        sh(["apt-get", "update", "-q"], env)
        sh(install, env)


def ensure_wrk() -> None:
    """Install wrk with apt-get when it is missing; without it nothing can be measured."""
    if not shutil.which("wrk"):
        apt_install("wrk")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing and could not be installed (apt-get install -y wrk)")


def ensure_apache() -> str:
    """Install Debian's apache2 when it is missing; '' or why Apache cannot be measured."""
    modules = ("mod_mpm_event.so", "mod_dav.so", "mod_dav_fs.so")
    if not APACHE.exists():
        apt_install("apache2")
    missing = [str(p) for p in (APACHE, *(APACHE_MODULES / m for m in modules)) if not p.exists()]
    return f"not available ({', '.join(missing)} missing)" if missing else ""


def ensure_peers_venv() -> None:
    """Create bench/.venv-peers with the pinned peers unless it matches the requirements."""
    stamp = PEERS_VENV / ".requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    py = PEERS_VENV / "bin" / "python"
    if not py.exists() and sh([sys.executable, "-m", "venv", str(PEERS_VENV)]) != 0:
        sys.exit(f"could not create {PEERS_VENV}")
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if sh([*pip, "-r", str(REQUIREMENTS)]) != 0:
        sys.exit(f"pip install -r {REQUIREMENTS} failed")
    stamp.write_text(want + "\n")


def davserver_command() -> list[str] | None:
    """The project's davserver: .venv/bin/davserver, else $DAVSERVER (a command prefix)."""
    exe = REPO / ".venv" / "bin" / "davserver"
    if exe.exists():
        return [str(exe)]
    if os.environ.get("DAVSERVER", "").strip():
        return shlex.split(os.environ["DAVSERVER"])
    return None


def davserver_quiet_args(dav_cmd: list[str]) -> list[str]:
    """['--log-level', 'WARNING'] if `davserver serve` offers it: no access log, like the peers."""
    try:
        res = subprocess.run(
            [*dav_cmd, "serve", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--log-level", "WARNING"] if "--log-level" in res.stdout else []


def toml_value(value: object) -> str:
    """A bool, number or string as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def davserver_keys(server: dict[str, object]) -> dict[str, object]:
    """The [server] keys the harness gives davserver (besides state_dir), ``server`` last."""
    return {"access_log": False, "workers": 1, **server}


def davserver_config(tmp: Path, server: dict[str, object]) -> str:
    """davserver's TOML: one WebDAV mount of tmp/data at /, no access log, state in tmp,
    one process (workers = 1: the floors are about one process; davserver's default is
    one per core).

    ``server`` adds or overrides [server] keys (--host and --port come from the command
    line). Every option that sets a key goes through it, see DavserverKey.
    """
    keys = {"state_dir": tmp / "state", **davserver_keys(server)}
    lines = ["[server]", *(f"{k} = {toml_value(v)}" for k, v in keys.items()), ""]
    lines += ["[[mounts]]", 'path = "/"', 'type = "webdav"', 'backend = "filesystem"']
    lines += [f"root = {toml_value(tmp / 'data')}", ""]
    return "\n".join(lines)


def apache_config(tmp: Path) -> str:
    """Apache's config from bench/apache2.conf.in: everything in tmp, DAV on tmp/data.

    Run as root, Apache's parent keeps root (to open its files) and its workers switch to
    www-data, which gets the folder; anyone else runs it all as themselves.
    """
    user = ""
    if os.geteuid() == 0:
        user = "User www-data\nGroup www-data"
        for path in (tmp, *tmp.rglob("*")):
            shutil.chown(path, "www-data", "www-data")
    types = "TypesConfig /etc/mime.types" if Path("/etc/mime.types").exists() else ""
    text = (BENCH / "apache2.conf.in").read_text()
    for key, value in (("@TMP@", str(tmp)), ("@MODULES@", str(APACHE_MODULES))):
        text = text.replace(key, value)
    return text.replace("@USER@", user).replace("@TYPES@", types)


def bare_python() -> Path:
    """Python for the bare app: the project's venv (same aiohttp as davserver) if it has aiohttp."""
    py = REPO / ".venv" / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import aiohttp"], capture_output=True, check=False)
        if ok.returncode == 0:
            return py
    return PEERS_VENV / "bin" / "python"


def first_line(cmd: list[str]) -> str:
    """First line a command prints (stdout, else stderr), or '?'."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return ((res.stdout or res.stderr).strip().splitlines() or ["?"])[0]


def versions(bare_py: Path) -> list[str]:
    """One line per component with its version."""
    peers = "import wsgidav as w, cheroot as c, platform as p; print("
    peers += "f'WsgiDAV {w.__version__} on cheroot {c.__version__}, Python {p.python_version()}')"
    bare = "import aiohttp as a, platform as p; print("
    bare += "f'aiohttp {a.__version__}, Python {p.python_version()}')"
    apache = first_line([str(APACHE), "-v"]) if APACHE.exists() else "not installed"
    return [
        f"apache: {apache.removeprefix('Server version: ')}, mpm_event, mod_dav_fs",
        f"wsgidav: {first_line([str(PEERS_VENV / 'bin' / 'python'), '-c', peers])}",
        f"aiohttp-bare: {first_line([str(bare_py), '-c', bare])} ({bare_py})",
        f"wrk: {first_line(['wrk', '-v'])}",
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
    ]


# ---------------------------------------------------------------- servers


def free_port() -> int:
    """A free loopback TCP port (bind to port 0 and let the kernel choose)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_names(workers: int) -> tuple[str, ...]:
    """The servers of a run whose davservers have ``workers`` workers (no davserver-1w at 1)."""
    return tuple(s for s in SERVERS if s != DAV_1W or workers > 1)


def make_servers(
    dav_cmd: list[str] | None, bare_py: Path, args: argparse.Namespace
) -> list[Server]:
    """The servers, each with a fresh temporary folder (data/ inside it is served)."""
    servers = []
    for name in server_names(args.workers):
        tmp = Path(tempfile.mkdtemp(prefix=f"davbench-{name}-"))
        for sub in ("data", "state"):
            (tmp / sub).mkdir()
        data, config, config_name, problem = str(tmp / "data"), "", "", ""
        wls = tuple(WORKLOADS)
        if name in (DAV, DAV_PINNED, DAV_1W):
            cmd = []
            if dav_cmd:
                keys = args.davserver_server
                if name == DAV_1W:
                    keys = {**keys, "workers": 1}
                config, config_name = davserver_config(tmp, keys), "davserver.toml"
                cmd = [*dav_cmd, "serve", "--config", str(tmp / config_name)]
                cmd += ["--host", "127.0.0.1", "--port", "@PORT@", *davserver_quiet_args(dav_cmd)]
            else:
                problem = "not available (no .venv/bin/davserver and $DAVSERVER unset)"
        elif name == "apache":
            problem = args.apache_problem
            config, config_name = "" if problem else apache_config(tmp), "apache2.conf"
            cmd = [str(APACHE), "-DFOREGROUND", "-f", str(tmp / config_name)]
        elif name == "wsgidav":
            config = (BENCH / "wsgidav.yaml.in").read_text().replace("@DATA@", data)
            config_name = "wsgidav.yaml"
            cmd = [str(PEERS_VENV / "bin" / "wsgidav"), "--config", str(tmp / config_name)]
        else:
            cmd = [str(bare_py), str(BENCH / "bare_aiohttp.py"), "--port", "@PORT@"]
            wls = ("get",)
        pinned = name == DAV_PINNED or (name not in (DAV, DAV_1W) and args.pin == "on")
        if name == DAV_PINNED and not args.cpus and not problem:
            problem = "not measured (pinning needs two CPUs)"
        srv = Server(name, cmd, wls, tmp, config, config_name, pinned=pinned, problem=problem)
        servers.append(srv)
    return servers


def on_cpus(cpus: set[int] | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and so all its threads and children) to cpus."""
    return None if not cpus else lambda: os.sched_setaffinity(0, cpus)


def placement(srv: Server, args: argparse.Namespace) -> tuple[set[int] | None, set[int] | None]:
    """(the server's CPUs, wrk's CPUs) when measuring srv; None: not pinned."""
    if srv.pinned and args.cpus:
        return {args.cpus[0]}, {args.cpus[1]}
    return None, None


def start(srv: Server, log: Path, cpus: set[int] | None) -> None:
    """Start a server (pinned to cpus, if any) on a free port and wait until it answers HTTP."""
    srv.port = free_port()
    cmd = [a.replace("@PORT@", str(srv.port)) for a in srv.cmd]
    if srv.config:
        (srv.tmp / srv.config_name).write_text(srv.config.replace("@PORT@", str(srv.port)))
    print(f"starting {srv.name}: {shlex.join(cmd)}", flush=True)
    with log.open("wb") as out:
        srv.proc = subprocess.Popen(
            cmd,
            cwd=srv.tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=on_cpus(cpus),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            srv.problem = f"exited with {srv.proc.returncode} at start (log: {log})"
            return
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=2)
            conn.request("OPTIONS", "/")
            conn.getresponse().read()
            conn.close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    srv.problem = f"did not answer within 30 s (log: {log})"


def descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of pid (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{tid}/children").read_text().split()
                out.extend(int(k) for k in kids)
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return out


def stop(srv: Server) -> None:
    """Stop a server by its PID (TERM, KILL after 10 s), then any child it left behind."""
    proc = srv.proc
    if proc is None or proc.poll() is not None:
        return
    kids = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in kids if Path(f"/proc/{pid}").exists()]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if alive and sig == signal.SIGTERM:
            time.sleep(2)


def tree_cpu_ticks(pid: int) -> int:
    """CPU ticks (user + system) used so far by pid and its live descendants."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def settle(srv: Server, limit: float = 60.0) -> float:
    """Wait until the server is idle (< 10 % of a core over 0.5 s; at most limit s).

    After wrk stops, a threaded server may go on computing the requests still in flight
    (WsgiDAV with PROPFIND Depth 1 does for seconds); that must not load the next run.
    Returns the seconds waited.
    """
    assert srv.proc is not None
    t0 = time.monotonic()
    prev = tree_cpu_ticks(srv.proc.pid)
    while time.monotonic() - t0 < limit:
        time.sleep(0.5)
        cur = tree_cpu_ticks(srv.proc.pid)
        if (cur - prev) / HZ < 0.05:
            break
        prev = cur
    return time.monotonic() - t0


# ---------------------------------------------------------------- fixtures


class Client:
    """A minimal keep-alive HTTP/1.1 client for one loopback server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request (reconnecting once if the connection was dropped)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection, if open."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def count_responses(xml: bytes) -> int:
    """Number of DAV:response elements in a multistatus body (-1 if it is not XML)."""
    try:
        return len(ET.fromstring(xml).findall("{DAV:}response"))
    except ET.ParseError:
        return -1


def make_fixtures(srv: Server) -> str:
    """Create and verify the fixtures over HTTP; return '' or what went wrong.

    /bench/file4k.bin (4096 bytes), /bench/dir1000/f0000.txt..f0999.txt (100 bytes each),
    /bench/put/p0.bin..p7.bin (4096 bytes each; the PUT workload overwrites these).
    """
    c = Client(srv.port)
    try:
        if srv.name == "aiohttp-bare":
            st, body = c.request("GET", WORKLOADS["get"][1])
            return "" if st == 200 and len(body) == 4096 else f"GET -> {st}, {len(body)} bytes"
        octet = {"Content-Type": "application/octet-stream"}
        for col in ("/bench/", "/bench/dir1000/", "/bench/put/"):
            st, _ = c.request("MKCOL", col)
            if st != 201:
                return f"MKCOL {col} -> {st}"
        puts = [("/bench/file4k.bin", FILE_4K, octet)]
        puts += [
            (f"/bench/dir1000/f{i:04d}.txt", b"%04d" % i * 25, {"Content-Type": "text/plain"})
            for i in range(1000)
        ]
        puts += [(f"/bench/put/p{i}.bin", b"x" * 4096, octet) for i in range(PUT_PATHS)]
        for path, body, headers in puts:
            st, _ = c.request("PUT", path, body, headers)
            if st not in (200, 201, 204):
                return f"PUT {path} -> {st}"
        st, body = c.request("GET", "/bench/file4k.bin")
        if st != 200 or body != FILE_4K:
            return f"GET /bench/file4k.bin -> {st}, {len(body)} bytes (not the bytes PUT)"
        xml = {"Content-Type": "application/xml"}
        for path, depth, want in (("/bench/file4k.bin", "0", 1), ("/bench/dir1000/", "1", 1001)):
            st, body = c.request("PROPFIND", path, PROPFIND_ALLPROP, {**xml, "Depth": depth})
            if st != 207 or count_responses(body) != want:
                return (
                    f"PROPFIND Depth {depth} {path} -> {st}, "
                    f"{count_responses(body)} responses (want {want})"
                )
        return ""
    except (OSError, http.client.HTTPException) as e:
        return f"fixtures: {e!r}"
    finally:
        c.close()


# ---------------------------------------------------------------- measuring


def cpu_snapshot(srv: Server) -> tuple[float, int, int, float]:
    """(wall time, busy ticks of the machine, server ticks, CPU s of reaped children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = sum(v) - v[3] - v[4]  # everything but idle and iowait (steal counts as busy)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert srv.proc is not None
    return time.monotonic(), busy, tree_cpu_ticks(srv.proc.pid), ru.ru_utime + ru.ru_stime


def run_wrk(srv: Server, workload: str, seconds: int, args: argparse.Namespace, out: Path) -> Run:
    """One wrk run of a workload against a server; raw output goes to out."""
    connections = args.connections
    url = srv.url + WORKLOADS[workload][1]
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    cmd += ["-s", str(WRK_SCRIPT), url]
    env = {**os.environ, "BENCH_WORKLOAD": workload, "PUT_PATHS": str(PUT_PATHS)}
    run = Run(srv.name, workload, seconds, connections)
    t0, busy0, srv0, kids0 = cpu_snapshot(srv)
    try:
        res = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
            preexec_fn=on_cpus(placement(srv, args)[1]),
        )
    except subprocess.TimeoutExpired:
        run.problem = "wrk did not finish"
        return run
    t1, busy1, srv1, kids1 = cpu_snapshot(srv)
    out.write_text(f"$ {shlex.join(cmd)}\n{res.stdout}{res.stderr}")
    m = re.search(r"^WRKJSON (.*)$", res.stdout, re.M)
    if res.returncode != 0 or not m:
        run.problem = f"wrk failed (rc {res.returncode}, see {out})"
        return run
    j = json.loads(m.group(1))
    run.requests = j["requests"]
    run.rps = j["requests"] / (j["duration_us"] / 1e6)
    run.statuses = j["statuses"]
    run.non2xx = sum(n for code, n in j["statuses"].items() if not code.startswith("2"))
    run.socket_errors = sum(j[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    run.mean_ms, run.p50_ms = j["lat_mean_us"] / 1000, j["lat_p50_us"] / 1000
    run.p99_ms = j["lat_p99_us"] / 1000
    other_s = (busy1 - busy0 - (srv1 - srv0)) / HZ - (kids1 - kids0)
    run.other_cpu_pct = max(0.0, 100 * other_s / (t1 - t0))
    return run


def measure(
    servers: list[Server], workloads: list[str], args: argparse.Namespace, results: Path
) -> list[Run]:
    """Interleave servers per workload: warm-up run, settle, measured run, settle."""
    runs = []
    live = [s for s in servers if not s.problem]
    for rnd in range(1, args.rounds + 1):
        order = live if rnd % 2 else live[::-1]  # alternate the order between rounds
        for wl in workloads:
            for srv in (s for s in order if wl in s.workloads and not s.problem):
                tag = f"{wl}.{srv.name}.r{rnd}"
                warm = run_wrk(srv, wl, args.warmup, args, results / f"{tag}.warmup.txt")
                warm.settle_s = settle(srv)
                run = run_wrk(srv, wl, args.duration, args, results / f"{tag}.txt")
                run.settle_s = settle(srv)
                runs.append(run)
                if srv.proc is not None and srv.proc.poll() is not None:
                    run.problem = srv.problem = f"server exited ({srv.proc.returncode})"
                note = f"  [warm-up: {warm.flags}]" if warm.has_errors else ""
                print(
                    f"  round {rnd} {WORKLOADS[wl][0]:<19} {srv.name:<16} "
                    f"{run.rps:>10,.1f} req/s  p50 {run.p50_ms:8.1f} ms  "
                    f"other CPU {run.other_cpu_pct:3.0f}%  settled {run.settle_s:4.1f}s"
                    f"{'  ! ' + run.flags if run.flags else ''}{note}",
                    flush=True,
                )
    return runs


# ---------------------------------------------------------------- report


def table(rows: list[list[str]]) -> list[str]:
    """Render rows (first = header) as an aligned Markdown table."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    return [
        line(rows[0]),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(r) for r in rows[1:]),
    ]


RUN_COLUMNS = ["server", "workload", "req/s", "requests", "non-2xx", "socket errs"]
RUN_COLUMNS += ["mean ms", "p50 ms", "p99 ms", "other CPU %", "flags"]
RATIO_COLUMNS = ["vs Apache", "vs wsgidav", "vs bare", "unpinned/pinned"]
RATIO_1W = f"{DAV}/{DAV_1W}"  # the ratio column added with --workers N > 1
FLOOR_COLUMNS = ["workload", "davserver", "reference", "ratio", "floor", "PASS/FAIL"]


def summarize(
    runs: list[Run], workloads: list[str], pin: str, workers: int
) -> tuple[list[str], list[dict[str, object]]]:
    """The report lines (runs table, requests/s table, floors table, notes) and the verdicts.

    The ratios and the floors against peers use the davserver run like the peers
    (davserver unpinned; davserver-pinned with --pin on); unpinned/pinned is davserver's
    figure divided by davserver-pinned's. With ``workers`` > 1 davserver-1w is a column too,
    the one-process floors use it, and davserver/davserver-1w is a ratio column.
    """
    by: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by.setdefault((r.server, r.workload), []).append(r)
    main_dav = DAV_PINNED if pin == "on" else DAV
    names, multi = server_names(workers), workers > 1

    def median(server: str, wl: str, attr: str = "rps") -> float | None:
        rs = by.get((server, wl))
        return statistics.median(getattr(r, attr) for r in rs) if rs else None

    def errs(server: str, wl: str) -> bool:
        return any(r.has_errors for r in by.get((server, wl), []))

    def cell(server: str, wl: str) -> str:
        v = median(server, wl)
        return "-" if v is None else f"{v:,.1f}" + (" !" if errs(server, wl) else "")

    def ratio(num: float | None, den: float | None) -> str:
        return "-" if num is None or not den else f"{num / den:.2f}x"

    run_rows = [RUN_COLUMNS]
    for r in runs:
        nums = [f"{r.rps:,.1f}", str(r.requests), str(r.non2xx), str(r.socket_errors)]
        nums += [f"{r.mean_ms:.1f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.other_cpu_pct:.0f}"]
        run_rows.append([r.server, WORKLOADS[r.workload][0], *nums, r.flags or "ok"])

    rows = [["workload", *names, *RATIO_COLUMNS, *([RATIO_1W] if multi else [])]]
    for wl in workloads:
        dav = median(main_dav, wl)
        row = [WORKLOADS[wl][0], *(cell(s, wl) for s in names)]
        row += [ratio(dav, median(ref, wl)) for ref in ("apache", "wsgidav", "aiohttp-bare")]
        row.append(ratio(median(DAV, wl), median(DAV_PINNED, wl)))
        rows.append([*row, *([ratio(median(DAV, wl), median(DAV_1W, wl))] if multi else [])])

    floor_rows, notes = [FLOOR_COLUMNS], []
    verdicts: list[dict[str, object]] = []
    for f in (f for f in FLOORS if f.workload in workloads):
        dav_name = f.dav or (DAV_1W if f.one_process and multi else main_dav)
        ref, k = f.ref, f.factor
        dav, den = median(dav_name, f.workload), median(ref, f.workload)
        floor = f">= {k:g}x {ref}"
        if f.multi_worker and not multi:
            verdict = "n/a (a floor for --workers N > 1)"
        elif f.unpinned_only and pin == "on":
            verdict = "n/a (an unpinned floor: run with --pin off)"
        elif dav is None or den is None:
            verdict = "n/a (not measured)"
        elif den == 0:
            verdict = f"n/a ({ref} completed no request)"
        elif errs(dav_name, f.workload):
            verdict = f"FAIL ({dav_name} run had errors)"
        else:
            verdict = "PASS" if dav >= k * den else "FAIL"
            verdict += f" ({ref} run had errors)" if errs(ref, f.workload) else ""
            # A reference slower than a tenth of the run loses much of its work in flight at
            # the end from wrk's count; Little's law (connections / mean latency) bounds it.
            mean_s, run0 = (
                (median(ref, f.workload, "mean_ms") or 0) / 1000,
                by[(ref, f.workload)][0],
            )
            if mean_s > run0.seconds / 10:
                alt = run0.connections / mean_s
                notes.append(
                    f"note: {WORKLOADS[f.workload][0]}: {ref}'s mean latency ({mean_s:.1f} s) "
                    f"is over a tenth of the run, so wrk's count misses the requests in flight "
                    f"at the end; {run0.connections} connections / mean latency = {alt:,.2f} "
                    f"req/s would give {dav / alt:.2f}x "
                    f"({'PASS' if dav >= k * alt else 'FAIL'} against {floor})."
                )
        verdicts.append(
            {
                "workload": f.workload,
                "davserver": dav_name,
                "floor": floor,
                "verdict": verdict,
                "ratio": dav / den if dav is not None and den else None,
            }
        )
        floor_rows.append(
            [WORKLOADS[f.workload][0], dav_name, ref, ratio(dav, den), floor, verdict]
        )
    title = "Requests/s (median of rounds; ! = a run had non-2xx responses or socket errors)"
    title += f"; ratios of {main_dav}:"
    return [
        "Runs:",
        *table(run_rows),
        "",
        title,
        *table(rows),
        "",
        "Floors:",
        *table(floor_rows),
        *notes,
    ], verdicts


# ---------------------------------------------------------------- main


def on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGINT/SIGTERM/SIGHUP into SystemExit, so that the servers get stopped."""
    print(f"\n{signal.Signals(signum).name}: stopping the servers", file=sys.stderr)
    raise SystemExit(128 + signum)


def env_int(env: str, default: int) -> int:
    """An integer setting from the environment (default when unset)."""
    return int(os.environ.get(env) or default)


def parse_args() -> argparse.Namespace:
    """Command-line options (defaults from BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.set_defaults(davserver_server={})  # [server] keys of davserver's config, see DavserverKey
    ap.add_argument(
        "--duration",
        type=int,
        default=env_int("BENCH_DURATION", 10),
        help="seconds per measured run (default 10, env BENCH_DURATION)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=env_int("BENCH_WARMUP", 2),
        help="seconds of the warm-up run before each (default 2, env BENCH_WARMUP)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=env_int("BENCH_ROUNDS", 1),
        help="measured runs per server and workload; the median counts (default 1)",
    )
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    ap.add_argument(
        "--workers", type=int, action=DavserverKey,
        help="[server] workers of the davservers (default 1: one process; the pinned one's "
        "workers all share its CPU); N > 1 adds davserver-1w (one worker) and issue 14's floors",
    )  # fmt: skip
    ap.add_argument(
        "--pin",
        choices=("on", "off"),
        default=os.environ.get("BENCH_PIN", "off"),
        help="on: every server on the first CPU, wrk on the second; off: only davserver-pinned "
        "is (default off, env BENCH_PIN)",
    )
    ap.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    args = ap.parse_args()
    args.workloads = [w for w in args.workloads.split(",") if w]
    if any(w not in WORKLOADS for w in args.workloads):
        ap.error(f"workloads are {', '.join(WORKLOADS)}")
    args.workers = davserver_keys(args.davserver_server)["workers"]  # N, 1 unless --workers
    if min(args.duration, args.warmup, args.rounds, args.connections, args.workers) < 1:
        ap.error("--duration, --warmup, --rounds, --connections and --workers must be >= 1")
    cpus = sorted(os.sched_getaffinity(0))
    args.cpus = (cpus[0], cpus[1]) if len(cpus) >= 2 else None
    return args


class DavserverKey(argparse.Action):
    """Stores an option's value as a [server] key of davserver's config (every davserver;
    davserver-1w keeps workers = 1).

    An option for a [server] key is one line in parse_args, e.g.
    ``ap.add_argument("--workers", type=int, action=DavserverKey, help=...)`` gives
    ``[server] workers = N``.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        namespace.davserver_server = {**namespace.davserver_server, self.dest: values}


def cpu_line(args: argparse.Namespace) -> str:
    """How the servers and wrk were placed on the CPUs, for the header."""
    if not args.cpus:
        return "CPUs: one CPU, nothing pinned (davserver-pinned not measured)"
    on = f"on CPU {args.cpus[0]}, wrk on CPU {args.cpus[1]}"
    if args.pin == "on":
        free = f"{DAV} and {DAV_1W}" if args.workers > 1 else DAV
        return f"CPUs: --pin on: every server {on} ({free} unpinned, wrk unpinned)"
    return f"CPUs: --pin off: servers and wrk unpinned (davserver-pinned {on})"


def main() -> int:
    """Install what is missing, start the servers, measure, print the tables, clean up."""
    args = parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    ensure_wrk()
    ensure_peers_venv()
    results = BENCH / "results" / time.strftime("%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    dav_cmd, bare_py = davserver_command(), bare_python()
    header = [
        f"davserver: {shlex.join(dav_cmd) if dav_cmd else 'NOT AVAILABLE'} serve --config "
        f"FILE (one filesystem WebDAV mount; "
        + ", ".join(
            f"{k} = {toml_value(v)}" for k, v in davserver_keys(args.davserver_server).items()
        )
        + ")",
        *(
            [
                f"{DAV_1W}: the same with workers = 1 (one process, unpinned like {DAV}): "
                f"the one-process floors use it, and issue 14's 1.5x floor compares with it"
            ]
            if args.workers > 1
            else []
        ),
        *versions(bare_py),
        f"wrk -t1 -c{args.connections}, {args.duration} s per run after a {args.warmup} s "
        f"warm-up, {args.rounds} round(s), servers interleaved per workload",
        cpu_line(args),
    ]
    print("\n".join(header), flush=True)
    args.apache_problem = ensure_apache()
    servers = make_servers(dav_cmd, bare_py, args)
    try:
        for srv in servers:
            if not srv.problem:
                start(srv, results / f"{srv.name}.log", placement(srv, args)[0])
            if not srv.problem:
                t0 = time.monotonic()
                srv.problem = make_fixtures(srv)
                print(
                    f"  {srv.name} at {srv.url}/ (pid {srv.proc.pid if srv.proc else '?'}): "
                    f"fixtures {'FAILED: ' + srv.problem if srv.problem else 'ok'} "
                    f"({time.monotonic() - t0:.1f} s)",
                    flush=True,
                )
            if not srv.problem:
                settle(srv)
        runs = measure(servers, args.workloads, args, results)
    finally:
        for srv in servers:
            stop(srv)
            shutil.rmtree(srv.tmp, ignore_errors=True)
    report, verdicts = summarize(runs, args.workloads, args.pin, args.workers)
    skipped = [f"NOTE: {s.name} not measured: {s.problem}" for s in servers if s.problem]
    text = "\n".join(["", *report, *skipped])
    print(text)
    (results / "table.md").write_text("\n".join(header) + "\n" + text + "\n")
    (results / "summary.json").write_text(
        json.dumps(
            {
                "header": header,
                "runs": [asdict(r) for r in runs],
                "verdicts": verdicts,
                "skipped": skipped,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nraw wrk output, server logs and summary.json: {results.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
