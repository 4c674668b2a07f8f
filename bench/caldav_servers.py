"""The three CalDAV servers of bench/caldav.py: how each is installed, started (loopback
only, a fresh folder each) and stopped (by the PID it was started with)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from caldav_gen import ATTENDEES, ORGANIZER

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_VENV = BENCH / ".venv-caldav-peers"
REQUIREMENTS = BENCH / "requirements-caldav-peers.txt"
USER, PASSWORD = "test", "test"


@dataclass
class Server:
    """One server under test."""

    name: str
    tmp: Path
    port: int = 0
    auth: tuple[str, str] | None = None
    base: str = "/"  # where discovery starts
    proc: subprocess.Popen[bytes] | None = None
    storage: Path | None = None  # the folder of the benchmark's calendar, once known
    git_storage: bool = False  # items are what is committed there (Xandikos)
    problem: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.tmp / "server.log"

    @property
    def url(self) -> str:
        """The base URL without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"


def ensure_peers() -> None:
    """bench/.venv-caldav-peers with the pinned Radicale and Xandikos (rebuilt when the
    requirements change)."""
    stamp = PEERS_VENV / ".requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=600)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=900)
    stamp.write_text(want + "\n")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _davserver(srv: Server) -> list[str]:
    config = srv.tmp / "davserver.toml"
    # The users the meetings invite: calendar users of the server by their addresses (no
    # account is needed to receive invitations), the benchmark's user in the same domain.
    addresses = ", ".join(f'{a.partition("@")[0]} = ["{a}"]' for a in ATTENDEES)
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {srv.port}\nstate_dir = "{srv.tmp}/state"\n'
        "access_log = false\n\n"
        f'[auth]\ndomain = "{ORGANIZER.partition("@")[2]}"\naddresses = {{ {addresses} }}\n\n'
        f'[[mounts]]\npath = "/caldav"\ntype = "caldav"\nroot = "{srv.tmp}/calendars"\n'
    )
    srv.base = "/caldav/"
    exe = REPO / ".venv" / "bin" / "davserver"
    return [str(exe), "serve", "--config", str(config), "--log-level", "WARNING"]


def _radicale(srv: Server) -> list[str]:
    data = srv.tmp / "radicale"
    (data / "collections").mkdir(parents=True)
    (data / "users").write_text(f"{USER}:{PASSWORD}\n")
    (data / "config").write_text(
        f"[server]\nhosts = 127.0.0.1:{srv.port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {data}/users\n"
        "htpasswd_encryption = plain\n[rights]\ntype = owner_only\n"
        f"[storage]\ntype = multifilesystem\nfilesystem_folder = {data}/collections\n"
        "[logging]\nlevel = warning\n"
    )
    srv.auth = (USER, PASSWORD)
    return [str(PEERS_VENV / "bin" / "radicale"), "--config", str(data / "config")]


def _xandikos(srv: Server) -> list[str]:
    data = srv.tmp / "xandikos"
    data.mkdir()
    srv.git_storage = True
    return [
        str(PEERS_VENV / "bin" / "xandikos"), "serve", "--defaults", "-d", str(data),
        "-l", "127.0.0.1", "-p", str(srv.port), "--state-dir", str(data / ".state"),
        "--no-detect-systemd",
    ]  # fmt: skip


COMMANDS = {"davserver": _davserver, "radicale": _radicale, "xandikos": _xandikos}


def start(srv: Server) -> None:
    """Start a server and wait (at most 60 s) until it answers HTTP."""
    srv.port = free_port()
    cmd = COMMANDS[srv.name](srv)
    with open(srv.log, "wb") as log:
        srv.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=srv.tmp, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            srv.problem = f"exited with {srv.proc.returncode} (see {srv.log})"
            return
        try:
            urllib.request.urlopen(
                urllib.request.Request(srv.url + "/", method="OPTIONS"), timeout=2
            )
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    srv.problem = "did not answer within 60 s"


def peak_memory(srv: Server) -> float | None:
    """The server's peak resident memory in MiB: the largest VmHWM among its process and
    its children (davserver's workers, each of which holds its own index and caches;
    forked processes share pages, so a sum would count those twice)."""
    if srv.proc is None:
        return None
    pids = [srv.proc.pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text()
        pids += [int(p) for p in children.split()]
    peak = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return round(peak / 1024, 1) if peak else None


def stop(srv: Server) -> None:
    """Stop a server by its PID (TERM, then KILL after 10 s), and what it started."""
    proc, srv.proc = srv.proc, None
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)  # its own session: the server and its children
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
