"""WebDAV-Push delivery: a message per change through each trigger (PUT, DELETE, MOVE,
PROPPATCH, calendar and address-book items), each decrypted and its VAPID token checked
by the test push service; depth; merged bursts; Push-Dont-Notify; a gone endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree
from pushservice import PushService
from pushtools import D, MakeServer, P, seq, stored, subscribe

from davserver.runtime import metrics

PROPPATCH = (
    b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
    b"<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"
)
EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\n"
    b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
    b"SUMMARY:e1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
CARD = b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c1\r\nFN:Ann\r\nEND:VCARD\r\n"


async def settle() -> None:
    """Let the changes made so far be dispatched (before a subscription that is not to
    hear of them)."""
    await asyncio.sleep(0.3)


async def vapid_key(http: TestClient, service: PushService) -> None:
    """Have the service check that messages are signed with the advertised key."""
    body = (
        f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><P:transports xmlns:P="{P[1:-1]}"/>'
        "</D:prop></D:propfind>"
    )
    resp = await http.request("PROPFIND", "/dav/", data=body, headers={"Depth": "0"})
    root = etree.fromstring(await resp.read())
    service.vapid_key = root.findtext(f".//{P}vapid-public-key")


async def test_a_message_per_change_of_a_folder(http: TestClient, service: PushService) -> None:
    await vapid_key(http, service)
    await http.request("MKCOL", "/dav/docs/")
    await settle()
    await subscribe(http, "/dav/docs/", service.client("a"), depth="0")
    topic = None
    steps = [
        ("PUT", "/dav/docs/a.txt", {"data": b"a"}, (True, False)),
        ("PUT", "/dav/docs/a.txt", {"data": b"a2"}, (True, False)),
        ("MOVE", "/dav/docs/a.txt", {"headers": {"Destination": "/dav/docs/b.txt"}}, (True, False)),
        ("MOVE", "/dav/docs/b.txt", {"headers": {"Destination": "/dav/b.txt"}}, (True, False)),
        ("COPY", "/dav/b.txt", {"headers": {"Destination": "/dav/docs/c.txt"}}, (True, False)),
        ("DELETE", "/dav/docs/c.txt", {}, (True, False)),
        ("PROPPATCH", "/dav/docs/", {"data": PROPPATCH}, (False, True)),
        ("MKCOL", "/dav/docs/sub/", {}, (True, False)),
    ]
    last = 0
    for i, (method, path, kwargs, kinds) in enumerate(steps, 1):
        resp = await http.request(method, path, **kwargs)
        assert resp.status < 300, (method, path, resp.status)
        got = (await service.await_messages("a", i))[-1]
        assert (got.content, got.properties) == kinds, (method, path)
        topic = topic or got.topic
        assert got.topic == topic
        if got.content:
            assert seq(got.token) > last
            last = seq(got.token)
        assert got.headers["TTL"] == "86400" and got.headers["Urgency"] == "normal"
        assert got.headers["Topic"].startswith(topic)
    # Changes elsewhere, and deeper than the subscription's sync-level 1, are not its.
    await http.put("/dav/other.txt", data=b"x")
    await http.put("/dav/docs/sub/deep.txt", data=b"x")
    await http.request("PROPPATCH", "/dav/docs/sub/", data=PROPPATCH)
    await asyncio.sleep(0.4)
    assert len(service.messages("a")) == len(steps)
    assert service.rejected == []


async def test_depth_infinite_and_property_depth(http: TestClient, service: PushService) -> None:
    await http.request("MKCOL", "/dav/docs/")
    await http.request("MKCOL", "/dav/docs/sub/")
    await settle()
    await subscribe(http, "/dav/", service.client("deep"), content="infinite", depth="infinite")
    await subscribe(http, "/dav/docs/", service.client("props"), content=None, depth="1")
    await http.put("/dav/docs/sub/deep.txt", data=b"x")
    got = (await service.await_messages("deep", 1))[-1]
    assert got.content and not got.properties
    await http.request("PROPPATCH", "/dav/docs/sub/", data=PROPPATCH)
    got = (await service.await_messages("deep", 2))[-1]
    assert got.properties and not got.content
    got = (await service.await_messages("props", 1))[-1]
    assert got.properties and not got.content and got.token is None
    await http.put("/dav/docs/x.txt", data=b"x")  # content: not asked for by "props"
    await service.await_messages("deep", 3)
    await asyncio.sleep(0.3)
    assert len(service.messages("props")) == 1


async def test_deleting_or_moving_the_collection_notifies(
    http: TestClient, service: PushService
) -> None:
    await http.request("MKCOL", "/dav/a/")
    await http.request("MKCOL", "/dav/a/b/")
    await settle()
    await subscribe(http, "/dav/a/b/", service.client("x"))
    resp = await http.request("MOVE", "/dav/a/", headers={"Destination": "/dav/z/"})
    assert resp.status == 201
    await service.await_messages("x", 1)


async def test_calendar_and_address_book_items(http: TestClient, service: PushService) -> None:
    cal = "/cal/calendars/user/calendar/"
    book = "/cal/addressbooks/user/contacts/"
    await subscribe(http, cal, service.client("cal"), depth="0")
    await subscribe(http, book, service.client("book"))
    headers = {"Content-Type": "text/calendar"}
    # The first write makes the home and its calendars, then the item: the last message
    # carries the token sync-collection answers, and none tells of properties.
    assert (await http.put(cal + "e1.ics", data=EVENT, headers=headers)).status == 201
    first = await until_token(service, "cal", await sync_token(http, cal))
    assert not any(m.properties for m in service.messages("cal"))
    assert (await http.request("PROPPATCH", cal, data=PROPPATCH)).status == 207
    got = (await service.await_messages("cal", first + 1))[-1]
    assert got.properties and not got.content
    assert (await http.delete(cal + "e1.ics")).status == 204
    await until_token(service, "cal", await sync_token(http, cal))
    resp = await http.put(book + "c1.vcf", data=CARD, headers={"Content-Type": "text/vcard"})
    assert resp.status == 201
    await until_token(service, "book", await sync_token(http, book))
    assert service.rejected == []


async def until_token(service: PushService, name: str, token: str) -> int:
    """Wait for a message of ``name`` carrying ``token``; how many have come then."""
    for _ in range(100):
        got = service.messages(name)
        if got and got[-1].token == token:
            return len(got)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: no message with {token}: {service.messages(name)}")


async def sync_token(http: TestClient, path: str) -> str:
    body = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'
    resp = await http.request("PROPFIND", path, data=body, headers={"Depth": "0"})
    return etree.fromstring(await resp.read()).findtext(f".//{D}sync-token") or ""


async def test_a_burst_is_one_message(make_server: MakeServer, service: PushService) -> None:
    http = await make_server(merge_window=0.3)
    await subscribe(http, "/dav/", service.client("a"))
    results = await asyncio.gather(*(http.put(f"/dav/f{i}.txt", data=b"x") for i in range(20)))
    assert {r.status for r in results} == {201}
    got = await service.await_messages("a", 1)
    await asyncio.sleep(0.8)
    got = service.messages("a")
    assert 1 <= len(got) <= 2
    # The last message carries the token of the last change.
    last_put = await http.put("/dav/last.txt", data=b"x")
    assert last_put.status == 201
    final = (await service.await_messages("a", len(got) + 1))[-1]
    assert seq(final.token) > seq(got[-1].token)


async def test_push_dont_notify(http: TestClient, service: PushService) -> None:
    mine = await subscribe(http, "/dav/", service.client("mine"))
    await subscribe(http, "/dav/", service.client("other"))
    quoted = f'"http://example.org{mine}"'
    resp = await http.put("/dav/a.txt", data=b"a", headers={"Push-Dont-Notify": quoted})
    assert resp.status == 201
    await service.await_messages("other", 1)
    await asyncio.sleep(0.3)
    assert service.messages("mine") == []
    # "*": none of the requester's own registrations (here all of them: anonymous).
    await http.put("/dav/b.txt", data=b"b", headers={"Push-Dont-Notify": "*"})
    await asyncio.sleep(0.3)
    assert service.messages("mine") == [] and len(service.messages("other")) == 1
    await http.put("/dav/c.txt", data=b"c")
    await service.await_messages("mine", 1)
    await service.await_messages("other", 2)


async def test_a_gone_endpoint_is_dropped(
    http: TestClient, service: PushService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, the counters keep their values in memory (no multiprocess folder).
    counted = metrics.Metrics(tmp_path / "metrics")
    monkeypatch.setattr(metrics, "active", counted)
    await subscribe(http, "/dav/", service.client("gone"))
    keep = await subscribe(http, "/dav/", service.client("keep"))
    service.answers["gone"] = 410
    await http.put("/dav/a.txt", data=b"a")
    await service.await_messages("keep", 1)
    for _ in range(50):
        if len(stored(tmp_path)) == 1:
            break
        await asyncio.sleep(0.05)
    assert [row[0] for row in stored(tmp_path)] == [keep.rpartition("=")[2]]
    hits = service.hits
    await http.put("/dav/b.txt", data=b"b")
    await service.await_messages("keep", 2)
    assert service.hits == hits + 1  # the gone one is not tried again

    def attempts() -> dict[str, float]:
        (family,) = counted.push_attempts.collect()
        return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}

    # The service has the message before the sender has its answer and counts it.
    for _ in range(50):
        if attempts() == {"delivered": 2, "gone": 1}:
            break
        await asyncio.sleep(0.05)
    assert attempts() == {"delivered": 2, "gone": 1}


async def test_a_failing_endpoint_is_tried_again(http: TestClient, service: PushService) -> None:
    await subscribe(http, "/dav/", service.client("flaky"))
    service.answers["flaky"] = 503
    await http.put("/dav/a.txt", data=b"a")
    for _ in range(40):
        if service.hits >= 1:
            break
        await asyncio.sleep(0.05)
    del service.answers["flaky"]
    got = await service.await_messages("flaky", 1, timeout=5)
    assert got[0].content and service.hits >= 2


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_partial_updates_notify(
    make_server: MakeServer, service: PushService, backend: str
) -> None:
    """A drive's partial updates (PATCH with X-Update-Range, PUT with Content-Range) are
    changes like any PUT: one message each, a newer token each time."""
    http = await make_server(backend=backend)
    assert (await http.put("/dav/f.bin", data=b"0123456789")).status == 201
    await settle()
    await subscribe(http, "/dav/", service.client("a"))
    patch = {"Content-Type": "application/x-sabredav-partialupdate", "X-Update-Range": "append"}
    resp = await http.patch("/dav/f.bin", data=b"AB", headers=patch)
    assert resp.status == 204
    first = (await service.await_messages("a", 1))[0]
    resp = await http.put("/dav/f.bin", data=b"XY", headers={"Content-Range": "bytes 0-1/*"})
    assert resp.status == 204
    second = (await service.await_messages("a", 2))[1]
    assert first.content and second.content and seq(second.token) > seq(first.token)
    assert (await (await http.get("/dav/f.bin")).read()) == b"XY23456789AB"
