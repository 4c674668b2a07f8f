"""A served repository whose packs are combined again and again: the real server (two
workers) answers every GET of every version meanwhile, and keeps no descriptor of a
removed pack."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from davserver.backends.git_repack import pack_names
from gitrepo import git
from helpers import ServerProcess, start_server

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\nworkers = 2\n\n'
        f'[[mounts]]\npath = "/dav"\ntype = "webdav"\nbackend = "git"\n'
        f'repo = "{tmp_path / "store.git"}"\ngc_interval = 0\ngc_loose_objects = 1000000\n'
    )
    server = start_server(tmp_path, "--config", str(config))
    deadline = time.monotonic() + 60
    while len(processes(server)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    yield server
    server.stop()


def processes(server: ServerProcess) -> list[psutil.Process]:
    master = psutil.Process(server.proc.pid)
    return [master, *(c for c in master.children() if c.status() != "zombie")]


def fd_targets(server: ServerProcess) -> list[str]:
    """Where every descriptor of the server's processes points."""
    targets = []
    for proc in processes(server):
        folder = f"/proc/{proc.pid}/fd"
        for fd in os.listdir(folder):
            try:
                targets.append(os.readlink(f"{folder}/{fd}"))
            except OSError:
                continue  # closed meanwhile
    return targets


def others(targets: list[str], repo: Path) -> list[str]:
    """The descriptors not on a pack."""
    return [t for t in targets if not t.startswith(str(repo / "objects" / "pack"))]


def versions(session: requests.Session, url: str) -> list[str]:
    """The hrefs of a file's versions, oldest first."""
    history = session.get(url + "?history=json", timeout=30).json()
    return [v["href"] for v in reversed(history["versions"])]


def test_every_version_is_served_while_packs_are_combined(
    served: ServerProcess, tmp_path: Path
) -> None:
    repo = tmp_path / "store.git"
    base = served.url
    session = requests.Session()
    expected: dict[str, bytes] = {}  # URL (a version or a file) -> its bytes
    for name in range(8):
        for v in range(3):
            body = b"file %d version %d\n" % (name, v) * 50
            assert session.put(f"{base}/dav/f{name}.txt", data=body, timeout=30).ok
        for v, href in enumerate(versions(session, f"{base}/dav/f{name}.txt")):
            expected[base + href] = b"file %d version %d\n" % (name, v) * 50

    lock = threading.Lock()
    failures: list[str] = []
    gets = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal gets
        with requests.Session() as reader:
            while not stop.is_set():
                with lock:
                    todo = list(expected.items())
                for url, body in todo:
                    answer = reader.get(url, timeout=30)
                    if answer.status_code != 200 or answer.content != body:
                        failures.append(f"{url}: {answer.status_code}")
                    with lock:
                        gets += 1

    def gc() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "davserver.backends.git_gc", str(repo), "2"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    fds_after: list[int] = []  # descriptors on anything but the packs, after each round
    combined = 0
    try:
        for round_ in range(16):
            body = b"round %d\n" % round_ * 40
            url = f"{base}/dav/n{round_}.txt"
            assert session.put(url, data=body, timeout=30).ok
            assert session.put(f"{base}/dav/f0.txt", data=body, timeout=30).ok
            with lock:
                expected[url] = body
                expected[base + versions(session, f"{base}/dav/f0.txt")[-1]] = body
            combined += '"combined": 0' not in gc()
            time.sleep(0.5)
            fds_after.append(len(others(fd_targets(served), repo)))
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not failures, failures[:5]
    assert gets > 300 and combined >= 4

    # A read that misses makes a worker rescan the packs and close those removed more
    # than 10 s ago: none of the server's descriptors is left on a removed pack.
    # The misses come over 8 connections open at once: a worker takes a connection while
    # it has no more open than the other, so both get some of them.
    session.close()
    time.sleep(11)
    askers = [requests.Session() for _ in range(8)]
    try:
        for asker in askers:
            missing = asker.get(f"{base}/dav/f0.txt?version={'0' * 40}", timeout=30)
            assert missing.status_code == 404
    finally:
        for asker in askers:
            asker.close()
    targets = fd_targets(served)
    pack_dir = str(repo / "objects" / "pack")
    on_packs = [t for t in targets if t.startswith(pack_dir)]
    assert not [t for t in on_packs if t.endswith("(deleted)")], on_packs
    live = pack_names(pack_dir)
    assert len(live) <= 4
    assert len(on_packs) <= 2 * 4 * len(live)  # two workers; an index and a pack each
    # Nothing else grew with the runs either (sockets, pipes, state files).
    assert len(others(targets, repo)) <= fds_after[0] + 6, fds_after
    git(repo, "fsck", "--full", "--strict", "--no-dangling")
