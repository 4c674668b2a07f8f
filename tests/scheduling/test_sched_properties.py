"""The scheduling properties (RFC 6638 §2, §9): the principal's inbox and outbox URLs,
calendar user addresses and type; the inbox's and outbox's resource types, privileges and
default calendar; a calendar's schedule-calendar-transp; the schedule tag; what clients may
set and what they may not (403 and nothing changed); the DAV: header; reads that create
nothing; and a mount with scheduling off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from caldav_data import parse_multistatus, propfind_body
from helpers import snapshot
from sched_data import (
    PREFIX,
    Site,
    calendar,
    home,
    inbox,
    meeting,
    outbox,
    site_config,
    start_site,
)

from davserver.config import Config

C = "{urn:ietf:params:xml:ns:caldav}"
D = "{DAV:}"
PRINCIPAL = f"{PREFIX}/principals/bob/"
NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'


async def props(site: Site, path: str, *names: str, user: str = "bob") -> Any:
    ans = await site.request("PROPFIND", path, user, propfind_body(*names), Depth="0")
    assert ans.status == 207, ans.body
    return parse_multistatus(ans.body).responses[0]


def proppatch(inner: str, remove: bool = False) -> str:
    verb = "remove" if remove else "set"
    return (
        f"<D:propertyupdate {NS}><D:{verb}><D:prop>{inner}</D:prop></D:{verb}></D:propertyupdate>"
    )


async def test_the_principal_names_its_inbox_outbox_and_addresses(site: Site) -> None:
    r = await props(
        site, PRINCIPAL, f"{C}schedule-inbox-URL", f"{C}schedule-outbox-URL",
        f"{C}calendar-user-address-set", f"{C}calendar-user-type",
    )  # fmt: skip
    assert r.ok(f"{C}schedule-inbox-URL").findtext(f"{D}href") == inbox("bob")
    assert r.ok(f"{C}schedule-outbox-URL").findtext(f"{D}href") == outbox("bob")
    hrefs = [h.text for h in r.ok(f"{C}calendar-user-address-set").iter(f"{D}href")]
    assert hrefs == ["mailto:bob@example.org", "mailto:robert@example.org", PRINCIPAL]
    assert r.value(f"{C}calendar-user-type") == "INDIVIDUAL"
    cat = await props(
        site, f"{PREFIX}/principals/cat/", f"{C}calendar-user-address-set", user="cat"
    )
    hrefs = [h.text for h in cat.ok(f"{C}calendar-user-address-set").iter(f"{D}href")]
    assert hrefs == ["mailto:cat@example.org", f"{PREFIX}/principals/cat/"]  # [auth] domain


async def test_allprop_leaves_the_scheduling_properties_out(site: Site) -> None:
    ans = await site.request("PROPFIND", PRINCIPAL, "bob", Depth="0")
    assert b"schedule-inbox-URL" not in ans.body and b"schedule-outbox-URL" not in ans.body
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1"))
    ans = await site.request("PROPFIND", calendar("bob") + "m1.ics", "bob", Depth="0")
    assert ans.status == 207 and b"schedule-tag" not in ans.body


async def test_the_inbox_and_outbox(site: Site) -> None:
    box = await props(
        site, inbox("bob"), f"{D}resourcetype", f"{C}schedule-default-calendar-URL",
        f"{D}current-user-privilege-set",
    )  # fmt: skip
    assert {el.tag for el in box.ok(f"{D}resourcetype")} == {f"{D}collection", f"{C}schedule-inbox"}
    assert box.ok(f"{C}schedule-default-calendar-URL").findtext(f"{D}href") == calendar("bob")
    privileges = {p[0].tag for p in box.ok(f"{D}current-user-privilege-set")}
    assert f"{C}schedule-deliver" in privileges
    out = await props(site, outbox("bob"), f"{D}resourcetype", f"{D}current-user-privilege-set")
    assert {el.tag for el in out.ok(f"{D}resourcetype")} == {
        f"{D}collection",
        f"{C}schedule-outbox",
    }
    privileges = {p[0].tag for p in out.ok(f"{D}current-user-privilege-set")}
    assert {f"{C}schedule-send", f"{C}schedule-send-freebusy"} <= privileges
    cal = await props(site, calendar("bob"), f"{C}schedule-calendar-transp", f"{D}resourcetype")
    assert cal.ok(f"{C}schedule-calendar-transp").find(f"{C}opaque") is not None
    ans = await site.request("OPTIONS", inbox("bob"), "bob")
    assert "calendar-auto-schedule" in {x.strip() for x in ans.headers["DAV"].split(",")}
    assert "POST" in ans.headers["Allow"]


async def test_reading_the_boxes_creates_nothing(site: Site) -> None:
    before = snapshot(site.tmp_path)
    for path in (inbox("bob"), outbox("bob"), home("bob")):
        ans = await site.request("PROPFIND", path, "bob", Depth="1")
        assert ans.status == 207
    ans = await site.request(
        "REPORT", inbox("bob"), "bob",
        f'<D:sync-collection {NS}><D:sync-token/><D:sync-level>1</D:sync-level>'
        "<D:prop><D:getetag/></D:prop></D:sync-collection>",
    )  # fmt: skip
    assert ans.status == 207
    assert snapshot(site.tmp_path) == before


async def test_the_default_calendar_can_be_set_to_a_calendar_of_ones_own(site: Site) -> None:
    assert (await site.request("MKCALENDAR", home("bob") + "work/", "bob")).status == 201
    value = f"<C:schedule-default-calendar-URL><D:href>{home('bob')}work/</D:href></C:schedule-default-calendar-URL>"
    ans = await site.request("PROPPATCH", inbox("bob"), "bob", proppatch(value))
    assert ans.status == 207 and b"200 OK" in ans.body
    r = await props(site, inbox("bob"), f"{C}schedule-default-calendar-URL")
    assert r.ok(f"{C}schedule-default-calendar-URL").findtext(f"{D}href") == home("bob") + "work/"


@pytest.mark.parametrize(
    "target",
    [f"{PREFIX}/calendars/ann/calendar/", f"{PREFIX}/calendars/bob/nowhere/",
     f"{PREFIX}/calendars/bob/outbox/", "http://elsewhere.org/x/"],
    ids=["another user's", "missing", "the outbox", "elsewhere"],
)  # fmt: skip
async def test_a_default_calendar_that_cannot_be_is_refused(site: Site, target: str) -> None:
    await site.request("MKCALENDAR", home("bob") + "work/", "bob")
    before = snapshot(site.store)
    value = f"<C:schedule-default-calendar-URL><D:href>{target}</D:href></C:schedule-default-calendar-URL>"
    ans = await site.request("PROPPATCH", inbox("bob"), "bob", proppatch(value))
    assert ans.status == 207
    [r] = parse_multistatus(ans.body).responses
    assert r.props[f"{C}schedule-default-calendar-URL"].status == 403
    assert b"valid-schedule-default-calendar-URL" in ans.body
    assert snapshot(site.store) == before


async def test_schedule_calendar_transp_is_opaque_or_transparent_on_calendars(site: Site) -> None:
    good = "<C:schedule-calendar-transp><C:transparent/></C:schedule-calendar-transp>"
    ans = await site.request("PROPPATCH", calendar("bob"), "bob", proppatch(good))
    assert b"200 OK" in ans.body
    r = await props(site, calendar("bob"), f"{C}schedule-calendar-transp")
    assert r.ok(f"{C}schedule-calendar-transp").find(f"{C}transparent") is not None
    before = snapshot(site.store)
    bad = "<C:schedule-calendar-transp><C:sometimes/></C:schedule-calendar-transp>"
    for path, value in ((calendar("bob"), bad), (inbox("bob"), good)):
        ans = await site.request("PROPPATCH", path, "bob", proppatch(value))
        assert ans.status == 207 and b"403" in ans.body, path
    assert snapshot(site.store) == before


async def test_the_schedule_tag_is_the_servers(site: Site) -> None:
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1"))
    path = calendar("bob") + "m1.ics"
    tag = (await site.request("GET", path, "bob")).headers["Schedule-Tag"]
    r = await props(site, path, f"{C}schedule-tag")
    assert r.value(f"{C}schedule-tag") == tag
    # Reports read it too (the caldav library asks it with getetag).
    body = (
        f"<C:calendar-multiget {NS}><D:prop><D:getetag/><C:schedule-tag/></D:prop>"
        f"<D:href>{path}</D:href></C:calendar-multiget>"
    )
    ans = await site.request("REPORT", calendar("bob"), "bob", body, Depth="1")
    [r] = parse_multistatus(ans.body).responses
    assert r.value(f"{C}schedule-tag") == tag
    before = snapshot(site.store)
    for verb in (False, True):
        ans = await site.request(
            "PROPPATCH", path, "bob", proppatch('<C:schedule-tag>"mine"</C:schedule-tag>', verb)
        )
        assert ans.status == 207 and b"cannot-modify-protected-property" in ans.body
    assert snapshot(site.store) == before


async def test_the_boxes_cannot_be_deleted_nor_filled(site: Site) -> None:
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1"))
    before = snapshot(site.store)
    for path in (inbox("bob"), outbox("bob")):
        assert (await site.request("DELETE", path, "bob")).status == 403
        ans = await site.request("MKCALENDAR", path, "bob")
        assert ans.status in (403, 405)
    ans = await site.put("bob", inbox("bob") + "mine.ics", meeting("mine", organizer="bob"))
    assert ans.status == 403
    [name] = await site.members("bob", inbox("bob"))
    moved = await site.request(
        "MOVE", inbox("bob") + name, "bob", Destination=calendar("bob") + "moved.ics"
    )
    assert moved.status == 403
    assert snapshot(site.store) == before
    # What the inbox holds may be read and deleted.
    assert (await site.request("DELETE", inbox("bob") + name, "bob")).status == 204
    assert await site.inbox("bob") == []


async def test_free_busy_query_is_a_calendars_report(site: Site) -> None:
    body = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:free-busy-query>'
    )
    for path in (inbox("bob"), outbox("bob")):
        ans = await site.request("REPORT", path, "bob", body, Depth="1")
        assert ans.status == 403, path
    ans = await site.request("REPORT", calendar("bob"), "bob", body, Depth="1")
    assert ans.status == 200


@pytest.fixture
def off_config(tmp_path: Path) -> Config:
    return site_config(tmp_path, "filesystem", scheduling=False)


async def test_scheduling_off(off_config: Config, aiohttp_client: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_client, off_config, tmp_path)
    ans = await site.request("OPTIONS", home("bob"), "bob")
    assert "calendar-auto-schedule" not in ans.headers["DAV"]
    ans = await site.request(
        "PROPFIND", home("bob"), "bob", propfind_body(f"{D}resourcetype"), Depth="1"
    )
    hrefs = {r.href for r in parse_multistatus(ans.body).responses}
    assert inbox("bob") not in hrefs and outbox("bob") not in hrefs
    data = meeting("m1")
    assert (await site.put("ann", calendar("ann") + "m1.ics", data)).status == 201
    assert await site.get("ann", calendar("ann") + "m1.ics") == data
    r = await props(site, PRINCIPAL, f"{C}schedule-inbox-URL")
    assert r.props[f"{C}schedule-inbox-URL"].status == 404
    # The addresses are the configuration's all the same.
    r = await props(site, PRINCIPAL, f"{C}calendar-user-address-set")
    assert "mailto:robert@example.org" in r.ok(f"{C}calendar-user-address-set").itertext()
