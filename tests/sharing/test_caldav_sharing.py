"""CalendarServer sharing end to end with the ``caldav`` library as two users: the owner
shares (``POST`` of ``CS:share`` or ``D:share-resource``), the sharee finds the calendar in
its home, reads and writes it, the owner sees the sharee's change, and a revocation
refuses the sharee's next request (in every worker of a multi-worker server too)."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.error import HTTPError

import caldav
import pytest
from aiohttp.test_utils import TestClient
from caldav.lib import error
from helpers import snapshot, start_server

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import load

T = TypeVar("T")
USERS = ("alice", "bob", "carl")
XML = {"Content-Type": "application/xml; charset=utf-8"}
CALENDAR = "/dav/calendars/alice/calendar/"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
    "DURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def cs_share(user: str, level: str = "read-write", remove: bool = False) -> str:
    inner = (
        f"<CS:remove><D:href>mailto:{user}@localhost</D:href></CS:remove>"
        if remove
        else f"<CS:set><D:href>mailto:{user}@localhost</D:href><CS:{level}/></CS:set>"
    )
    return f'<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">{inner}</CS:share>'


def share_resource(principal: str, access: str) -> str:
    return (
        '<D:share-resource xmlns:D="DAV:"><D:sharee>'
        f"<D:href>{principal}</D:href><D:share-access><D:{access}/></D:share-access>"
        "</D:sharee></D:share-resource>"
    )


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_config(tmp_path: Path, team: tuple[str, ...] = ("bob", "carl")) -> Path:
    users = tmp_path / "users"
    htpasswd.write(users, {u: htpasswd.hash_password(f"{u}-pw") for u in USERS})
    path = tmp_path / "config.toml"
    members = ", ".join(f'"{u}"' for u in team)
    path.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\naccess_log = false\n'
        f'[auth]\nhtpasswd = "{users}"\n[groups]\nteam = [{members}]\n'
        f'[[mounts]]\npath = "/dav"\ntype = "caldav"\nroot = "{tmp_path / "cal"}"\n'
    )
    return path


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    config = await asyncio.to_thread(lambda: load(write_config(tmp_path)))
    return await aiohttp_client(create_app(config))


class Session:
    """One caldav library client of one user, driven from a thread."""

    def __init__(self, client: TestClient, user: str) -> None:
        url = str(client.make_url("/dav/"))
        self.dav = caldav.DAVClient(url=url, username=user, password=f"{user}-pw")

    async def run(self, step: Callable[[], T]) -> T:
        return await asyncio.to_thread(step)


async def post(client: TestClient, user: str, body: str, path: str = CALENDAR) -> int:
    resp = await client.post(path, data=body, headers={**XML, **basic(user)})
    return resp.status


async def test_owner_shares_sharee_reads_and_writes_owner_revokes(
    client: TestClient, tmp_path: Path
) -> None:
    alice, bob = Session(client, "alice"), Session(client, "bob")
    mine = await alice.run(lambda: alice.dav.principal().calendar(cal_id="calendar"))
    await alice.run(lambda: mine.save_event(EVENT.format(uid="a", summary="Dinner")))
    assert await post(client, "alice", cs_share("bob")) == 200

    # The shared calendar is in bob's home, at alice's URL, with the sharing properties.
    found = await bob.run(lambda: bob.dav.principal().calendars())
    urls = [str(c.url.path) for c in found]
    assert CALENDAR in urls
    assert "/dav/calendars/bob/calendar/" in urls
    theirs = found[urls.index(CALENDAR)]
    events = await bob.run(theirs.events)
    assert [str(e.icalendar_component["SUMMARY"]) for e in events] == ["Dinner"]
    await bob.run(lambda: theirs.save_event(EVENT.format(uid="b", summary="From Bob")))

    # alice sees bob's event.
    events = await alice.run(mine.events)
    assert sorted(str(e.icalendar_component["SUMMARY"]) for e in events) == [
        "Dinner",
        "From Bob",
    ]

    # The owner's view lists the sharee; the sharee's says where the calendar is.
    body = (
        '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>'
        "<CS:invite/><D:share-access/><CS:shared-url/><CS:allowed-sharing-modes/>"
        "<D:current-user-privilege-set/></D:prop></D:propfind>"
    )
    headers = {"Depth": "0", **basic("alice")}
    resp = await client.request("PROPFIND", CALENDAR, data=body, headers=headers)
    text = await resp.text()
    assert "/dav/principals/bob/" in text and "<CS:read-write/>" in text
    assert "<D:shared-owner/>" in text and "<CS:can-be-shared/>" in text
    resp = await client.options(CALENDAR, headers=basic("alice"))
    assert "calendarserver-sharing" in resp.headers["DAV"]
    resp = await client.request(
        "PROPFIND", "/dav/calendars/bob/", data=body, headers={"Depth": "1", **basic("bob")}
    )
    text = await resp.text()
    assert f"<CS:shared-url><D:href>{CALENDAR}</D:href></CS:shared-url>" in text
    assert "<D:share-access><D:read-write/></D:share-access>" in text
    # A read-write sharee may add and remove events, not change the calendar itself.
    response = text.split(f"<D:href>{CALENDAR}</D:href><D:propstat>")[1].split("</D:response>")[0]
    privileges = response.split("<D:current-user-privilege-set>")[1]
    assert "<D:bind/>" in privileges and "<D:unbind/>" in privileges
    assert "<D:write/>" not in privileges

    # Revoked: the next request of bob is refused, and nothing changes.
    assert await post(client, "alice", cs_share("bob", remove=True)) == 200
    before = snapshot(tmp_path / "cal")
    with pytest.raises(error.DAVError):
        await bob.run(lambda: theirs.save_event(EVENT.format(uid="c", summary="Too late")))
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 403
    assert snapshot(tmp_path / "cal") == before
    found = await bob.run(lambda: bob.dav.principal().calendars())
    assert CALENDAR not in [str(c.url.path) for c in found]


async def test_a_read_only_sharee_is_refused_writes(client: TestClient, tmp_path: Path) -> None:
    alice, bob = Session(client, "alice"), Session(client, "bob")
    mine = await alice.run(lambda: alice.dav.principal().calendar(cal_id="calendar"))
    await alice.run(lambda: mine.save_event(EVENT.format(uid="a", summary="Dinner")))
    assert await post(client, "alice", share_resource("/dav/principals/bob/", "read")) == 200
    theirs = await bob.run(lambda: bob.dav.calendar(url=CALENDAR))
    assert len(await bob.run(theirs.events)) == 1
    before = snapshot(tmp_path / "cal")
    with pytest.raises(error.DAVError):
        await bob.run(lambda: theirs.save_event(EVENT.format(uid="b", summary="No")))
    event = (await bob.run(theirs.events))[0]
    with pytest.raises(error.DAVError):
        await bob.run(event.delete)
    resp = await client.request(
        "PROPFIND",
        CALENDAR,
        data='<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/></D:prop>'
        "</D:propfind>",
        headers={"Depth": "0", **basic("bob")},
    )
    text = await resp.text()
    assert "<D:read/>" in text and "<D:write" not in text and "<D:bind/>" not in text
    resp = await client.request(
        "PROPFIND",
        CALENDAR,
        data='<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/></D:prop>'
        "</D:propfind>",
        headers={"Depth": "1", **basic("bob")},
    )
    text = await resp.text()
    assert text.count("<D:read/>") == 2 and "<D:write" not in text  # the calendar, its event
    assert snapshot(tmp_path / "cal") == before
    # D:no-access removes the sharee.
    assert await post(client, "alice", share_resource("/dav/principals/bob/", "no-access")) == 200
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 403


async def test_only_the_owner_shares_and_bad_requests_change_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    assert await post(client, "alice", cs_share("bob")) == 200
    before = snapshot(tmp_path / "state" / "shares.sqlite3")
    # bob may write in the calendar, not share it on.
    assert await post(client, "bob", cs_share("carl")) == 403
    # carl is no sharee at all.
    assert await post(client, "carl", cs_share("carl", remove=True)) == 403
    for body in (
        "<nonsense",
        '<D:propfind xmlns:D="DAV:"/>',
        '<CS:share xmlns:CS="http://calendarserver.org/ns/"/>',
        cs_share("a/b"),
        share_resource("/elsewhere/principals/x/", "read"),
        share_resource("/dav/principals/bob/", "owner"),
    ):
        assert await post(client, "alice", body) == 400, body
    assert await post(client, "alice", cs_share("alice")) == 403
    assert await post(client, "alice", cs_share("bob"), "/dav/calendars/alice/") == 403
    assert await post(client, "alice", cs_share("bob"), "/dav/calendars/alice/nope/") == 404
    assert snapshot(tmp_path / "state" / "shares.sqlite3") == before
    resp = await client.get(f"{CALENDAR}", headers=basic("carl"))
    assert resp.status == 403


async def test_a_deleted_calendar_takes_its_shares_along(client: TestClient) -> None:
    alice = basic("alice")
    assert (
        await client.request("MKCALENDAR", "/dav/calendars/alice/trip", headers=alice)
    ).status == 201
    trip = "/dav/calendars/alice/trip/"
    assert await post(client, "alice", cs_share("bob"), trip) == 200
    assert (
        await client.request("PROPFIND", trip, headers={"Depth": "0", **basic("bob")})
    ).status == 207
    assert (await client.delete(trip, headers=alice)).status == 204
    assert (await client.request("MKCALENDAR", trip, headers=alice)).status == 201
    resp = await client.request("PROPFIND", trip, headers={"Depth": "0", **basic("bob")})
    assert resp.status == 403


async def test_a_sharee_turns_a_share_down_for_themselves(
    client: TestClient, tmp_path: Path
) -> None:
    alice = basic("alice")
    resp = await client.put(f"{CALENDAR}a.ics", data=EVENT.format(uid="a", summary="x"),
                            headers={"Content-Type": "text/calendar", **alice})  # fmt: skip
    assert resp.status == 201
    assert await post(client, "alice", cs_share("bob")) == 200
    assert await post(client, "alice", cs_share("carl", "read")) == 200
    before = snapshot(tmp_path / "cal")
    assert (await client.delete(CALENDAR, headers=basic("bob"))).status == 204
    assert snapshot(tmp_path / "cal") == before
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 403
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("carl"))).status == 200
    assert (await client.get(f"{CALENDAR}a.ics", headers=alice)).status == 200
    body = '<D:propfind xmlns:D="DAV:"><D:prop><CS:invite xmlns:CS="http://calendarserver.org/ns/"/></D:prop></D:propfind>'
    text = await (
        await client.request("PROPFIND", CALENDAR, data=body, headers={"Depth": "0", **alice})
    ).text()
    assert "/dav/principals/carl/" in text and "/dav/principals/bob/" not in text
    # The owner shares it again: bob has it back.
    assert await post(client, "alice", cs_share("bob", "read")) == 200
    assert (await client.get(f"{CALENDAR}a.ics", headers=basic("bob"))).status == 200


def invite_reply(host: str, answer: str) -> str:
    return (
        '<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
        "<D:href>/dav/principals/alice/</D:href>"
        f"<CS:{answer}/><CS:hosturl><D:href>{host}</D:href></CS:hosturl>"
        "<CS:in-reply-to>x</CS:in-reply-to></CS:invite-reply>"
    )


async def test_a_group_share_and_a_declined_invite(client: TestClient, tmp_path: Path) -> None:
    # "team" ([groups]) is bob and carl.
    team = "/dav/principals/.groups/team/"
    assert await post(client, "alice", share_resource(team, "read")) == 200
    for user in ("bob", "carl"):
        resp = await client.request("PROPFIND", CALENDAR, headers={"Depth": "0", **basic(user)})
        assert resp.status == 207, user
    resp = await client.request("PROPFIND", team, headers={"Depth": "0", **basic("carl")})
    assert resp.status == 207 and "<D:principal/>" in await resp.text()
    resp = await client.request(
        "PROPFIND", CALENDAR, headers={"Depth": "0", **basic("alice")},
        data='<D:propfind xmlns:D="DAV:"><D:prop><CS:invite xmlns:CS="http://calendarserver.org/ns/"/></D:prop></D:propfind>',
    )  # fmt: skip
    assert f"<D:href>{team}</D:href>" in await resp.text()
    home = "/dav/calendars/bob/"
    before = snapshot(tmp_path)
    for body, status in (
        (invite_reply("/dav/calendars/alice/tasks/", "invite-declined"), 403),  # not shared
        (invite_reply(CALENDAR, "invite-accepted"), 200),  # accepted already: nothing to do
        ('<CS:invite-reply xmlns:CS="http://calendarserver.org/ns/"/>', 400),
        (cs_share("carl"), 403),  # a home is not shared
        (share_resource("/dav/principals/.groups/nobody/", "read"), 403),
    ):
        assert await post(client, "bob", body, home) == status, body
    assert (
        await post(client, "alice", share_resource("/dav/principals/.groups/nobody/", "read"))
        == 400
    )
    assert snapshot(tmp_path) == before
    # bob declines: the group keeps it, bob does not.
    assert await post(client, "bob", invite_reply(CALENDAR, "invite-declined"), home) == 200
    resp = await client.request("PROPFIND", CALENDAR, headers={"Depth": "0", **basic("bob")})
    assert resp.status == 403
    resp = await client.request("PROPFIND", CALENDAR, headers={"Depth": "0", **basic("carl")})
    assert resp.status == 207


def test_a_group_share_follows_the_groups_members(tmp_path: Path) -> None:
    config = write_config(tmp_path, team=("bob",))
    server = start_server(tmp_path, "--config", str(config), "--workers", "2")
    try:
        url = server.url + CALENDAR
        put = urllib.request.Request(
            url + "a.ics",
            data=EVENT.format(uid="a", summary="x").encode(),
            method="PUT",
            headers={"Content-Type": "text/calendar", **basic("alice")},
        )
        with urllib.request.urlopen(put, timeout=10) as resp:
            assert resp.status == 201
        body = share_resource("/dav/principals/.groups/team/", "read").encode()
        assert _status(url, "alice", "POST", body) == 200
        assert {_status(url + "a.ics", "bob") for _ in range(10)} == {200}
        assert {_status(url + "a.ics", "carl") for _ in range(10)} == {403}
        # carl joins the group and bob leaves it (the configuration read again).
        write_config(tmp_path, team=("carl",))
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while _status(url + "a.ics", "carl") != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        time.sleep(2)  # the old workers finish
        assert {_status(url + "a.ics", "carl") for _ in range(10)} == {200}
        assert {_status(url + "a.ics", "bob") for _ in range(10)} == {403}
    finally:
        assert server.stop() == 0


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
    config = write_config(tmp_path)
    server = start_server(tmp_path, "--config", str(config), "--workers", "2")
    try:
        url = server.url + CALENDAR
        put = urllib.request.Request(
            url + "a.ics",
            data=EVENT.format(uid="a", summary="x").encode(),
            method="PUT",
            headers={"Content-Type": "text/calendar", **basic("alice")},
        )
        with urllib.request.urlopen(put, timeout=10) as resp:
            assert resp.status == 201
        assert _status(url, "alice", "POST", cs_share("bob").encode()) == 200
        # Each request opens a new connection: the workers take turns.
        assert {_status(url + "a.ics", "bob") for _ in range(20)} == {200}
        assert _status(url, "alice", "POST", cs_share("bob", remove=True).encode()) == 200
        assert {_status(url + "a.ics", "bob") for _ in range(20)} == {403}
        assert _status(url, "alice", "POST", cs_share("bob", "read").encode()) == 200
        deadline = time.monotonic() + 5
        statuses = {_status(url + "a.ics", "bob") for _ in range(20)}
        assert statuses == {200} and time.monotonic() < deadline
    finally:
        assert server.stop() == 0


async def test_unreadable_shares_answer_503_until_they_can_be_read(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = await asyncio.to_thread(lambda: load(write_config(tmp_path)))
    blocker = tmp_path / "state" / "shares.sqlite3"
    await asyncio.to_thread(lambda: (blocker / "x").mkdir(parents=True))
    client = await aiohttp_client(create_app(config))
    resp = await client.get(CALENDAR, headers=basic("alice"))
    assert resp.status == 503
    assert "the shares cannot be read" in caplog.text
    await asyncio.to_thread(lambda: ((blocker / "x").rmdir(), blocker.rmdir()))
    resp = await client.request("PROPFIND", CALENDAR, headers={"Depth": "0", **basic("alice")})
    assert resp.status == 207
