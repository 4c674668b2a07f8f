"""WebDAV-Push registration: what collections advertise, POST of push-register (201 new,
204 update), DELETE of the registration URL, expiry, and every refusal with its
precondition, leaving no subscription behind."""

from __future__ import annotations

import asyncio
import email.utils
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot
from pushservice import PushService
from pushtools import (
    D,
    MakeServer,
    P,
    condition,
    register,
    register_body,
    stored,
    subscribe,
)

PROPS = (f"{P}transports", f"{P}topic", f"{P}supported-triggers")


def propfind(*names: str) -> bytes:
    inner = "".join(f'<X:{n.split("}")[1]} xmlns:X="{n[1:].split("}")[0]}"/>' for n in names)
    return f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{inner}</D:prop></D:propfind>'.encode()


async def props_of(http: TestClient, path: str) -> dict[str, str]:
    """The push properties found on ``path`` (name → serialized element)."""
    from lxml import etree

    resp = await http.request("PROPFIND", path, data=propfind(*PROPS), headers={"Depth": "0"})
    assert resp.status == 207
    root = etree.fromstring(await resp.read())
    found = {}
    for ps in root.iter(f"{D}propstat"):
        if "200" in (ps.findtext(f"{D}status") or ""):
            for prop in ps.find(f"{D}prop"):
                found[prop.tag] = prop
    return found


async def test_collections_advertise_push(http: TestClient) -> None:
    resp = await http.options("/dav/")
    assert "webdav-push" in [t.strip() for t in resp.headers["DAV"].split(",")]
    assert "POST" in resp.headers["Allow"]
    await http.request("MKCOL", "/dav/docs/")
    await http.put("/dav/docs/a.txt", data=b"a")
    found = await props_of(http, "/dav/docs/")
    assert set(found) == set(PROPS)
    key = found[f"{P}transports"].find(f"{P}web-push/{P}vapid-public-key")
    assert key is not None and key.get("type") == "p256ecdsa" and len(key.text or "") == 87
    triggers = found[f"{P}supported-triggers"]
    assert triggers.findtext(f"{P}content-update/{D}sync-level") == "infinite"
    assert triggers.findtext(f"{P}property-update/{D}depth") == "infinite"
    # A stable topic per collection, another for each collection; none on files.
    topic = found[f"{P}topic"].text
    assert topic and (await props_of(http, "/dav/docs/"))[f"{P}topic"].text == topic
    assert (await props_of(http, "/dav/"))[f"{P}topic"].text != topic
    assert await props_of(http, "/dav/docs/a.txt") == {}


async def test_calendars_and_address_books_advertise_push(http: TestClient) -> None:
    for path in ("/cal/calendars/user/calendar/", "/cal/addressbooks/user/contacts/"):
        found = await props_of(http, path)
        assert set(found) == set(PROPS), path
        triggers = found[f"{P}supported-triggers"]
        assert triggers.findtext(f"{P}content-update/{D}sync-level") == "1"
    for path in ("/cal/", "/cal/calendars/user/", "/cal/principals/user/"):
        assert await props_of(http, path) == {}, path


async def test_depth_1_listings_carry_the_push_properties(http: TestClient) -> None:
    """DAVx5 finds the collections of a home, push properties included, with one PROPFIND
    Depth 1; a calendar's own Depth 1 (answered from its index for the properties the
    index knows) still answers them for the calendar and 404 for its items."""
    from lxml import etree

    cal = "/cal/calendars/user/calendar/"
    event = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:d1\r\n"
        b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )
    resp = await http.put(cal + "d1.ics", data=event, headers={"Content-Type": "text/calendar"})
    assert resp.status == 201
    for path, with_push in (
        # The scheduling boxes are calendar collections too (an invitation arriving in
        # the inbox is news to a client).
        (
            "/cal/calendars/user/",
            {
                cal,
                "/cal/calendars/user/tasks/",
                "/cal/calendars/user/inbox/",
                "/cal/calendars/user/outbox/",
            },
        ),
        (cal, {cal}),
    ):
        body = propfind(*PROPS, f"{D}getetag", f"{D}resourcetype")
        resp = await http.request("PROPFIND", path, data=body, headers={"Depth": "1"})
        assert resp.status == 207
        found = {}
        for response in etree.fromstring(await resp.read()).iter(f"{D}response"):
            ok = {
                prop.tag
                for ps in response.iter(f"{D}propstat")
                if "200" in (ps.findtext(f"{D}status") or "")
                for prop in ps.find(f"{D}prop")
            }
            found[response.findtext(f"{D}href")] = set(PROPS) <= ok
        assert {href for href, has in found.items() if has} == with_push, (path, found)
        assert len(found) > 1, path


async def test_the_key_is_made_once_and_kept(make_server: MakeServer, tmp_path: Path) -> None:
    first = await make_server()
    key = (await props_of(first, "/dav/"))[f"{P}transports"]
    pem = (tmp_path / "state" / "push" / "vapid.pem").read_bytes()
    await first.close()
    again = await make_server()
    assert (await props_of(again, "/dav/"))[f"{P}transports"].findtext(
        f"{P}web-push/{P}vapid-public-key"
    ) == key.findtext(f"{P}web-push/{P}vapid-public-key")
    assert (tmp_path / "state" / "push" / "vapid.pem").read_bytes() == pem


async def test_register_update_and_unregister(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    client = service.client("phone")
    status, headers, _ = await register(http, "/dav/", client)
    assert status == 201
    location = headers["Location"]
    assert location.startswith("/dav/?push-registration=")
    expires = email.utils.parsedate_to_datetime(headers["Expires"]).timestamp()
    assert 7 * 86400 - 60 < expires - time.time() <= 7 * 86400
    # The same endpoint again: an update of the same registration.
    status, headers, _ = await register(http, "/dav/", client, content="infinite")
    assert (status, headers["Location"]) == (204, location)
    assert len(stored(tmp_path)) == 1
    # Another endpoint: another registration.
    other = await subscribe(http, "/dav/", service.client("laptop"))
    assert other != location and len(stored(tmp_path)) == 2
    resp = await http.delete(location)
    assert resp.status == 204
    assert (await http.delete(location)).status == 404
    assert [row[0] for row in stored(tmp_path)] == [other.rpartition("=")[2]]
    assert (await http.options("/dav/")).status == 200  # the collection is still there


async def test_expiry_is_capped_and_a_shorter_one_kept(
    http: TestClient, service: PushService
) -> None:
    far = email.utils.formatdate(time.time() + 400 * 86400, usegmt=True)
    status, headers, _ = await register(http, "/dav/", service.client("a"), expires=far)
    assert status == 201
    expires = email.utils.parsedate_to_datetime(headers["Expires"]).timestamp()
    assert expires - time.time() <= 7 * 86400
    soon = email.utils.formatdate(time.time() + 3600, usegmt=True)
    status, headers, _ = await register(http, "/dav/", service.client("b"), expires=soon)
    assert status == 201 and headers["Expires"] == soon


async def test_an_expired_registration_is_gone(
    make_server: MakeServer, service: PushService, tmp_path: Path
) -> None:
    http = await make_server()
    soon = email.utils.formatdate(time.time() + 2, usegmt=True)
    location = await subscribe(http, "/dav/", service.client("a"), expires=soon)
    assert (await http.put("/dav/x.txt", data=b"x")).status == 201
    await service.await_messages("a", 1)
    await asyncio.sleep(2.5)
    assert (await http.put("/dav/y.txt", data=b"y")).status == 201
    await asyncio.sleep(0.5)
    assert len(service.messages("a")) == 1
    assert (await http.delete(location)).status == 404


@pytest.mark.parametrize(
    ("parts", "precondition"),
    [
        pytest.param({"endpoint": ""}, "invalid-subscription", id="no endpoint"),
        pytest.param({"key": "", "auth": ""}, "invalid-subscription", id="no keys"),
        pytest.param({"key": "AAAA"}, "invalid-subscription", id="not a P-256 key"),
        pytest.param({"key": "not base64!"}, "invalid-subscription", id="key not base64url"),
        pytest.param({"auth": "c2hvcnQ"}, "invalid-subscription", id="short auth secret"),
        pytest.param({"expires": "tomorrow"}, "invalid-subscription", id="bad expires"),
        pytest.param(
            {"expires": "Mon, 01 Jan 2024 00:00:00 GMT"}, "invalid-subscription", id="expired"
        ),
        pytest.param(
            {"extra": "", "content": None, "depth": None}, "no-supported-trigger", id="no trigger"
        ),
    ],
)
async def test_refusals_leave_nothing(
    http: TestClient, service: PushService, tmp_path: Path, parts: dict[str, str], precondition: str
) -> None:
    before = snapshot(tmp_path / "dav")
    status, _, body = await register(http, "/dav/", service.client("a"), **parts)
    assert status == 403 and condition(body) == f"{P}{precondition}"
    assert stored(tmp_path) == [] and snapshot(tmp_path / "dav") == before


async def test_push_is_not_offered_on_files_and_missing_paths(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    await http.put("/dav/a.txt", data=b"a")
    status, _, body = await register(http, "/dav/a.txt", service.client("a"))
    assert status == 403 and condition(body) == f"{P}push-not-available"
    status, _, _ = await register(http, "/dav/missing/", service.client("a"))
    assert status == 404
    status, _, body = await register(http, "/cal/calendars/user/", service.client("a"))
    assert status == 403 and condition(body) == f"{P}push-not-available"
    assert stored(tmp_path) == []


async def test_a_post_of_anything_else_is_not_a_registration(
    http: TestClient, tmp_path: Path
) -> None:
    resp = await http.post(
        "/dav/", data=b"<x xmlns='urn:x'/>", headers={"Content-Type": "application/xml"}
    )
    assert resp.status == 405
    resp = await http.post("/dav/", data=b"<not xml", headers={"Content-Type": "application/xml"})
    assert resp.status == 400
    assert stored(tmp_path) == []


async def test_a_registration_a_browser_could_be_made_to_send_is_refused(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    """A form of another site can POST the body as text/plain, and a page can send it
    from another origin: neither registers (dav/csrf.py); DAVx5's own Content-Type does."""
    body = register_body(service.client("a"))
    before = snapshot(tmp_path / "dav")
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/xml", "Origin": "https://evil.example"},
        {"Content-Type": "text/xml", "Sec-Fetch-Site": "cross-site"},
    ):
        resp = await http.post("/dav/", data=body, headers=headers)
        assert resp.status == 403, headers
    assert stored(tmp_path) == [] and snapshot(tmp_path / "dav") == before
    assert service.hits == 0
    for kind in ("application/xml; charset=utf-8", "text/xml"):
        resp = await http.post("/dav/", data=body, headers={"Content-Type": kind})
        assert resp.status in (201, 204), kind
    assert len(stored(tmp_path)) == 1


async def test_what_is_stored_of_a_registration_is_bounded(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    """Base64 decoding skips characters outside its alphabet: a key and a secret padded
    with 100,000 of them are kept as their bytes, and messages still reach the client."""
    client = service.client("a")
    junk = "!" * 100_000
    status, _, _ = await register(
        http, "/dav/", client, key=junk + client.public_key, auth=client.auth_secret + junk
    )
    assert status == 201
    with sqlite3.connect(tmp_path / "state" / "push.sqlite3") as conn:
        rows = conn.execute("SELECT public_key, auth FROM subscriptions").fetchall()
    assert rows == [(client.public_key, client.auth_secret)]
    assert (await http.put("/dav/a.txt", data=b"a")).status == 201
    await service.await_messages("a", 1)
    assert service.rejected == []


async def test_the_subscriptions_file_is_the_servers_alone(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    """It holds each client's auth secret: with it and the endpoint, anyone could send the
    client messages it takes for the server's."""
    await subscribe(http, "/dav/", service.client("a"))
    files = list((tmp_path / "state").glob("push.sqlite3*"))
    assert len(files) >= 2  # the database and its write-ahead log
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


async def test_the_registrations_of_a_user_are_bounded(
    make_server: MakeServer, service: PushService, tmp_path: Path
) -> None:
    http = await make_server(max_subscriptions=2)
    await subscribe(http, "/dav/", service.client("a"))
    await subscribe(http, "/dav/", service.client("b"))
    status, _, body = await register(http, "/dav/", service.client("c"))
    assert status == 403 and condition(body) == f"{P}push-not-available"
    assert len(stored(tmp_path)) == 2
    # Renewing one of the two is not a new one.
    status, _, _ = await register(http, "/dav/", service.clients["a"])
    assert status == 204


async def test_a_registration_url_deletes_nothing_else(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    await http.request("MKCOL", "/dav/docs/")
    await http.put("/dav/docs/a.txt", data=b"a")
    location = await subscribe(http, "/dav/docs/", service.client("a"))
    sub_id = location.rpartition("=")[2]
    before = snapshot(tmp_path / "dav")
    for url in (
        "/dav/docs/?push-registration=unknown",
        f"/dav/?push-registration={sub_id}",  # another collection's URL
        f"/dav/docs/a.txt?push-registration={sub_id}",
        "/dav/docs/?push-registration=",
    ):
        assert (await http.delete(url)).status == 404, url
    assert snapshot(tmp_path / "dav") == before and len(stored(tmp_path)) == 1
