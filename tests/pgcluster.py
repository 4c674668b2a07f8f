"""A private PostgreSQL cluster for the tests (importable as ``pgcluster``).

``initdb`` into a temporary folder, started on a Unix socket in that folder only (no TCP),
stopped at the end. PostgreSQL refuses to run as root: when the tests do, the cluster
runs as an unprivileged user (Debian's ``postgres``, or one made for it) that owns the
folder. The binaries are Debian's (scripts/test installs the package when missing).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from helpers import free_port

SUPERUSER = "davserver"
_USERS = ("postgres", "davserver-pg")


def bindir() -> Path:
    """The folder of Debian's newest PostgreSQL binaries (or of those on the PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/test installs it)")
    return Path(initdb).parent


def _unprivileged() -> str | None:
    """The user the cluster runs as when the tests run as root (made when missing)."""
    if os.geteuid() != 0:
        return None
    for name in _USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = _USERS[-1]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    return name


class Cluster:
    """One cluster in a folder of its own; :meth:`url` names a database of it."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.user = _unprivileged()
        self.folder = Path(tempfile.mkdtemp(prefix="davserver-pg-"))
        self.port = free_port()
        self._names = itertools.count(1)
        if self.user is not None:
            shutil.chown(self.folder, self.user, self.user)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--no-sync", "--locale=C",
        )  # fmt: skip

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the server (and wait until it accepts connections)."""
        options = (
            f"-k {self.folder} -p {self.port} -c listen_addresses='' -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends the sessions (what a restart does to clients),
        ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of the cluster, over its socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.folder}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser; what psql printed (unaligned, tuples only)."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", str(self.folder), "-p", str(self.port),
             "-U", SUPERUSER, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def new_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t{next(self._names)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        """Stop the server if it runs, and remove the folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
