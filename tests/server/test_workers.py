"""Several worker processes (``[server] workers``): one lock view, one state, restarts
that drop nothing, socket activation. Every test runs real server processes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests
from davserver.backends.disk import etag_of
from gitrepo import assert_linear_and_clean, commits, files
from helpers import ServerProcess, free_port, start_server

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
    "SUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockinfo>"
)

LOCKDISCOVERY = (
    '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:">'
    "<D:prop><D:lockdiscovery/></D:prop></D:propfind>"
)


def write_config(tmp_path: Path, backend: str = "filesystem", workers: int = 2) -> Path:
    store = (
        f'repo = "{tmp_path / "store.git"}"'
        if backend == "git"
        else f'root = "{tmp_path / "store"}"'
    )
    config = tmp_path / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\nworkers = {workers}\n\n'
        f'[[mounts]]\npath = "/dav"\ntype = "webdav"\nbackend = "{backend}"\n{store}\n\n'
        f'[[mounts]]\npath = "/caldav"\ntype = "caldav"\nroot = "{tmp_path / "calendars"}"\n'
    )
    return config


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with workers; stopped (and checked to leave no worker) at the end."""
    started: list[ServerProcess] = []

    def start(backend: str = "filesystem", workers: int = 2) -> ServerProcess:
        config = write_config(tmp_path, backend, workers)
        server = start_server(tmp_path, "--config", str(config))
        started.append(server)
        wait_for_workers(server, workers)
        return server

    yield start
    for server in started:
        children = psutil.Process(server.proc.pid).children() if server.proc.poll() is None else []
        server.stop()
        psutil.wait_procs(children, timeout=10)
        assert not [c for c in children if c.is_running() and c.status() != "zombie"]


def workers_of(server: ServerProcess) -> set[int]:
    """The pids of the master's live workers (one reaped while they are listed is not)."""
    found = set()
    for child in psutil.Process(server.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != "zombie":
                found.add(child.pid)
    return found


def wait_for_workers(server: ServerProcess, count: int, old: set[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, f"the master exited: {server.log()}"
        found = workers_of(server)
        answers = len(found) == count and not found & old
        if answers and requests.options(server.url + "/dav/", timeout=5).status_code == 200:
            return found
        time.sleep(0.1)
    raise AssertionError(f"workers did not come up: {workers_of(server)}\n{server.log()}")


def fresh(method: str, url: str, **kwargs: object) -> requests.Response:
    """A request on a connection of its own (so that requests spread over the workers)."""
    with requests.Session() as session:
        return session.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]


def pids_in_log(server: ServerProcess) -> set[str]:
    """Which processes wrote access-log lines (the server's output so far)."""
    return set(re.findall(r"davserver\.access\[(\d+)\]", server.log()))


def test_a_lock_taken_through_one_worker_is_honoured_by_the_other(
    cluster: Callable[..., ServerProcess],
) -> None:
    server = cluster()
    url = server.url + "/dav/doc.txt"
    assert fresh("PUT", url, data=b"v1").status_code == 201
    r = fresh("LOCK", url, data=LOCK_BODY, headers={"Timeout": "Second-600"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    refused = [fresh("PUT", url, data=b"intruder").status_code for _ in range(30)]
    assert refused == [423] * 30
    assert fresh("GET", url).content == b"v1"
    assert len(pids_in_log(server)) == 2  # both workers answered
    assert fresh("PUT", url, data=b"v2", headers={"If": f"({token})"}).status_code == 204
    assert fresh("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    assert {fresh("PUT", url, data=b"v3").status_code for _ in range(10)} == {204}


def test_locks_taken_and_released_through_both_workers_at_once_leave_none(
    cluster: Callable[..., ServerProcess],
) -> None:
    """Clients locking, writing and unlocking their own files at once, each step on a
    connection of its own: every step answers as if one process served them all, and no
    worker shows a lock at the end (a worker's own lock change once hid the other's, and
    it kept showing, and enforcing, a lock released there)."""
    server = cluster()
    deadline = time.monotonic() + 8

    def cycles(n: int) -> list[str]:
        url = f"{server.url}/dav/client-{n}.bin"
        wrong = [] if fresh("PUT", url, data=b"first").status_code == 201 else ["first PUT"]
        while time.monotonic() < deadline:
            r = fresh("LOCK", url, data=LOCK_BODY, headers={"Timeout": "Second-600"})
            if r.status_code != 200:
                wrong.append(f"LOCK {r.status_code}")
                continue
            token = r.headers["Lock-Token"]
            put = fresh("PUT", url, data=b"locked", headers={"If": f"({token})"})
            unlock = fresh("UNLOCK", url, headers={"Lock-Token": token})
            if (put.status_code, unlock.status_code) != (204, 204):
                wrong.append(f"PUT {put.status_code}, UNLOCK {unlock.status_code}")
        return wrong

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        wrong = [w for found in pool.map(cycles, range(6)) for w in found]
    assert wrong == []
    shown = [
        fresh(
            "PROPFIND", server.url + "/dav/", data=LOCKDISCOVERY, headers={"Depth": "1"}
        ).text.count("activelock>")
        for _ in range(20)
    ]
    assert shown == [0] * 20
    assert len(pids_in_log(server)) == 2  # both workers answered


@pytest.mark.parametrize("backend", ["filesystem", "git"])
def test_racing_conditional_puts_spread_over_workers_give_one_success(
    cluster: Callable[..., ServerProcess], tmp_path: Path, backend: str
) -> None:
    server = cluster(backend)
    url = server.url + "/dav/race.txt"
    etag = fresh("PUT", url, data=b"start").headers["ETag"]
    before = len(commits(tmp_path / "store.git")) if backend == "git" else 0
    barrier = threading.Barrier(50)

    def put(n: int) -> int:
        with requests.Session() as session:
            barrier.wait()
            return session.put(
                url, data=f"writer {n}".encode(), headers={"If-Match": etag}, timeout=60
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(put, range(50)))
    assert sorted(statuses) == [204] + [412] * 49
    winner = statuses.index(204)
    assert fresh("GET", url).content == f"writer {winner}".encode()
    if backend == "git":
        assert len(commits(tmp_path / "store.git")) == before + 1


def test_git_writes_spread_over_workers_are_all_committed(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The workers' commits take turns (the repository's commit lock) rather than
    losing the branch's compare-and-swap to each other: no 503, one commit each."""
    server = cluster("git")
    repo = tmp_path / "store.git"

    def put(n: int) -> int:
        return fresh("PUT", f"{server.url}/dav/w{n:03d}.txt", data=b"x" * n).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(put, range(160)))
    assert statuses == [201] * 160
    assert len(commits(repo)) == 160
    assert files(repo) == {f"w{n:03d}.txt": b"x" * n for n in range(160)}
    assert_linear_and_clean(repo)


def test_calendar_changes_through_one_worker_are_seen_through_the_other(
    cluster: Callable[..., ServerProcess],
) -> None:
    server = cluster()
    calendar = server.url + "/caldav/calendars/user/calendar/"
    query = (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )
    sync = '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:prop><D:getetag/></D:prop></D:sync-collection>'
    for n in range(6):
        uid = f"event-{n}"
        r = fresh("PUT", f"{calendar}{uid}.ics", data=EVENT.format(uid=uid).encode(),
                  headers={"Content-Type": "text/calendar"})  # fmt: skip
        assert r.status_code == 201
        for _ in range(6):  # fresh connections: both workers
            found = fresh("REPORT", calendar, data=query, headers={"Depth": "1"}).text
            assert f"{uid}.ics" in found
            synced = fresh("REPORT", calendar, data=sync).text
            assert all(f"event-{m}.ics" in synced for m in range(n + 1))
    assert fresh("DELETE", f"{calendar}event-0.ics").status_code == 204
    for _ in range(6):
        assert (
            "event-0.ics" not in fresh("REPORT", calendar, data=query, headers={"Depth": "1"}).text
        )
    assert len(pids_in_log(server)) == 2


def test_racing_calendar_puts_over_workers_are_each_one_change(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A worker that sees (through the change feed) an item the other worker has just
    written reads the index again rather than taking it for a change made behind the
    server's back: every PUT is one change, none is summarized or counted twice."""
    server = cluster()
    calendar = server.url + "/caldav/calendars/user/calendar/"

    def put(n: int) -> tuple[int, str]:
        uid = f"race-{n}"
        r = fresh("PUT", f"{calendar}{uid}.ics", data=EVENT.format(uid=uid).encode(),
                  headers={"Content-Type": "text/calendar"})  # fmt: skip
        return r.status_code, r.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(put, range(80)))
    assert {status for status, _ in answers} == {201}, answers
    sync = (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    for _ in range(4):  # both workers
        listed = re.findall(r"race-\d+\.ics", fresh("REPORT", calendar, data=sync).text)
        assert sorted(listed) == sorted(f"race-{n}.ics" for n in range(80))
    with sqlite3.connect(tmp_path / "state" / "caldav_caldav.sqlite3") as db:
        rows = db.execute(
            "SELECT name, COUNT(*) FROM changes WHERE name LIKE 'race-%' GROUP BY name"
        ).fetchall()
    assert len(rows) == 80 and {count for _, count in rows} == {1}
    assert "outside" not in server.log()


def test_racing_overwrites_over_workers_leave_every_index_at_what_is_on_disk(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Each worker leaves its own writes out of its change feed (they reach its index as
    events): the other worker's overwrites of the same items must still be seen, so after
    racing overwrites both workers answer with the ETags of the files on disk, and a sync
    from scratch lists every item exactly once."""
    server = cluster()
    calendar = server.url + "/caldav/calendars/user/calendar/"

    def put(n: int) -> int:
        uid = f"over-{n % 8}"
        body = EVENT.format(uid=uid).replace("SUMMARY:", f"SUMMARY:{n} ").encode()
        r = fresh("PUT", f"{calendar}{uid}.ics", data=body,
                  headers={"Content-Type": "text/calendar"})  # fmt: skip
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, range(96))) <= {201, 204}
    folder = tmp_path / "calendars" / "user" / "calendar"
    on_disk = {f"over-{n}.ics": etag_of(os.stat(folder / f"over-{n}.ics")) for n in range(8)}
    query = (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>'
        '<C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    sync = (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    pattern = r"(over-\d+\.ics)</D:href>.*?<D:getetag>([^<]*)</D:getetag>"
    for _ in range(6):  # fresh connections: both workers
        text = fresh("REPORT", calendar, data=query, headers={"Depth": "1"}).text
        found = {name: html.unescape(etag) for name, etag in re.findall(pattern, text, re.S)}
        assert found == on_disk
        listed = re.findall(r"over-\d+\.ics", fresh("REPORT", calendar, data=sync).text)
        assert sorted(listed) == sorted(on_disk)
    assert "outside" not in server.log()
    assert len(pids_in_log(server)) == 2


def test_a_worker_that_dies_is_replaced(cluster: Callable[..., ServerProcess]) -> None:
    server = cluster()
    first = workers_of(server)
    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)
    now = wait_for_workers(server, 2, old={victim})
    assert victim not in now and len(now) == 2
    assert {fresh("GET", server.url + "/dav/").status_code for _ in range(20)} == {200}
    assert re.search(rf"worker {victim} \(slot \d\) exited \(signal 9\)", server.log())


def _load(url: str, stop: threading.Event, keep_alive: bool) -> list[str]:
    """GETs until ``stop``; what went wrong (nothing, we hope)."""
    failures: list[str] = []
    session = requests.Session() if keep_alive else None
    count = 0
    while not stop.is_set():
        try:
            r = (session or requests).get(url, timeout=30)
            if r.status_code != 200:
                failures.append(f"status {r.status_code}")
        except requests.RequestException as exc:
            failures.append(repr(exc))
        count += 1
    failures.append(f"done {count}")
    return failures


def test_sighup_replaces_the_workers_without_a_failed_request(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = cluster()
    url = server.url + "/dav/page.txt"
    assert fresh("PUT", url, data=b"page").status_code == 201
    old = workers_of(server)
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(_load, url, stop, keep) for keep in (True, True, False, False)]
        time.sleep(1)
        server.proc.send_signal(signal.SIGHUP)
        new = wait_for_workers(server, 2, old=old)
        time.sleep(3)  # the old workers finish and close their connections
        stop.set()
        results = [f.result() for f in loads]
    failures = [x for r in results for x in r if not x.startswith("done")]
    counts = [int(x.split()[1]) for r in results for x in r if x.startswith("done")]
    assert failures == []
    assert all(c > 10 for c in counts), counts
    assert not old & new
    # A configuration that does not load is refused, and the workers go on.
    config = tmp_path / "davserver.toml"
    good = config.read_text()
    config.write_text(good + "\n[server\n")
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(2)
    assert workers_of(server) == new
    assert "SIGHUP: configuration refused" in server.log()
    assert fresh("GET", url).status_code == 200


def test_sigterm_lets_an_upload_finish_and_stops_every_worker(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = cluster()
    url = server.url + "/dav/big.bin"

    def body() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536
            time.sleep(0.1)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        upload = pool.submit(fresh, "PUT", url, data=body())
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        assert upload.result().status_code == 201
    assert server.proc.wait(timeout=30) == 0
    assert (tmp_path / "store" / "big.bin").stat().st_size == 20 * 65536


def test_socket_activation_serves_on_the_sockets_systemd_passes(tmp_path: Path) -> None:
    """systemd-socket-activate (Debian's systemd package) binds the port and starts the
    server with LISTEN_FDS, as a .socket unit does."""
    port = free_port()
    config = write_config(tmp_path, workers=2)
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
         sys.executable, "-m", "davserver", "serve", "--config", str(config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/dav/a.txt"
        deadline = time.monotonic() + 20
        while True:  # until systemd-socket-activate listens; the first request starts us
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
                time.sleep(0.05)
        assert fresh("PUT", url, data=b"activated").status_code == 201
        assert {fresh("GET", url).content for _ in range(10)} == {b"activated"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert (tmp_path / "store" / "a.txt").read_bytes() == b"activated"


def test_the_shipped_systemd_units_run_what_is_tested_here() -> None:
    """docs/systemd: the service runs `davserver serve --config`, reloads with SIGHUP,
    stops with SIGTERM to the master only (it stops the workers), and needs the socket."""
    units = Path(__file__).resolve().parents[2] / "docs" / "systemd"
    service = (units / "davserver.service").read_text()
    socket_unit = (units / "davserver.socket").read_text()
    assert re.search(r"^ExecStart=\S+/davserver serve --config \S+$", service, re.MULTILINE)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in service
    assert "KillMode=mixed" in service and "KillSignal=SIGTERM" in service
    assert "Requires=davserver.socket" in service
    assert re.search(r"^ListenStream=\S+$", socket_unit, re.MULTILINE)
