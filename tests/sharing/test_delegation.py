"""Delegation (CalendarServer's caldav-proxy) end to end: the owner names delegates by
PROPPATCH of ``calendar-proxy-read/`` and ``calendar-proxy-write/``, a delegate finds the
owner through ``calendar-proxy-*-for`` (expand-property, as Apple's clients ask), reads
(and writes) the owner's calendar home and nothing else, writes as themselves, and a
revocation refuses the delegate's next request, in every worker too."""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import caldav
import pytest
from aiohttp.test_utils import TestClient
from caldav.lib import error
from gitrepo import git
from helpers import snapshot, start_server

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import load

USERS = ("alice", "bob", "carl", "dora")
XML = {"Content-Type": "application/xml; charset=utf-8"}
ICS = {"Content-Type": "text/calendar"}
PRINCIPAL = "/dav/principals/alice/"
WRITERS = f"{PRINCIPAL}calendar-proxy-write/"
READERS = f"{PRINCIPAL}calendar-proxy-read/"
HOME = "/dav/calendars/alice/"
CALENDAR = f"{HOME}calendar/"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
    "DURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def members(*hrefs: str) -> str:
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        f"<D:group-member-set>{links}</D:group-member-set></D:prop></D:set></D:propertyupdate>"
    )


def event(uid: str, summary: str = "Lunch") -> str:
    return EVENT.format(uid=uid, summary=summary)


def write_config(tmp_path: Path, store: str = "") -> Path:
    users = tmp_path / "users"
    htpasswd.write(users, {u: htpasswd.hash_password(f"{u}-pw") for u in USERS})
    path = tmp_path / "config.toml"
    where = store or f'root = "{tmp_path / "cal"}"'
    path.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\naccess_log = false\n'
        f'[auth]\nhtpasswd = "{users}"\n[groups]\nteam = ["dora"]\n'
        f'[[mounts]]\npath = "/dav"\ntype = "caldav"\n{where}\n'
    )
    return path


async def start(aiohttp_client: Any, tmp_path: Path, store: str = "") -> TestClient:
    config = await asyncio.to_thread(lambda: load(write_config(tmp_path, store)))
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    client = await start(aiohttp_client, tmp_path)
    resp = await client.put(f"{CALENDAR}a.ics", data=event("a"), headers={**ICS, **basic("alice")})
    assert resp.status == 201
    return client


async def delegate(client: TestClient, group: str, *hrefs: str, user: str = "alice") -> int:
    resp = await client.request(
        "PROPPATCH", group, data=members(*hrefs), headers={**XML, **basic(user)}
    )
    return resp.status


async def propfind(client: TestClient, path: str, user: str, props: str, depth: str = "0") -> str:
    body = (
        '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
        f'xmlns:CS="http://calendarserver.org/ns/"><D:prop>{props}</D:prop></D:propfind>'
    )
    resp = await client.request(
        "PROPFIND", path, data=body, headers={"Depth": depth, **XML, **basic(user)}
    )
    assert resp.status == 207, (path, user, resp.status)
    return await resp.text()


async def test_the_owner_names_delegates_who_find_and_reach_the_home(client: TestClient) -> None:
    resp = await client.options(HOME, headers=basic("alice"))
    assert "calendar-proxy" in resp.headers["DAV"]
    # The groups of delegates are principals under alice's.
    text = await propfind(client, PRINCIPAL, "alice", "<D:resourcetype/>", depth="1")
    assert f"<D:href>{WRITERS}</D:href>" in text and f"<D:href>{READERS}</D:href>" in text
    assert "<CS:calendar-proxy-write/>" in text
    assert await delegate(client, WRITERS, "/dav/principals/bob/") == 207
    assert await delegate(client, READERS, "mailto:carl@localhost") == 207
    text = await propfind(client, WRITERS, "alice", "<D:group-member-set/>")
    assert "<D:group-member-set><D:href>/dav/principals/bob/</D:href></D:group-member-set>" in text
    text = await propfind(client, READERS, "alice", "<D:group-member-set/>")
    assert "<D:href>/dav/principals/carl/</D:href>" in text

    # bob's principal says whom he acts for, and in which group he is.
    props = "<CS:calendar-proxy-write-for/><CS:calendar-proxy-read-for/><D:group-membership/>"
    text = await propfind(client, "/dav/principals/bob/", "bob", props)
    assert f"<CS:calendar-proxy-write-for><D:href>{PRINCIPAL}</D:href>" in text
    assert "<CS:calendar-proxy-read-for></CS:calendar-proxy-read-for>" in text
    assert f"<D:group-membership><D:href>{WRITERS}</D:href></D:group-membership>" in text
    text = await propfind(client, "/dav/principals/carl/", "carl", props)
    assert f"<CS:calendar-proxy-read-for><D:href>{PRINCIPAL}</D:href>" in text

    # Apple's clients expand the property to find the owner's home.
    report = (
        '<D:expand-property xmlns:D="DAV:"><D:property name="calendar-proxy-write-for" '
        'namespace="http://calendarserver.org/ns/"><D:property name="calendar-home-set" '
        'namespace="urn:ietf:params:xml:ns:caldav"/><D:property name="displayname"/>'
        "</D:property></D:expand-property>"
    )
    resp = await client.request(
        "REPORT", "/dav/principals/bob/", data=report, headers={**XML, **basic("bob")}
    )
    text = await resp.text()
    assert resp.status == 207 and f"<D:href>{HOME}</D:href>" in text, text

    # The group leads to alice's home (DAVx5 looks for the homes of a user's groups).
    text = await propfind(client, WRITERS, "bob", "<C:calendar-home-set/><D:principal-URL/>")
    assert f"<C:calendar-home-set><D:href>{HOME}</D:href>" in text
    assert f"<D:principal-URL><D:href>{WRITERS}</D:href>" in text
    # macOS expands the group's members.
    report = (
        '<D:expand-property xmlns:D="DAV:"><D:property name="group-member-set">'
        '<D:property name="displayname"/></D:property></D:expand-property>'
    )
    resp = await client.request("REPORT", WRITERS, data=report, headers={**XML, **basic("alice")})
    text = await resp.text()
    assert resp.status == 207 and "<D:displayname>bob</D:displayname>" in text, text

    # bob reads and writes the whole home; what he writes is his, alice sees it.
    text = await propfind(client, HOME, "bob", "<D:resourcetype/>", depth="1")
    assert f"<D:href>{CALENDAR}</D:href>" in text and f"<D:href>{HOME}tasks/</D:href>" in text
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 200
    resp = await client.put(f"{CALENDAR}b.ics", data=event("b"), headers={**ICS, **basic("bob")})
    assert resp.status == 201
    assert (await client.request("MKCALENDAR", f"{HOME}trips", headers=basic("bob"))).status == 201
    assert (await client.get(f"{CALENDAR}b.ics", headers=basic("alice"))).status == 200
    # carl reads only.
    assert (await client.get(f"{CALENDAR}b.ics", headers=basic("carl"))).status == 200
    # The delegated home is not listed in the delegate's own home.
    text = await propfind(client, "/dav/calendars/bob/", "bob", "<D:resourcetype/>", depth="1")
    assert "alice" not in text


async def test_a_delegate_reaches_nothing_outside_the_home(
    client: TestClient, tmp_path: Path
) -> None:
    assert await delegate(client, WRITERS, "/dav/principals/bob/") == 207
    assert await delegate(client, READERS, "/dav/principals/carl/") == 207
    resp = await client.put(
        "/dav/calendars/dora/calendar/d.ics", data=event("d"), headers={**ICS, **basic("dora")}
    )
    assert resp.status == 201
    before = snapshot(tmp_path)
    bob, carl = basic("bob"), basic("carl")
    for who, method, path, headers in (
        (bob, "GET", "/dav/addressbooks/alice/contacts/", {}),
        (bob, "PROPFIND", "/dav/calendars/dora/", {}),
        (bob, "DELETE", HOME, {}),  # the home itself stays its owner's
        (bob, "PROPPATCH", HOME, {}),
        (bob, "COPY", f"{CALENDAR}a.ics", {"Destination": "/dav/calendars/dora/calendar/x.ics"}),
        (bob, "MOVE", f"{CALENDAR}a.ics", {"Destination": "/dav/addressbooks/alice/contacts/x"}),
        (carl, "PUT", f"{CALENDAR}x.ics", ICS),
        (carl, "DELETE", f"{CALENDAR}a.ics", {}),
        (carl, "MKCALENDAR", f"{HOME}new", {}),
        (carl, "MOVE", f"{CALENDAR}a.ics", {"Destination": f"{CALENDAR}moved.ics"}),
    ):
        body = event("x") if method == "PUT" else None
        resp = await client.request(method, path, data=body, headers={**headers, **who})
        assert resp.status == 403, (method, path)
    # A delegate names no delegates, and shares nothing on.
    assert await delegate(client, WRITERS, "/dav/principals/carl/", user="bob") == 403
    share = (
        '<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set>'
        "<D:href>mailto:dora@localhost</D:href><CS:read/></CS:set></CS:share>"
    )
    resp = await client.post(CALENDAR, data=share, headers={**XML, **bob})
    assert resp.status == 403
    # A multiget of the home names dora's event: refused, not read.
    multiget = (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><C:calendar-data/></D:prop>"
        f"<D:href>{CALENDAR}a.ics</D:href><D:href>/dav/calendars/dora/calendar/d.ics</D:href>"
        "</C:calendar-multiget>"
    )
    resp = await client.request("REPORT", CALENDAR, data=multiget, headers={**XML, **bob})
    text = await resp.text()
    assert "UID:a" in text and "UID:d" not in text and "403" in text
    # An If header naming dora's event is no resource: the condition fails (412).
    etag = (await client.get("/dav/calendars/dora/calendar/d.ics", headers=basic("dora"))).headers[
        "ETag"
    ]
    tagged = f"</dav/calendars/dora/calendar/d.ics> ([{etag}])"
    resp = await client.put(
        f"{CALENDAR}y.ics", data=event("y"), headers={**ICS, "If": tagged, **bob}
    )
    assert resp.status == 412
    assert snapshot(tmp_path) == before


async def test_revoking_a_delegate_refuses_the_next_request(
    client: TestClient, tmp_path: Path
) -> None:
    assert await delegate(client, WRITERS, "/dav/principals/bob/") == 207
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 200
    # Moved to the readers: reads, no writes.
    assert await delegate(client, READERS, "/dav/principals/bob/") == 207
    text = await propfind(client, WRITERS, "alice", "<D:group-member-set/>")
    assert "<D:group-member-set></D:group-member-set>" in text
    before = snapshot(tmp_path / "cal")
    resp = await client.put(f"{CALENDAR}b.ics", data=event("b"), headers={**ICS, **basic("bob")})
    assert resp.status == 403
    assert await delegate(client, READERS) == 207
    for method, path in (("GET", f"{CALENDAR}a.ics"), ("PROPFIND", HOME), ("PROPFIND", PRINCIPAL)):
        resp = await client.request(method, path, headers={"Depth": "0", **basic("bob")})
        assert resp.status == 403, (method, path)
    assert snapshot(tmp_path / "cal") == before


async def test_a_group_of_delegates_and_bad_member_sets(client: TestClient, tmp_path: Path) -> None:
    # dora is in the group "team" ([groups]).
    assert await delegate(client, READERS, "/dav/principals/.groups/team/") == 207
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("dora"))).status == 200
    text = await propfind(client, "/dav/principals/dora/", "dora", "<CS:calendar-proxy-read-for/>")
    assert f"<D:href>{PRINCIPAL}</D:href>" in text
    text = await propfind(client, "/dav/principals/.groups/team/", "bob", "<D:resourcetype/>")
    assert "<D:principal/>" in text
    resp = await client.request(
        "PROPFIND", "/dav/principals/.groups/nobody/", headers={"Depth": "0", **basic("bob")}
    )
    assert resp.status == 404
    before = snapshot(tmp_path / "state")
    for hrefs in (
        ("/dav/principals/.groups/nobody/",),  # no such group
        ("/elsewhere/principals/bob/",),
        ("a/b",),
        tuple(f"/dav/principals/u{i}/" for i in range(101)),  # too many
    ):
        assert await delegate(client, WRITERS, *hrefs) == 400, hrefs
    assert await delegate(client, WRITERS, PRINCIPAL) == 409  # alice is not her own delegate
    # Other properties of a group of delegates are not set (and nothing else then is).
    body = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname>'
        "<D:group-member-set><D:href>/dav/principals/bob/</D:href></D:group-member-set>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", WRITERS, data=body, headers={**XML, **basic("alice")})
    text = await resp.text()
    assert resp.status == 207 and "403" in text and "424" in text
    # Another user's groups are not theirs to set.
    assert (
        await delegate(client, "/dav/principals/bob/calendar-proxy-write/", "/dav/principals/carl/")
        == 403
    )
    assert snapshot(tmp_path / "state") == before
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 403


async def test_a_delegates_write_is_authored_by_the_delegate(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "cal.git"
    client = await start(aiohttp_client, tmp_path, f'backend = "git"\nrepo = "{repo}"')
    resp = await client.put(f"{CALENDAR}a.ics", data=event("a"), headers={**ICS, **basic("alice")})
    assert resp.status == 201
    assert await delegate(client, WRITERS, "/dav/principals/bob/") == 207
    resp = await client.put(f"{CALENDAR}b.ics", data=event("b"), headers={**ICS, **basic("bob")})
    assert resp.status == 201
    authors = await asyncio.to_thread(git, repo, "log", "--format=%an", "-n", "2")
    assert authors.split() == ["bob", "alice"]


async def test_the_caldav_library_as_a_delegate(client: TestClient, tmp_path: Path) -> None:
    assert await delegate(client, WRITERS, "/dav/principals/bob/") == 207
    assert await delegate(client, READERS, "/dav/principals/carl/") == 207
    url = str(client.make_url("/dav/"))

    def as_bob() -> list[str]:
        dav = caldav.DAVClient(url=url, username="bob", password="bob-pw")
        # The owner's principal leads the library to her home and its calendars.
        found = dav.principal(url=PRINCIPAL).calendars()
        assert {str(c.url.path) for c in found} >= {CALENDAR, f"{HOME}tasks/"}
        calendar = dav.calendar(url=CALENDAR)
        calendar.save_event(event("from-bob", "By Bob"))
        return sorted(str(e.icalendar_component["SUMMARY"]) for e in calendar.events())

    assert await asyncio.to_thread(as_bob) == ["By Bob", "Lunch"]
    before = snapshot(tmp_path / "cal")

    def as_carl() -> None:
        dav = caldav.DAVClient(url=url, username="carl", password="carl-pw")
        calendar = dav.calendar(url=CALENDAR)
        assert len(calendar.events()) == 2
        calendar.save_event(event("from-carl"))

    with pytest.raises(error.DAVError):
        await asyncio.to_thread(as_carl)
    assert snapshot(tmp_path / "cal") == before


def _status(url: str, user: str, method: str = "GET", body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method, headers=basic(user))
    if body is not None:
        req.add_header("Content-Type", "application/xml")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except HTTPError as exc:
        return exc.code


def test_revocation_holds_in_every_worker(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--config", str(write_config(tmp_path)), "--workers", "2")
    try:
        url = server.url
        put = urllib.request.Request(
            url + f"{CALENDAR}a.ics",
            data=event("a").encode(),
            method="PUT",
            headers={**ICS, **basic("alice")},
        )
        with urllib.request.urlopen(put, timeout=10) as resp:
            assert resp.status == 201
        add, drop = members("/dav/principals/bob/").encode(), members().encode()
        assert _status(url + WRITERS, "alice", "PROPPATCH", add) == 207
        # Each request opens a new connection: the workers take turns.
        assert {_status(url + f"{CALENDAR}a.ics", "bob") for _ in range(20)} == {200}
        assert _status(url + WRITERS, "alice", "PROPPATCH", drop) == 207
        assert {_status(url + f"{CALENDAR}a.ics", "bob") for _ in range(20)} == {403}
    finally:
        assert server.stop() == 0
