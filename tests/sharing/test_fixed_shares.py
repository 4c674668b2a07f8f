"""Fixed shares (``[[shares]]``): a sharee reaches the shared collection and its members at
the level of the share, and nothing else of the owner's tree; what it writes is its own."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from gitrepo import git
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import ConfigError, parse

USERS = ("alice", "bob", "carl", "dora")
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
    "DURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
ICS = {"Content-Type": "text/calendar"}
SHARED = "/dav/calendars/alice/calendar"
OTHER = "/dav/calendars/alice/private"


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def event(uid: str, summary: str = "Lunch") -> str:
    return EVENT.format(uid=uid, summary=summary)


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    htpasswd.write(path, {u: htpasswd.hash_password(f"{u}-pw") for u in USERS})
    return path


def config_data(tmp_path: Path, accounts: Path, **caldav: Any) -> dict[str, Any]:
    cal = {"path": "/dav", "type": "caldav", "root": str(tmp_path / "cal"), **caldav}
    files = {
        "path": "/files",
        "type": "webdav",
        "root": str(tmp_path / "files"),
        "access": {"owner_only": True},
    }
    (tmp_path / "files").mkdir(exist_ok=True)
    return {
        "server": {"state_dir": str(tmp_path / "state"), "access_log": False},
        "auth": {"htpasswd": str(accounts)},
        "groups": {"family": ["carl"]},
        "mounts": [cal, files],
        "shares": [
            {"mount": "/dav", "path": "calendars/alice/calendar", "users": ["bob"],
             "access": "read-write"},
            {"mount": "/dav/", "path": "/calendars/alice/calendar/", "groups": ["family"]},
            {"mount": "/dav", "path": "addressbooks/alice/contacts", "users": ["bob"]},
            {"mount": "/files", "path": "alice/projects", "users": ["bob"],
             "access": "read-write"},
        ],
    }  # fmt: skip


async def start(aiohttp_client: Any, tmp_path: Path, data: dict[str, Any]) -> TestClient:
    config = await asyncio.to_thread(parse, data, "test.toml", tmp_path)
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, accounts: Path) -> TestClient:
    client = await start(aiohttp_client, tmp_path, config_data(tmp_path, accounts))
    assert (await client.request("MKCALENDAR", OTHER, headers=basic("alice"))).status == 201
    for path, body in ((f"{SHARED}/a.ics", event("a")), (f"{OTHER}/t.ics", event("t", "Secret"))):
        resp = await client.put(path, data=body, headers={**ICS, **basic("alice")})
        assert resp.status == 201, await resp.text()
    return client


async def test_a_read_write_sharee_reads_and_writes_the_shared_calendar(
    client: TestClient,
) -> None:
    resp = await client.get(f"{SHARED}/a.ics", headers=basic("bob"))
    assert resp.status == 200
    assert "UID:a" in await resp.text()
    resp = await client.request("PROPFIND", SHARED, headers={"Depth": "1", **basic("bob")})
    assert resp.status == 207
    assert f"{SHARED}/a.ics" in await resp.text()
    resp = await client.put(f"{SHARED}/b.ics", data=event("b"), headers={**ICS, **basic("bob")})
    assert resp.status == 201
    resp = await client.get(f"{SHARED}/b.ics", headers=basic("alice"))
    assert resp.status == 200
    assert "UID:b" in await resp.text()
    assert (await client.delete(f"{SHARED}/b.ics", headers=basic("bob"))).status == 204


async def test_a_sharee_reaches_nothing_else_of_the_owner(
    client: TestClient, tmp_path: Path
) -> None:
    before = snapshot(tmp_path / "cal")
    bob = basic("bob")
    for method, path in (
        ("GET", f"{OTHER}/t.ics"),
        ("PROPFIND", OTHER),
        ("PROPFIND", "/dav/calendars/alice/"),
        ("PROPFIND", "/dav/principals/alice/"),
        ("PUT", f"{OTHER}/x.ics"),
        ("DELETE", f"{OTHER}/t.ics"),
        ("MKCALENDAR", "/dav/calendars/alice/new"),
        ("DELETE", "/files/alice/projects"),  # a shared folder is not turned down
        ("PROPPATCH", SHARED),
        ("MOVE", SHARED),
    ):
        body = event("x") if method == "PUT" else None
        resp = await client.request(method, path, data=body, headers={**ICS, **bob})
        assert resp.status == 403, (method, path)
    assert snapshot(tmp_path / "cal") == before


async def test_a_sharee_turns_a_fixed_share_down_for_themselves(
    client: TestClient, tmp_path: Path
) -> None:
    before = snapshot(tmp_path / "cal")
    assert (await client.delete(SHARED, headers=basic("bob"))).status == 204
    assert snapshot(tmp_path / "cal") == before
    assert (await client.get(f"{SHARED}/a.ics", headers=basic("bob"))).status == 403
    resp = await client.request(
        "PROPFIND", "/dav/calendars/bob/", headers={"Depth": "1", **basic("bob")}
    )
    assert f"<D:href>{SHARED}/</D:href>" not in await resp.text()
    # The owner, and the other sharees, keep theirs; the owner sees the no.
    assert (await client.get(f"{SHARED}/a.ics", headers=basic("carl"))).status == 200
    body = '<D:propfind xmlns:D="DAV:"><D:prop><CS:invite xmlns:CS="http://calendarserver.org/ns/"/></D:prop></D:propfind>'
    resp = await client.request(
        "PROPFIND", SHARED, data=body, headers={"Depth": "0", **basic("alice")}
    )
    assert "<CS:invite-declined/>" in await resp.text()
    # Turned down once: a second DELETE finds nothing shared (403), and changes nothing.
    before = snapshot(tmp_path)
    assert (await client.delete(SHARED, headers=basic("bob"))).status == 403
    assert snapshot(tmp_path) == before


async def test_multiget_hrefs_outside_the_share_are_refused(client: TestClient) -> None:
    body = (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><C:calendar-data/></D:prop>"
        f"<D:href>{SHARED}/a.ics</D:href><D:href>{OTHER}/t.ics</D:href>"
        "</C:calendar-multiget>"
    )
    resp = await client.request("REPORT", SHARED, data=body, headers=basic("bob"))
    assert resp.status == 207
    text = await resp.text()
    assert "UID:a" in text
    assert "Secret" not in text
    assert "403" in text


async def test_move_and_copy_out_of_or_into_the_share_stay_inside(
    client: TestClient, tmp_path: Path
) -> None:
    before = snapshot(tmp_path / "cal")
    bob = basic("bob")
    for method, source, destination in (
        ("MOVE", f"{SHARED}/a.ics", f"{OTHER}/a.ics"),
        ("COPY", f"{SHARED}/a.ics", f"{OTHER}/a.ics"),
        ("COPY", f"{OTHER}/t.ics", f"{SHARED}/t.ics"),
        ("MOVE", f"{SHARED}/a.ics", "/dav/calendars/carl/calendar/a.ics"),
    ):
        headers = {"Destination": destination, **bob}
        resp = await client.request(method, source, headers=headers)
        assert resp.status == 403, (method, source, destination)
    assert snapshot(tmp_path / "cal") == before
    # Into the sharee's own calendar: a copy is the sharee's.
    headers = {"Destination": "/dav/calendars/bob/calendar/a.ics", **bob}
    assert (await client.request("COPY", f"{SHARED}/a.ics", headers=headers)).status == 201


async def test_an_if_header_naming_another_calendar_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    before = snapshot(tmp_path / "cal")
    headers = {"If": f'<{OTHER}/t.ics> (["x"])', **ICS, **basic("bob")}
    resp = await client.put(f"{SHARED}/c.ics", data=event("c"), headers=headers)
    assert resp.status == 412
    assert snapshot(tmp_path / "cal") == before


async def test_a_read_only_sharee_reads_but_cannot_write(
    client: TestClient, tmp_path: Path
) -> None:
    carl = basic("carl")  # in the group "family"
    assert (await client.get(f"{SHARED}/a.ics", headers=carl)).status == 200
    before = snapshot(tmp_path / "cal")
    for method in ("PUT", "DELETE", "PROPPATCH", "LOCK", "MKCOL"):
        body = event("a", "Changed") if method == "PUT" else None
        resp = await client.request(method, f"{SHARED}/a.ics", data=body, headers={**ICS, **carl})
        assert resp.status == 403, method
    headers = {"Destination": f"{SHARED}/z.ics", **carl}
    resp = await client.request("COPY", "/dav/calendars/carl/calendar/none.ics", headers=headers)
    assert resp.status == 403
    assert snapshot(tmp_path / "cal") == before
    # Someone who is in no share reaches nothing.
    assert (await client.get(f"{SHARED}/a.ics", headers=basic("dora"))).status == 403


async def test_a_shared_address_book_and_a_shared_folder(
    client: TestClient, tmp_path: Path
) -> None:
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ann\r\nN:;Ann;;;\r\nEND:VCARD\r\n"
    book = "/dav/addressbooks/alice/contacts"
    headers = {"Content-Type": "text/vcard", **basic("alice")}
    assert (await client.put(f"{book}/c1.vcf", data=card, headers=headers)).status == 201
    assert (await client.get(f"{book}/c1.vcf", headers=basic("bob"))).status == 200
    before = snapshot(tmp_path / "cal")
    headers = {"Content-Type": "text/vcard", **basic("bob")}
    assert (await client.put(f"{book}/c2.vcf", data=card, headers=headers)).status == 403
    assert snapshot(tmp_path / "cal") == before

    alice, bob = basic("alice"), basic("bob")
    for folder in ("/files/alice", "/files/alice/projects"):
        assert (await client.request("MKCOL", folder, headers=alice)).status == 201
    assert (await client.put("/files/alice/private.txt", data=b"p", headers=alice)).status == 201
    assert (await client.put("/files/alice/projects/a.txt", data=b"a", headers=bob)).status == 201
    assert (await client.get("/files/alice/projects/a.txt", headers=alice)).status == 200
    before = snapshot(tmp_path / "files")
    assert (await client.get("/files/alice/private.txt", headers=bob)).status == 403
    headers = {"Destination": "/files/alice/stolen.txt", **bob}
    resp = await client.request("COPY", "/files/alice/projects/a.txt", headers=headers)
    assert resp.status == 403
    assert (await client.delete("/files/alice/projects", headers=bob)).status == 403
    assert snapshot(tmp_path / "files") == before


async def test_a_sharees_write_is_authored_by_the_sharee(
    aiohttp_client: Any, tmp_path: Path, accounts: Path
) -> None:
    repo = tmp_path / "cal.git"
    data = config_data(tmp_path, accounts, backend="git", repo=str(repo))
    del data["mounts"][0]["root"]
    client = await start(aiohttp_client, tmp_path, data)
    resp = await client.put(f"{SHARED}/a.ics", data=event("a"), headers={**ICS, **basic("alice")})
    assert resp.status == 201
    resp = await client.put(f"{SHARED}/b.ics", data=event("b"), headers={**ICS, **basic("bob")})
    assert resp.status == 201
    authors = await asyncio.to_thread(git, repo, "log", "--format=%an", "-n", "2")
    assert authors.split() == ["bob", "alice"]


async def test_shared_collections_are_listed_in_the_sharees_home(client: TestClient) -> None:
    bob = {"Depth": "1", **basic("bob")}
    resp = await client.request("PROPFIND", "/dav/calendars/bob/", headers=bob)
    assert resp.status == 207
    text = await resp.text()
    assert f"<D:href>{SHARED}/</D:href>" in text
    assert "/dav/calendars/bob/calendar/" in text
    assert OTHER not in text
    resp = await client.request("PROPFIND", "/dav/addressbooks/bob/", headers=bob)
    assert "<D:href>/dav/addressbooks/alice/contacts/</D:href>" in await resp.text()
    # dora has no share: her home lists her own collections only.
    resp = await client.request(
        "PROPFIND", "/dav/calendars/dora/", headers={"Depth": "1", **basic("dora")}
    )
    assert "alice" not in await resp.text()


async def test_history_of_a_shared_folder_and_nothing_else(
    aiohttp_client: Any, tmp_path: Path, accounts: Path
) -> None:
    data = config_data(tmp_path, accounts)
    files = data["mounts"][1]
    del files["root"]
    files.update(backend="git", repo=str(tmp_path / "files.git"))
    client = await start(aiohttp_client, tmp_path, data)
    alice, bob = basic("alice"), basic("bob")
    for folder in ("/files/alice", "/files/alice/projects"):
        assert (await client.request("MKCOL", folder, headers=alice)).status == 201
    assert (await client.put("/files/alice/private.txt", data=b"p", headers=alice)).status == 201
    assert (await client.put("/files/alice/projects/a.txt", data=b"a", headers=bob)).status == 201
    resp = await client.get("/files/alice/projects/a.txt?history=json", headers=bob)
    assert resp.status == 200
    assert [v["author"].split()[0] for v in (await resp.json())["versions"]] == ["bob"]
    assert (await client.request("MKCOL", "/files/bob", headers=bob)).status == 201
    resp = await client.request("PROPFIND", "/files/bob/", headers={"Depth": "1", **bob})
    assert "/files/alice/projects/" in await resp.text()
    for path in ("/files/alice/private.txt?history=json", "/files/alice/?history"):
        assert (await client.get(path, headers=bob)).status == 403, path


@pytest.mark.parametrize(
    ("share", "message"),
    [
        ({"mount": "/nowhere", "path": "calendars/alice/calendar", "users": ["bob"]},
         "no mount has the path"),
        ({"mount": "/dav", "path": "calendars/alice", "users": ["bob"]}, "must be calendars/"),
        ({"mount": "/dav", "path": "calendars/alice/../bob/x", "users": ["bob"]},
         "not a plain path"),
        ({"mount": "/files", "path": "alice", "users": ["bob"]}, "a folder in a user's tree"),
        ({"mount": "/dav", "path": "calendars/alice/calendar"}, "name users or groups"),
        ({"mount": "/dav", "path": "calendars/alice/calendar", "groups": ["nobody"]},
         "no such group"),
        ({"mount": "/dav", "path": "calendars/alice/calendar", "users": ["bob"],
          "access": "owner"}, "is not one of"),
        ({"mount": "/dav", "path": "calendars/alice/calendar", "users": ["a/b"]},
         "not a usable user name"),
        ({"mount": "/dav", "path": "calendars/alice/calendar", "users": ["bob"], "x": 1},
         "unknown key"),
    ],
)  # fmt: skip
def test_bad_shares_are_refused_at_start(
    tmp_path: Path, accounts: Path, share: dict[str, Any], message: str
) -> None:
    data = config_data(tmp_path, accounts)
    data["shares"] = [share]
    with pytest.raises(ConfigError, match=message):
        parse(data, "test.toml", tmp_path)


def test_a_share_needs_an_owner_only_tree(tmp_path: Path, accounts: Path) -> None:
    data = config_data(tmp_path, accounts)
    data["mounts"][1]["access"] = {}
    data["shares"] = [{"mount": "/files", "path": "alice/projects", "users": ["bob"]}]
    with pytest.raises(ConfigError, match="not an owner-only"):
        parse(data, "test.toml", tmp_path)
