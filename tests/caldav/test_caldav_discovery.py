"""CalDAV discovery (RFC 6764, RFC 5397, RFC 4791 §6): from the bare server URL to the
principal, the calendar home and its two default calendars; /.well-known/caldav; OPTIONS;
what iOS, Thunderbird and the caldav library ask for on their way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import caldav
import pytest
from caldav_data import (
    CS,
    DISCOVERY_PROPS,
    EVENTS,
    HOME,
    PRINCIPAL,
    TASKS,
    C,
    Cal,
    D,
    MakeCal,
    event,
    parse_multistatus,
    todo,
)

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

CALENDAR_PROPS = (
    f"{D}resourcetype",
    f"{D}displayname",
    f"{C}supported-calendar-component-set",
    f"{D}supported-report-set",
    f"{CS}getctag",
    f"{D}sync-token",
    f"{C}supported-calendar-data",
    f"{C}max-resource-size",
    f"{D}owner",
)


def components(prop: object) -> set[str]:
    """The component names of a supported-calendar-component-set element."""
    return {el.get("name") for el in prop.iter(f"{C}comp")}  # type: ignore[attr-defined]


def reports(element: object) -> set[str]:
    """The report names a supported-report-set lists."""
    return {
        child.tag
        for report in element.iter(f"{D}report")  # type: ignore[attr-defined]
        for child in report
    }


# -- the caldav library from nothing but the server's address ---------------------------------


def test_the_caldav_library_finds_the_calendars_from_the_bare_url_of_davserver_serve(
    server_process, tmp_path: Path
) -> None:
    """`davserver serve` with no config: the embedded default serves CalDAV beside the file
    tree; a client given only http://host:port/ finds principal, home and both calendars."""
    server = server_process()
    with caldav.DAVClient(url=server.url + "/") as client:
        principal = client.principal()
        assert str(principal.url) == f"{server.url}{PRINCIPAL}"
        assert str(principal.calendar_home_set.url) == f"{server.url}{HOME}"
        calendars = {str(c.url): c for c in principal.calendars()}
        assert set(calendars) == {server.url + EVENTS, server.url + TASKS}
        events, tasks = calendars[server.url + EVENTS], calendars[server.url + TASKS]
        assert events.get_display_name() == "Calendar"
        assert tasks.get_display_name() == "Tasks"
        assert events.get_supported_components() == ["VEVENT", "VFREEBUSY"]
        assert tasks.get_supported_components() == ["VTODO"]
        # Discovery wrote nothing; the first event makes the calendars plain folders in
        # ./calendars.
        assert not (tmp_path / "calendars" / "user").exists()
        events.save_event(event("first").decode())
    assert server.stop() == 0
    out = server.log()
    assert f"{server.url}/caldav/" in out, out  # the start-up lines name the CalDAV URL
    assert (tmp_path / "calendars" / "user" / "calendar" / "first.ics").is_file()
    assert (tmp_path / "calendars" / "user" / "tasks").is_dir()


async def test_the_caldav_library_discovers_from_the_mount_url_too(cal: Cal) -> None:
    def discover() -> tuple[str, list[str]]:
        with caldav.DAVClient(url=cal.url + "caldav/") as client:
            principal = client.principal()
            return str(principal.url), sorted(str(c.url) for c in principal.calendars())

    principal, calendars = await asyncio.to_thread(discover)
    assert principal == cal.url.rstrip("/") + PRINCIPAL
    assert calendars == [cal.url.rstrip("/") + EVENTS, cal.url.rstrip("/") + TASKS]


# -- /.well-known/caldav ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PROPFIND", "OPTIONS"])
async def test_well_known_caldav_is_a_301_to_the_mount(cal: Cal, method: str) -> None:
    for path in ("/.well-known/caldav", "/.well-known/caldav/"):
        status, headers, _ = await cal.request(method, path)
        assert status == 301, (method, path)  # not 302: TbSync (CLIENTS 22)
        assert headers["Location"] == "/caldav/"


async def test_well_known_caldav_with_the_mount_at_the_root(make_cal: MakeCal) -> None:
    cal = await make_cal(path="/")
    status, headers, _ = await cal.request("GET", "/.well-known/caldav")
    assert status == 301
    assert headers["Location"] == "/"
    ms = await cal.propfind("/", f"{D}current-user-principal", f"{C}calendar-home-set")
    r = ms.responses[0]
    assert r.ok(f"{D}current-user-principal").findtext(f"{D}href") == "/principals/user/"
    assert r.ok(f"{C}calendar-home-set").findtext(f"{D}href") == "/calendars/user/"


# -- PROPFIND on the way: server root, mount, principal -----------------------------------------


@pytest.mark.parametrize("path", ["/", "/caldav/", PRINCIPAL, "/caldav/principals/"])
async def test_discovery_properties_are_answered_on_root_mount_and_principal(
    cal: Cal, path: str
) -> None:
    ms = await cal.propfind(path, *DISCOVERY_PROPS)
    assert len(ms.responses) == 1
    r = ms.responses[0]
    for name in DISCOVERY_PROPS:
        r.ok(name)
    assert r.ok(f"{D}current-user-principal").findtext(f"{D}href") == PRINCIPAL
    assert r.ok(f"{D}principal-URL").findtext(f"{D}href") == PRINCIPAL
    assert [h.text for h in r.ok(f"{C}calendar-home-set").iter(f"{D}href")] == [HOME]
    addresses = [h.text for h in r.ok(f"{C}calendar-user-address-set").iter(f"{D}href")]
    assert "mailto:user@localhost" in addresses
    assert r.ok(f"{D}owner").findtext(f"{D}href") == PRINCIPAL
    assert r.ok(f"{D}resourcetype").find(f"{D}collection") is not None
    if path == PRINCIPAL:
        assert r.ok(f"{D}resourcetype").find(f"{D}principal") is not None
        assert r.value(f"{D}displayname") == "user"


async def test_the_home_is_a_container_of_the_two_default_calendars(cal: Cal) -> None:
    """iOS asks the home with Depth 1 (CLIENTS 15) and Reminders needs a VTODO-only
    calendar beside the events one (CLIENTS 18)."""
    ms = await cal.propfind(HOME, *CALENDAR_PROPS, depth="1")
    by = ms.by_href()
    assert set(by) == {HOME, EVENTS, TASKS}
    assert by[HOME].ok(f"{D}resourcetype").find(f"{C}calendar") is None
    for path, name, comps in (
        (EVENTS, "Calendar", {"VEVENT", "VFREEBUSY"}),
        (TASKS, "Tasks", {"VTODO"}),
    ):
        r = by[path]
        types = {el.tag for el in r.ok(f"{D}resourcetype")}
        assert types == {f"{D}collection", f"{C}calendar"}
        assert r.value(f"{D}displayname") == name
        assert components(r.ok(f"{C}supported-calendar-component-set")) == comps
        assert {
            f"{C}calendar-multiget",
            f"{C}calendar-query",
            f"{D}sync-collection",
        } <= reports(r.ok(f"{D}supported-report-set"))
        assert r.value(f"{CS}getctag")
        assert r.value(f"{D}sync-token").startswith("http")
        data = r.ok(f"{C}supported-calendar-data").find(f"{C}calendar-data")
        assert data.get("content-type") == "text/calendar"
        assert data.get("version") == "2.0"
        assert int(r.value(f"{C}max-resource-size")) > 0
        assert r.ok(f"{D}owner").findtext(f"{D}href") == PRINCIPAL


async def test_sync_collection_is_advertised_only_where_it_works(cal: Cal) -> None:
    """RFC 6578 §3: supported-report-set names sync-collection on the collections that
    answer it; the calendars do, the home and the principal do not."""
    for path in (HOME, PRINCIPAL, "/caldav/"):
        listed = reports((await cal.prop(path, f"{D}supported-report-set")).element)
        assert f"{D}sync-collection" not in listed, path
        status, _, _ = await cal.request(
            "REPORT", path, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>",
        )  # fmt: skip
        assert status == 403, path


async def test_principals_collection_lists_the_user(cal: Cal) -> None:
    ms = await cal.propfind("/caldav/principals/", f"{D}resourcetype", depth="1")
    by = ms.by_href()
    assert set(by) == {"/caldav/principals/", PRINCIPAL}
    assert by[PRINCIPAL].ok(f"{D}resourcetype").find(f"{D}principal") is not None


async def test_an_unknown_place_is_404_and_another_users_tree_403(cal: Cal) -> None:
    """Another user's principal and home are 403 whether they exist or not (owner-only
    trees do not tell who has an account)."""
    for path, status in (
        ("/caldav/other/", 404),
        ("/caldav/principals/nobody/", 403),
        ("/caldav/calendars/nobody/", 403),
    ):
        got, _, _ = await cal.request("PROPFIND", path, Depth="0")
        assert got == status, path


async def test_the_home_and_calendars_exist_from_the_first_request(cal: Cal) -> None:
    """A user's home with both calendars is there from the first request, but nothing is
    written until the first write: reads create nothing."""
    home = cal.tmp_path / "calendars" / "user"
    for method in ("OPTIONS", "PROPFIND", "GET", "HEAD"):
        status, _, _ = await cal.request(method, "/caldav/calendars/user/", Depth="1")
        assert status in (200, 207), method
    ms = await cal.propfind("/caldav/calendars/user/", f"{D}displayname", depth="1")
    assert set(ms.by_href()) == {
        "/caldav/calendars/user/",
        "/caldav/calendars/user/calendar/",
        "/caldav/calendars/user/tasks/",
    }
    assert not home.exists()
    await cal.put_ok("/caldav/calendars/user/tasks/t.ics", todo("t"))
    assert cal.folder("calendar").is_dir()
    assert (cal.folder("tasks") / "t.ics").is_file()


async def test_default_user_names_the_principal_and_home(make_cal: MakeCal) -> None:
    cal = await make_cal(default_user="alice")
    ms = await cal.propfind("/", f"{D}current-user-principal", f"{C}calendar-home-set")
    r = ms.responses[0]
    assert r.ok(f"{D}current-user-principal").findtext(f"{D}href") == "/caldav/principals/alice/"
    assert r.ok(f"{C}calendar-home-set").findtext(f"{D}href") == "/caldav/calendars/alice/"
    ms = await cal.propfind("/caldav/calendars/alice/", f"{D}resourcetype", depth="1")
    assert set(ms.by_href()) == {
        "/caldav/calendars/alice/",
        "/caldav/calendars/alice/calendar/",
        "/caldav/calendars/alice/tasks/",
    }
    assert not cal.folder("calendar", user="alice").exists()  # until something is written


# -- OPTIONS and what iOS sends ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/caldav/", PRINCIPAL, HOME, EVENTS])
async def test_options_is_200_with_content_length_0_and_calendar_access(
    cal: Cal, path: str
) -> None:
    """Thunderbird wants 200, not 204, with Content-Length: 0 (CLIENTS 19); iOS checks the
    DAV header on the principal (CLIENTS 15)."""
    status, headers, body = await cal.request("OPTIONS", path)
    assert status == 200
    assert headers["Content-Length"] == "0"
    assert body == b""
    dav = {part.strip() for part in headers["DAV"].split(",")}
    assert {"1", "2", "3", "calendar-access", "extended-mkcol"} <= dav
    allow = {part.strip() for part in headers["Allow"].split(",")}
    assert {"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL", "PUT", "DELETE"} <= allow


IOS_PROPFIND = """<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav"
    xmlns:C="http://calendarserver.org/ns/" xmlns:E="http://apple.com/ns/ical/">
  <A:prop>
    <B:calendar-home-set/><B:calendar-user-address-set/><A:current-user-principal/>
    <A:displayname/><C:dropbox-home-URL/><C:email-address-set/><C:notification-URL/>
    <A:principal-collection-set/><A:principal-URL/><A:resource-id/>
    <B:schedule-inbox-URL/><B:schedule-outbox-URL/><A:supported-report-set/>
  </A:prop>
</A:propfind>"""


@pytest.mark.parametrize(
    "headers",
    [
        {"Brief": "t", "Prefer": "return-minimal"},  # what iOS sends (CLIENTS 16)
        {"Prefer": "return=minimal"},
    ],
)
async def test_ios_principal_propfind_with_brief_answers_without_404s(
    cal: Cal, headers: dict[str, str]
) -> None:
    status, _, data = await cal.request("PROPFIND", PRINCIPAL, IOS_PROPFIND, Depth="0", **headers)
    assert status == 207
    r = parse_multistatus(data).responses[0]
    assert {p.status for p in r.props.values()} == {200}
    assert r.ok(f"{C}calendar-home-set").findtext(f"{D}href") == HOME
    assert f"{C}schedule-inbox-URL" not in r.props


async def test_ios_principal_propfind_without_brief_lists_the_unknown_as_404(cal: Cal) -> None:
    status, _, data = await cal.request("PROPFIND", PRINCIPAL, IOS_PROPFIND, Depth="0")
    assert status == 207
    r = parse_multistatus(data).responses[0]
    assert r.props[f"{C}schedule-inbox-URL"].status == 404
    assert r.props[f"{CS}dropbox-home-URL"].status == 404
    assert r.ok(f"{CS}email-address-set").findtext(f"{CS}email-address") == "user@localhost"
    assert r.props[f"{D}principal-collection-set"].hrefs == ["/caldav/principals/"]
    assert r.props[f"{D}current-user-principal"].hrefs == [PRINCIPAL]
