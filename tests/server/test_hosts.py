"""Several hosts: server processes on their own ports, each with its own state folder,
sharing one PostgreSQL database (``[state] url``) and one data folder (or one git
repository). Locks, changes, calendar indexes, conditional writes, quotas, shares and push
subscriptions hold across them, and a database restart under load loses nothing. Every
test runs real server processes against the test cluster (tests/pgcluster.py)."""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from gitrepo import assert_linear_and_clean, commits
from helpers import ServerProcess, snapshot, start_server
from pgcluster import Cluster
from pushservice import Client, PushService
from pushtools import register_body

from davserver.auth import htpasswd
from davserver.state.postgres.schema import LEADER_LOCK

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
QUERY = (
    '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:comp-filter></C:comp-filter>'
    "</C:filter></C:calendar-query>"
)
SYNC = (
    '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)
QUOTA_USED = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/>'
    "</D:prop></D:propfind>"
)
CALENDAR = "/caldav/calendars/user/calendar/"
VISIBLE_WITHIN = 1.0


def write_config(
    folder: Path,
    shared: Path,
    url: str,
    backend: str,
    workers: int = 1,
    quota: str = "",
    extra: str = "",
) -> Path:
    """A host's configuration: its own state folder, the shared store, database and
    uploads folder (and the WebDAV mount's ``quota``, and ``extra`` tables, when given)."""
    store = (
        f'repo = "{shared / "store.git"}"' if backend == "git" else f'root = "{shared / "store"}"'
    )
    if quota:
        store += f'\nquota = "{quota}"'
    config = folder / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{folder / "state"}"\nworkers = {workers}\n\n'
        f'[state]\nurl = "{url}"\nuploads_dir = "{shared / "uploads"}"\n\n'
        f'[[mounts]]\npath = "/dav"\ntype = "webdav"\nbackend = "{backend}"\n{store}\n\n'
        f'[[mounts]]\npath = "/caldav"\ntype = "caldav"\nroot = "{shared / "calendars"}"\n'
        f"{extra}"
    )
    return config


Hosts = Callable[..., tuple[ServerProcess, ServerProcess]]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    """Start two hosts on one database (stopped at the end)."""
    started: list[ServerProcess] = []

    def start(
        url: str,
        backend: str = "filesystem",
        workers: int = 1,
        quota: str = "",
        extra: str = "",
        again: bool = False,
    ) -> tuple[ServerProcess, ServerProcess]:
        """Hosts a (with ``workers`` workers) and b (one process); ``again``: in the
        folders of the hosts started before."""
        shared = tmp_path / "shared"
        for name, count in (("a", workers), ("b", 1)):
            (tmp_path / name).mkdir(exist_ok=again)
            # Each host's sessions named after it (pg_stat_activity tells whose they are).
            named = f"{url}{'&' if '?' in url else '?'}application_name=host-{name}"
            config = write_config(tmp_path / name, shared, named, backend, count, quota, extra)
            started.append(start_server(tmp_path / name, "--config", str(config)))
        return started[-2], started[-1]

    yield start
    for server in started:
        server.stop()


def fresh(method: str, url: str, **kwargs: object) -> requests.Response:
    """A request on a connection of its own."""
    with requests.Session() as session:
        return session.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]


def put_event(host: ServerProcess, uid: str) -> int:
    r = fresh("PUT", f"{host.url}{CALENDAR}{uid}.ics", data=EVENT.format(uid=uid).encode(),
              headers={"Content-Type": "text/calendar"})  # fmt: skip
    return r.status_code


def sync_token(host: ServerProcess) -> str:
    r = fresh("REPORT", host.url + CALENDAR, data=SYNC.format(token=""))
    assert r.status_code == 207, r.text
    found = re.search(r"<D:sync-token>([^<]+)</D:sync-token>", r.text)
    assert found is not None, r.text
    return found.group(1)


def quota_used(host: ServerProcess) -> int:
    r = fresh("PROPFIND", host.url + "/dav/", data=QUOTA_USED, headers={"Depth": "0"})
    found = re.search(r"<D:quota-used-bytes>(\d+)<", r.text)
    assert r.status_code == 207 and found is not None, r.text
    return int(found.group(1))


def until_visible(check: Callable[[], bool], within: float = VISIBLE_WITHIN) -> float:
    """Seconds until ``check()`` held (asked again and again); fails after ``within``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not visible within {within} s")
        time.sleep(0.005)


def test_a_lock_taken_through_one_host_is_honoured_by_the_other(hosts: Hosts, pg_url: str) -> None:
    a, b = hosts(pg_url, workers=2)  # b and a's other worker enforce a's lock
    assert fresh("PUT", a.url + "/dav/doc.txt", data=b"v1").status_code == 201
    r = fresh("LOCK", a.url + "/dav/doc.txt", data=LOCK_BODY, headers={"Timeout": "Second-600"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    # At once: the very next request, through the other host.
    assert fresh("PUT", b.url + "/dav/doc.txt", data=b"intruder").status_code == 423
    assert fresh("DELETE", b.url + "/dav/doc.txt").status_code == 423
    for _ in range(10):  # fresh connections: both of a's workers
        assert fresh("PUT", a.url + "/dav/doc.txt", data=b"intruder").status_code == 423
    assert fresh("GET", b.url + "/dav/doc.txt").content == b"v1"
    assert (
        token.strip("<>") in fresh("PROPFIND", b.url + "/dav/doc.txt", headers={"Depth": "0"}).text
    )
    put = fresh("PUT", b.url + "/dav/doc.txt", data=b"v2", headers={"If": f"({token})"})
    assert put.status_code == 204
    assert fresh("UNLOCK", b.url + "/dav/doc.txt", headers={"Lock-Token": token}).status_code == 204
    assert fresh("PUT", a.url + "/dav/doc.txt", data=b"v3").status_code == 204
    assert fresh("GET", b.url + "/dav/doc.txt").content == b"v3"


def test_a_change_through_one_host_is_seen_through_the_other_within_a_second(
    hosts: Hosts, pg_url: str
) -> None:
    a, b = hosts(pg_url, workers=2)
    assert fresh("MKCOL", a.url + "/dav/folder/").status_code == 201
    token = sync_token(b)
    waited: list[float] = []

    def listed(reader: ServerProcess, name: str) -> list[Callable[[], bool]]:
        """Whether the other host's PROPFIND, calendar-query, sync-collection name it."""
        return [
            lambda: f"{name}.txt" in fresh("PROPFIND", reader.url + "/dav/folder/", headers={"Depth": "1"}).text,
            lambda: f"{name}.ics" in fresh("REPORT", reader.url + CALENDAR, data=QUERY, headers={"Depth": "1"}).text,
            lambda: f"{name}.ics" in fresh("REPORT", reader.url + CALENDAR, data=SYNC.format(token=token)).text,
        ]  # fmt: skip

    for n in range(5):
        writer, reader = (a, b) if n % 2 == 0 else (b, a)
        name = f"event-{n}"
        assert fresh("PUT", f"{writer.url}/dav/folder/{name}.txt", data=b"x").status_code == 201
        assert put_event(writer, name) == 201
        waited += [until_visible(check) for check in listed(reader, name)]
    assert fresh("DELETE", f"{a.url}{CALENDAR}event-0.ics").status_code == 204
    waited.append(until_visible(
        lambda: "event-0.ics" not in fresh("REPORT", b.url + CALENDAR, data=QUERY, headers={"Depth": "1"}).text
    ))  # fmt: skip
    print(f"seen through the other host after {max(waited) * 1000:.0f} ms at most")


@pytest.mark.parametrize("backend", ["filesystem", "git"])
def test_racing_conditional_puts_over_both_hosts_give_one_success(
    hosts: Hosts, pg_url: str, tmp_path: Path, backend: str
) -> None:
    a, b = hosts(pg_url, backend)
    etag = fresh("PUT", a.url + "/dav/race.txt", data=b"start").headers["ETag"]
    repo = tmp_path / "shared" / "store.git"
    before = len(commits(repo)) if backend == "git" else 0
    barrier = threading.Barrier(50)

    def put(n: int) -> int:
        host = (a, b)[n % 2]
        with requests.Session() as session:
            barrier.wait()
            return session.put(
                host.url + "/dav/race.txt", data=f"writer {n}".encode(),
                headers={"If-Match": etag}, timeout=60,
            ).status_code  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(put, range(50)))
    assert sorted(statuses) == [204] + [412] * 49
    winner = statuses.index(204)
    for host in (a, b):
        assert fresh("GET", host.url + "/dav/race.txt").content == f"writer {winner}".encode()
    if backend == "git":
        assert len(commits(repo)) == before + 1
    else:
        listing = fresh("PROPFIND", a.url + "/dav/", headers={"Depth": "1"}).text
        assert ".davtmp" not in listing  # the shared lock file is hidden


def test_git_writes_through_both_hosts_make_a_linear_history(
    hosts: Hosts, pg_url: str, tmp_path: Path
) -> None:
    a, b = hosts(pg_url, "git")

    def put(n: int) -> int:
        host = (a, b)[n % 2]
        return fresh("PUT", f"{host.url}/dav/file-{n}.txt", data=f"{n}".encode()).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, range(40)))
    assert statuses == [201] * 40
    repo = tmp_path / "shared" / "store.git"
    assert len(commits(repo)) == 40  # one commit per write, none lost
    assert_linear_and_clean(repo)
    for n in range(40):
        assert fresh("GET", f"{(b, a)[n % 2].url}/dav/file-{n}.txt").content == f"{n}".encode()


def test_a_database_of_a_newer_schema_is_refused_at_start(
    postgres: Cluster, pg_url: str, tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    first = server_process("--config", str(write_config(tmp_path, tmp_path, pg_url, "filesystem")))
    first.stop()
    database = urlsplit(pg_url).path.lstrip("/")
    postgres.psql("INSERT INTO davserver_schema (version) VALUES (99)", database)
    with pytest.raises(AssertionError, match="exited early") as refused:
        server_process("--config", str(write_config(tmp_path, tmp_path, pg_url, "filesystem")))
    assert "cannot start: the state database's schema is version 99, newer than" in str(
        refused.value
    )


def test_a_database_restart_under_load_loses_nothing(hosts: Hosts, tmp_path: Path) -> None:
    cluster = Cluster()  # a cluster of its own: it is stopped and started again
    try:
        cluster.start()
        a, b = hosts(cluster.new_database())
        answers: dict[str, tuple[int, float]] = {}  # uid: status, when
        stop = threading.Event()

        def load(host: ServerProcess, name: str) -> None:
            n = 0
            while not stop.is_set():
                uid = f"{name}-{n}"
                try:
                    answers[uid] = (put_event(host, uid), time.monotonic())
                except requests.RequestException:
                    answers[uid] = (0, time.monotonic())
                n += 1

        assert fresh("PUT", a.url + "/dav/kept.txt", data=b"kept").status_code == 201
        assert put_event(a, "first") == 201  # the calendar home made (not part of the race)
        threads = [threading.Thread(target=load, args=(h, n)) for h, n in ((a, "a"), (b, "b"))]
        try:
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            cluster.stop("fast")
            time.sleep(0.5)
            # What needs no state goes on while the database is down.
            during = [
                (fresh("GET", host.url + "/dav/kept.txt").content,
                 "kept.txt" in fresh("PROPFIND", host.url + "/dav/", headers={"Depth": "1"}).text)
                for host in (a, b)
            ]  # fmt: skip
            time.sleep(1.0)
            cluster.start()
            back = time.monotonic()
            time.sleep(2.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert during == [(b"kept", True)] * 2
        recovered = {
            name: min(t for u, (s, t) in answers.items() if u[0] == name and s == 201 and t > back)
            - back
            for name in "ab"
        }
        statuses = sorted({s for s, _ in answers.values()})
        assert statuses == [201, 503], statuses  # nothing else: no 500, no dropped connection
        for host in (a, b):
            assert "the state database cannot be used" in host.log()
        # After the restart, both hosts write again by themselves.
        assert put_event(a, "after-a") == 201 and put_event(b, "after-b") == 201
        made = {u for u, (s, _) in answers.items() if s == 201} | {"first", "after-a", "after-b"}
        on_disk = {
            p.name.removesuffix(".ics")
            for p in (tmp_path / "shared" / "calendars" / "user" / "calendar").glob("*.ics")
        }
        assert made <= on_disk  # every write that said so is stored
        for host in (a, b):
            listed = set(
                re.findall(r"/calendar/([^/<]+)\.ics<",
                           fresh("REPORT", host.url + CALENDAR, data=QUERY, headers={"Depth": "1"}).text)
            )  # fmt: skip
            assert listed == on_disk  # the index knows exactly what is stored
            synced = fresh("REPORT", host.url + CALENDAR, data=SYNC.format(token="")).text
            assert set(re.findall(r"/calendar/([^/<]+)\.ics<", synced)) == on_disk
        counts = {s: sum(1 for v, _ in answers.values() if v == s) for s in statuses}
        after = ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in recovered.items())
        print(f"under a database restart: {counts}; writing again after the start: {after}")
    finally:
        cluster.remove()


def test_a_quota_counts_what_every_host_stored(hosts: Hosts, pg_url: str, tmp_path: Path) -> None:
    a, b = hosts(pg_url, quota="1000")
    # Both hosts have counted the empty store: from now on only the shared figure tells
    # b what a stored (a recount comes after quota_rescan, minutes away).
    assert quota_used(a) == quota_used(b) == 0
    assert fresh("PUT", a.url + "/dav/a.bin", data=b"x" * 600).status_code == 201
    assert quota_used(b) == 600
    before = snapshot(tmp_path / "shared" / "store")
    r = fresh("PUT", b.url + "/dav/b.bin", data=b"y" * 500)
    assert r.status_code == 507, r.text
    assert "quota-not-exceeded" in r.text
    assert snapshot(tmp_path / "shared" / "store") == before
    assert fresh("DELETE", a.url + "/dav/a.bin").status_code == 204
    assert fresh("PUT", b.url + "/dav/b.bin", data=b"y" * 500).status_code == 201
    assert quota_used(a) == 500


def test_the_pieces_of_a_resumable_upload_may_go_to_any_host(
    hosts: Hosts, pg_url: str, tmp_path: Path
) -> None:
    a, b = hosts(pg_url)
    body = bytes(range(256)) * 40
    url = "/dav/big.bin?upload=across-hosts-1"
    store = tmp_path / "shared" / "store"
    pieces = ((a, 0, 4096), (b, 4096, 8192), (a, 8192, len(body)))
    for number, (host, start, end) in enumerate(pieces):
        headers = {
            "Content-Type": "application/x-sabredav-partialupdate",
            "X-Update-Range": f"bytes={start}-{end - 1}",
            "X-Upload-Length": str(len(body)),
        }
        r = fresh("PATCH", host.url + url, data=body[start:end], headers=headers)
        if number < len(pieces) - 1:
            assert r.status_code == 202, r.text
            assert r.headers["X-Upload-Offset"] == str(end)
            assert "big.bin" not in snapshot(store)  # whole or not at all
        else:
            assert r.status_code == 201, r.text
    assert fresh("GET", b.url + "/dav/big.bin").content == body
    assert (store / "big.bin").read_bytes() == body


def test_a_share_made_through_one_host_holds_on_the_other(
    hosts: Hosts, pg_url: str, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    htpasswd.write(users, {u: htpasswd.hash_password(f"{u}-pw") for u in ("alice", "bob")})
    a, b = hosts(pg_url, extra=f'\n[auth]\nhtpasswd = "{users}"\n')
    calendar = "/caldav/calendars/alice/calendar/"
    alice, bob = ("alice", "alice-pw"), ("bob", "bob-pw")
    r = fresh("PUT", a.url + calendar + "e.ics", data=EVENT.format(uid="e").encode(),
              headers={"Content-Type": "text/calendar"}, auth=alice)  # fmt: skip
    assert r.status_code == 201, r.text
    assert fresh("GET", b.url + calendar + "e.ics", auth=bob).status_code == 403
    share = (
        '<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set>'
        "<D:href>mailto:bob@localhost</D:href><CS:read/></CS:set></CS:share>"
    )
    xml = {"Content-Type": "application/xml; charset=utf-8"}
    assert fresh("POST", a.url + calendar, data=share, headers=xml, auth=alice).status_code == 200
    assert fresh("GET", b.url + calendar + "e.ics", auth=bob).status_code == 200
    revoke = share.replace("<CS:set>", "<CS:remove>").replace("<CS:read/></CS:set>", "</CS:remove>")
    assert fresh("POST", b.url + calendar, data=revoke, headers=xml, auth=alice).status_code == 200
    assert fresh("GET", a.url + calendar + "e.ics", auth=bob).status_code == 403


def test_a_delegate_named_through_one_host_is_one_on_the_other(
    hosts: Hosts, pg_url: str, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    htpasswd.write(users, {u: htpasswd.hash_password(f"{u}-pw") for u in ("alice", "bob")})
    a, b = hosts(pg_url, extra=f'\n[auth]\nhtpasswd = "{users}"\n')
    event = "/caldav/calendars/alice/calendar/e.ics"
    alice, bob = ("alice", "alice-pw"), ("bob", "bob-pw")
    r = fresh("PUT", a.url + event, data=EVENT.format(uid="e").encode(),
              headers={"Content-Type": "text/calendar"}, auth=alice)  # fmt: skip
    assert r.status_code == 201, r.text
    writers = "/caldav/principals/alice/calendar-proxy-write/"
    xml = {"Content-Type": "application/xml; charset=utf-8"}

    def members(*hrefs: str) -> str:
        links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
        return (
            '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:group-member-set>'
            f"{links}</D:group-member-set></D:prop></D:set></D:propertyupdate>"
        )

    add = members("/caldav/principals/bob/")
    assert fresh("PROPPATCH", a.url + writers, data=add, headers=xml, auth=alice).status_code == 207
    assert fresh("GET", b.url + event, auth=bob).status_code == 200
    drop = members()
    assert (
        fresh("PROPPATCH", b.url + writers, data=drop, headers=xml, auth=alice).status_code == 207
    )
    assert fresh("GET", a.url + event, auth=bob).status_code == 403


def test_a_push_subscription_made_through_one_host_is_known_to_the_other(
    hosts: Hosts, pg_url: str
) -> None:
    push = '\n[push]\nenabled = true\nallow_hosts = ["127.0.0.1"]\n'
    a, b = hosts(pg_url, extra=push)
    register = (
        '<?xml version="1.0" encoding="utf-8"?><P:push-register xmlns:P="https://bitfire.at/'
        'webdav-push" xmlns:D="DAV:"><P:subscription><P:web-push-subscription><P:push-resource>'
        'http://127.0.0.1:9/one</P:push-resource><P:subscription-public-key type="p256dh">'
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        "</P:subscription-public-key><P:auth-secret>BTBZMqHH6r4Tts7J_aSIgg</P:auth-secret>"
        "</P:web-push-subscription></P:subscription><P:trigger><P:content-update>"
        "<D:sync-level>1</D:sync-level></P:content-update></P:trigger></P:push-register>"
    )
    xml = {"Content-Type": "application/xml"}
    r = fresh("POST", a.url + "/dav/", data=register, headers=xml)
    assert r.status_code == 201, r.text
    location = r.headers["Location"]
    # The same push resource registered again through b: an update of the one a made.
    r = fresh("POST", b.url + "/dav/", data=register, headers=xml)
    assert r.status_code == 204, r.text
    assert r.headers["Location"] == location
    assert location.startswith("/dav/?")  # the registration's URL, on every host
    assert fresh("DELETE", b.url + location).status_code == 204
    assert fresh("DELETE", a.url + location).status_code == 404


def test_a_meeting_organized_through_one_host_is_cancelled_through_the_other(
    hosts: Hosts, pg_url: str, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    names = ("alice", "bob", "carol")
    htpasswd.write(users, {u: htpasswd.hash_password(f"{u}-pw") for u in names})
    a, b = hosts(pg_url, extra=f'\n[auth]\nhtpasswd = "{users}"\n')
    alice = ("alice", "alice-pw")
    ics = {"Content-Type": "text/calendar"}

    def meeting(uid: str, *attendees: str) -> bytes:
        lines = "".join(
            f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{who}@localhost\r\n"
            for who in attendees
        )
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
            "DTEND:20260105T110000Z\r\nSUMMARY:planned\r\n"
            "ORGANIZER:mailto:alice@localhost\r\n"
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@localhost\r\n{lines}"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()

    def inbox(user: str, uid: str) -> list[str]:
        """The METHOD of each message of the meeting ``uid`` in ``user``'s inbox."""
        path = f"/caldav/calendars/{user}/inbox/"
        auth = (user, f"{user}-pw")
        listing = fresh("PROPFIND", a.url + path, headers={"Depth": "1"}, auth=auth).text
        methods = []
        for name in sorted(set(re.findall(rf"{path}([^<]+\.ics)<", listing))):
            body = fresh("GET", a.url + path + name, auth=auth).text
            if f"UID:{uid}\r\n" in body:
                methods += re.findall(r"^METHOD:(\w+)", body, re.MULTILINE)
        return sorted(methods)

    def put(host: ServerProcess, uid: str, *attendees: str) -> int:
        path = f"/caldav/calendars/alice/calendar/{uid}.ics"
        return fresh("PUT", host.url + path, data=meeting(uid, *attendees), headers=ics,
                     auth=alice).status_code  # fmt: skip

    def delete(host: ServerProcess, uid: str) -> int:
        path = f"/caldav/calendars/alice/calendar/{uid}.ics"
        return fresh("DELETE", host.url + path, auth=alice).status_code

    # Organized through a, deleted through b: b knows whom to cancel it for.
    assert put(a, "m1", "bob") == 201
    assert inbox("bob", "m1") == ["REQUEST"]
    assert delete(b, "m1") == 204
    assert inbox("bob", "m1") == ["CANCEL", "REQUEST"]
    # An attendee removed through b is cancelled for; the meeting deleted through a
    # then (a knows what b recorded) is cancelled for the one left, and once only.
    assert put(a, "m2", "bob", "carol") == 201
    assert inbox("bob", "m2") == inbox("carol", "m2") == ["REQUEST"]
    assert put(b, "m2", "bob") == 204
    assert inbox("carol", "m2") == ["CANCEL", "REQUEST"]
    assert delete(a, "m2") == 204
    assert inbox("bob", "m2")[0] == "CANCEL"
    assert inbox("carol", "m2") == ["CANCEL", "REQUEST"]


PUSH = (
    '\n[push]\nenabled = true\nallow_hosts = ["127.0.0.1"]\nmerge_window = 0.05\n'
    "poll_interval = 0.2\n"
)
PUSH_PROPS = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:P="https://bitfire.at/webdav-push">'
    "<D:prop><P:transports/><P:topic/></D:prop></D:propfind>"
)


@pytest.fixture
def push_service() -> Iterator[PushService]:
    """A running test push service (it checks each message's VAPID token and decrypts
    it)."""
    service = PushService().start()
    yield service
    service.stop()


def push_props(host: ServerProcess, path: str) -> tuple[str, str]:
    """The VAPID public key and the topic a host gives the collection ``path``."""
    r = fresh("PROPFIND", host.url + path, data=PUSH_PROPS, headers={"Depth": "0"})
    key = re.search(r"<P:vapid-public-key[^>]*>([^<]+)<", r.text)
    topic = re.search(r"<P:topic[^>]*>([^<]+)<", r.text)
    assert r.status_code == 207 and key is not None and topic is not None, r.text
    return key.group(1), topic.group(1)


def subscribe(host: ServerProcess, path: str, client: Client) -> None:
    r = fresh("POST", host.url + path, data=register_body(client),
              headers={"Content-Type": "application/xml"})  # fmt: skip
    assert r.status_code == 201, r.text


def test_push_keys_are_made_once_for_every_host(
    hosts: Hosts, pg_url: str, push_service: PushService, tmp_path: Path
) -> None:
    a, b = hosts(pg_url, workers=2, extra=PUSH)
    key, topic = push_props(a, "/dav/")
    assert push_props(b, "/dav/") == (key, topic)
    for _ in range(6):  # fresh connections: both of a's workers
        assert push_props(a, "/dav/") == (key, topic)
    assert push_props(b, CALENDAR)[0] == key
    assert push_props(b, CALENDAR) == push_props(a, CALENDAR)
    for host in ("a", "b"):  # in the database, not in the hosts' state folders
        assert not (tmp_path / host / "state" / "push" / "vapid.pem").exists()
    # A subscription made through a; a change through b is signed with the key a
    # advertised (the service refuses a message signed with another).
    push_service.vapid_key = key
    client = push_service.client("c")
    subscribe(a, "/dav/", client)
    assert fresh("PUT", b.url + "/dav/through-b.txt", data=b"x").status_code == 201
    (message,) = push_service.wait("c", 1)
    assert message.topic == topic and message.content
    assert push_service.rejected == []
    # The keys outlive the hosts: started again, they sign with the same.
    a.stop()
    b.stop()
    a, b = hosts(pg_url, extra=PUSH, again=True)
    assert push_props(a, "/dav/") == push_props(b, "/dav/") == (key, topic)


def changes_of(postgres: Cluster, pg_url: str, table: str, where: str) -> int:
    """How many rows of the state's change ``table`` match ``where``."""
    database = urlsplit(pg_url).path.lstrip("/")
    return int(postgres.psql(f"SELECT count(*) FROM {table} WHERE {where}", database))


def test_an_outside_change_of_a_shared_folder_is_pushed_once(
    hosts: Hosts, postgres: Cluster, pg_url: str, push_service: PushService, tmp_path: Path
) -> None:
    _a, b = hosts(pg_url, workers=2, extra=PUSH)  # three processes poll, if they may
    client = push_service.client("c")
    subscribe(b, "/dav/", client)
    time.sleep(1.0)  # the poller has seen the folder as it is
    (tmp_path / "shared" / "store" / "outside.txt").write_bytes(b"made on the shared disk")
    (message,) = push_service.wait("c", 1)
    time.sleep(1.5)  # a second message would have come by now
    assert len(push_service.messages("c")) == 1 and message.content
    assert push_service.rejected == []
    # One entry of the change sequence for it, whose number the message carries.
    assert changes_of(postgres, pg_url, "changes", "path = 'outside.txt'") == 1
    seq = postgres.psql(
        "SELECT seq FROM changes WHERE path = 'outside.txt'", urlsplit(pg_url).path.lstrip("/")
    ).strip()
    assert message.token is not None and message.token.endswith(f"-{seq}")


def test_an_outside_edit_of_a_calendar_is_one_change_for_every_host(
    hosts: Hosts, postgres: Cluster, pg_url: str, push_service: PushService, tmp_path: Path
) -> None:
    a, b = hosts(pg_url, extra=PUSH)
    assert put_event(a, "e1") == 201
    # The PUT's own change is dispatched (its subscriptions looked up in the database)
    # in the background: a subscription made before that lookup would be owed it too.
    time.sleep(1.0)
    client = push_service.client("c")
    subscribe(a, CALENDAR, client)
    before = {host.url: sync_token(host) for host in (a, b)}  # both follow the calendar
    item = tmp_path / "shared" / "calendars" / "user" / "calendar" / "e1.ics"
    item.write_bytes(EVENT.format(uid="e1").replace("SUMMARY:e1", "SUMMARY:edited").encode())
    # Both hosts find it at once, and so may the poller.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(sync_token, [a, b, a, b]))
    assert all(t not in before.values() for t in tokens)
    (message,) = push_service.wait("c", 1)
    time.sleep(1.5)
    assert [m.token for m in push_service.messages("c")] == [message.token]
    assert changes_of(postgres, pg_url, "calendar_changes", "name = 'e1.ics'") == 2  # made, edited
    assert changes_of(postgres, pg_url, "changes", "path LIKE '%/e1.ics'") == 2
    assert len(set(tokens)) == 1 and message.token == tokens[0]
    assert "SUMMARY:edited" in fresh("GET", f"{b.url}{CALENDAR}e1.ics").text


def test_when_the_host_that_polls_dies_the_other_takes_over(
    hosts: Hosts, postgres: Cluster, pg_url: str, push_service: PushService, tmp_path: Path
) -> None:
    a, b = hosts(pg_url, extra=PUSH)
    client = push_service.client("c")
    subscribe(a, "/dav/", client)
    store = tmp_path / "shared" / "store"
    time.sleep(1.0)
    (store / "one.txt").write_bytes(b"1")
    push_service.wait("c", 1)
    database = urlsplit(pg_url).path.lstrip("/")
    leader = postgres.psql(
        "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        f" WHERE l.locktype = 'advisory' AND l.classid = {LEADER_LOCK} AND l.granted",
        database,
    ).split()
    assert leader in (["host-a"], ["host-b"])
    dead, alive = (a, b) if leader == ["host-a"] else (b, a)
    dead.proc.kill()  # no goodbye: its sessions end when the kernel closes them
    dead.proc.wait()
    time.sleep(1.0)  # the other one takes over and sees the folder as it is
    (store / "two.txt").write_bytes(b"2")
    push_service.wait("c", 2)
    time.sleep(1.5)
    assert len(push_service.messages("c")) == 2
    assert changes_of(postgres, pg_url, "changes", "path = 'two.txt'") == 1
    assert fresh("GET", alive.url + "/dav/two.txt").content == b"2"
