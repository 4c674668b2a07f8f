"""Calendar collections: MKCALENDAR (RFC 4791 §5.3.1), extended MKCOL (RFC 5689), where
they may be made, PROPPATCH of what clients set on them, the protected properties,
DELETE."""

from __future__ import annotations

import asyncio

import caldav
import pytest
from caldav_data import (
    EVENTS,
    HEAD,
    HOME,
    NSDECL,
    A,
    C,
    Cal,
    D,
    error_condition,
    event,
    parse_multistatus,
    todo,
)
from helpers import snapshot
from lxml import etree

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

TIMEZONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n"
    "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "END:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n"
)
PROPS = (
    "<D:displayname>Work &amp; play</D:displayname>"
    '<C:calendar-description xml:lang="en">Things to do</C:calendar-description>'
    '<C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set>'
    f"<C:calendar-timezone>{TIMEZONE}</C:calendar-timezone>"
)


def mkcalendar_body(props: str = PROPS) -> str:
    return f"{HEAD}<C:mkcalendar {NSDECL}><D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>"


def mkcol_body(props: str) -> str:
    return f"{HEAD}<D:mkcol {NSDECL}><D:set><D:prop>{props}</D:prop></D:set></D:mkcol>"


def proppatch_body(props: str) -> str:
    return (
        f'{HEAD}<D:propertyupdate {NSDECL} xmlns:Z="urn:example:z">'
        f"<D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"
    )


ASKED = (
    f"{D}resourcetype",
    f"{D}displayname",
    f"{C}calendar-description",
    f"{C}supported-calendar-component-set",
    f"{C}calendar-timezone",
)


async def test_mkcalendar_with_its_properties(cal: Cal) -> None:
    path = f"{HOME}work/"
    status, _, _ = await cal.request("MKCALENDAR", path, mkcalendar_body())
    assert status == 201
    r = (await cal.propfind(path, *ASKED)).responses[0]
    assert {el.tag for el in r.ok(f"{D}resourcetype")} == {f"{D}collection", f"{C}calendar"}
    assert r.value(f"{D}displayname") == "Work & play"
    description = r.ok(f"{C}calendar-description")
    assert description.text == "Things to do"
    assert description.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    comps = r.ok(f"{C}supported-calendar-component-set")
    assert [el.get("name") for el in comps.iter(f"{C}comp")] == ["VTODO"]
    assert r.value(f"{C}calendar-timezone") == TIMEZONE.replace("\r\n", "\n")  # XML line ends
    # Stored as a folder; the component set is enforced.
    assert cal.folder("work").is_dir()
    status, _, body = await cal.put(f"{path}e.ics", event("e1"))
    assert status == 403
    assert error_condition(body) == [f"{C}supported-calendar-component"]
    assert (await cal.put(f"{path}t.ics", todo("t1")))[0] == 201
    # The home lists it beside the defaults.
    ms = await cal.propfind(HOME, f"{D}resourcetype", depth="1")
    assert path in ms.by_href()


async def test_mkcalendar_without_a_body_accepts_every_component(cal: Cal) -> None:
    path = f"{HOME}plain/"
    status, _, _ = await cal.request("MKCALENDAR", path)
    assert status == 201
    comps = (await cal.prop(path, f"{C}supported-calendar-component-set")).element
    assert {el.get("name") for el in comps.iter(f"{C}comp")} == {
        "VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"
    }  # fmt: skip
    assert (await cal.put(f"{path}e.ics", event("e1")))[0] == 201
    assert (await cal.put(f"{path}t.ics", todo("t1")))[0] == 201


async def test_extended_mkcol_makes_a_calendar(cal: Cal) -> None:
    """RFC 5689: MKCOL with resourcetype calendar and the same properties."""
    path = f"{HOME}ext/"
    props = "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>" + PROPS
    status, _, _ = await cal.request("MKCOL", path, mkcol_body(props))
    assert status == 201
    r = (await cal.propfind(path, *ASKED)).responses[0]
    assert r.ok(f"{D}resourcetype").find(f"{C}calendar") is not None
    assert r.value(f"{D}displayname") == "Work & play"
    assert r.value(f"{C}calendar-description") == "Things to do"
    assert r.value(f"{C}calendar-timezone") == TIMEZONE.replace("\r\n", "\n")  # XML line ends


async def test_extended_mkcol_of_something_else_than_a_calendar_is_refused(cal: Cal) -> None:
    await cal.request("OPTIONS", "/caldav/")
    before = snapshot(cal.tmp_path / "calendars")
    body = mkcol_body("<D:resourcetype><D:collection/></D:resourcetype>")
    status, _, data = await cal.request("MKCOL", f"{HOME}plain/", body)
    assert status == 403
    assert error_condition(data) == [f"{D}valid-resourcetype"]
    assert snapshot(cal.tmp_path / "calendars") == before


async def test_the_caldav_library_makes_a_tasks_calendar(cal: Cal) -> None:
    def make() -> tuple[list[str], str | None, list[str]]:
        with caldav.DAVClient(url=cal.url) as client:
            principal = client.principal()
            made = principal.make_calendar(
                name="Chores", cal_id="chores", supported_calendar_component_set=["VTODO"]
            )
            names = sorted(c.get_display_name() for c in principal.calendars())
            return names, made.get_display_name(), made.get_supported_components()

    names, name, comps = await asyncio.to_thread(make)
    assert names == ["Calendar", "Chores", "Tasks"]
    assert name == "Chores"
    assert comps == ["VTODO"]
    assert cal.folder("chores").is_dir()


# -- where calendars can be made ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/caldav/newcal/",  # in the mount root
        f"{EVENTS}inner/",  # inside a calendar
        "/caldav/principals/user/newcal/",
    ],
)
@pytest.mark.parametrize("method", ["MKCALENDAR", "MKCOL"])
async def test_calendars_are_made_only_in_a_home(cal: Cal, path: str, method: str) -> None:
    await cal.request("OPTIONS", "/caldav/")  # let the home be created first
    before = snapshot(cal.tmp_path / "calendars")
    body = (
        mkcalendar_body()
        if method == "MKCALENDAR"
        else mkcol_body("<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>")
    )
    status, _, data = await cal.request(method, path, body)
    assert status == 403, (status, data)
    assert error_condition(data) == [f"{C}calendar-collection-location-ok"]
    assert snapshot(cal.tmp_path / "calendars") == before


async def test_mkcalendar_outside_the_caldav_mount_is_not_a_calendar(cal: Cal) -> None:
    status, _, _ = await cal.request("MKCALENDAR", "/elsewhere/", mkcalendar_body())
    assert status in (403, 405, 501)
    assert not (cal.tmp_path / "data" / "elsewhere").exists()


async def test_mkcalendar_on_an_existing_url_is_403_resource_must_be_null(cal: Cal) -> None:
    """RFC 4791 §5.3.1.1; MKCOL on an existing URL stays 405 (RFC 4918 §9.3.1)."""
    assert (await cal.put(f"{EVENTS}e.ics", event("e1")))[0] == 201
    before = snapshot(cal.tmp_path / "calendars")
    for path in (EVENTS, f"{HOME}tasks/"):
        status, _, data = await cal.request("MKCALENDAR", path, mkcalendar_body())
        assert status == 403, (path, status)
        assert error_condition(data) == [f"{D}resource-must-be-null"]
    status, _, _ = await cal.request("MKCALENDAR", f"{EVENTS}e.ics", mkcalendar_body())
    assert status == 403  # an item's URL is inside a calendar
    status, _, data = await cal.request("MKCOL", EVENTS)
    assert status == 405
    assert snapshot(cal.tmp_path / "calendars") == before


async def test_mkcalendar_setting_a_protected_property_is_refused(cal: Cal) -> None:
    body = mkcalendar_body("<CS:getctag>7</CS:getctag>")
    status, _, data = await cal.request("MKCALENDAR", f"{HOME}x/", body)
    assert status == 403
    assert error_condition(data) == [f"{D}cannot-modify-protected-property"]
    assert not cal.folder("x").exists()


@pytest.mark.parametrize(
    ("prop", "condition"),
    [
        ("<C:calendar-timezone>not iCalendar</C:calendar-timezone>", "valid-calendar-data"),
        (  # a VCALENDAR without a VTIMEZONE
            "<C:calendar-timezone>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
            "</C:calendar-timezone>",
            "valid-calendar-data",
        ),
        (
            '<C:supported-calendar-component-set><C:comp name="VCARD"/>'
            "</C:supported-calendar-component-set>",
            "supported-calendar-component",
        ),
        ("<C:supported-calendar-component-set/>", "supported-calendar-component"),
    ],
)
@pytest.mark.parametrize("method", ["MKCALENDAR", "MKCOL"])
async def test_mkcalendar_with_invalid_calendar_properties_is_refused(
    cal: Cal, prop: str, condition: str, method: str
) -> None:
    """RFC 4791 §5.3.1.1 preconditions of MKCALENDAR (and of extended MKCOL)."""
    await cal.request("OPTIONS", "/caldav/")
    before = snapshot(cal.store)
    body = (
        mkcalendar_body(prop)
        if method == "MKCALENDAR"
        else mkcol_body("<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>" + prop)
    )
    status, _, data = await cal.request(method, f"{HOME}x/", body)
    assert status == 403
    assert error_condition(data) == [f"{C}{condition}"]
    assert snapshot(cal.store) == before


async def test_mkcalendar_with_a_malformed_body_is_400(cal: Cal) -> None:
    await cal.request("OPTIONS", "/caldav/")
    status, _, _ = await cal.request("MKCALENDAR", f"{HOME}x/", "<C:mkcalendar")
    assert status == 400
    status, _, _ = await cal.request("MKCALENDAR", f"{HOME}x/", f"{HEAD}<D:propfind {NSDECL}/>")
    assert status == 400
    assert not cal.folder("x").exists()


# -- PROPPATCH ---------------------------------------------------------------------------------

SET_BY_CLIENTS = (
    "<D:displayname>Renamed</D:displayname>",
    "<C:calendar-description>For meetings</C:calendar-description>",
    '<A:calendar-color symbolic-color="custom">#FF2968FF</A:calendar-color>',
    "<A:calendar-order>3</A:calendar-order>",
    f"<C:calendar-timezone>{TIMEZONE}</C:calendar-timezone>",
    '<Z:random a="1"><Z:nested>x</Z:nested> tail</Z:random>',
)


async def test_proppatch_of_what_clients_set_reads_back_exactly(cal: Cal) -> None:
    body = proppatch_body("".join(SET_BY_CLIENTS))
    status, _, data = await cal.request("PROPPATCH", EVENTS, body)
    assert status == 207
    r = parse_multistatus(data).responses[0]
    names = [
        f"{D}displayname",
        f"{C}calendar-description",
        f"{A}calendar-color",
        f"{A}calendar-order",
        f"{C}calendar-timezone",
        "{urn:example:z}random",
    ]
    assert {n: p.status for n, p in r.props.items()} == dict.fromkeys(names, 200)
    got = (await cal.propfind(EVENTS, *names)).responses[0]
    assert got.value(f"{D}displayname") == "Renamed"
    assert got.value(f"{C}calendar-description") == "For meetings"
    color = got.ok(f"{A}calendar-color")
    assert (color.text, color.get("symbolic-color")) == ("#FF2968FF", "custom")
    assert got.value(f"{A}calendar-order") == "3"
    assert got.value(f"{C}calendar-timezone") == TIMEZONE.replace("\r\n", "\n")
    random = got.ok("{urn:example:z}random")
    assert random.get("a") == "1"
    assert random.findtext("{urn:example:z}nested") == "x"
    assert random[0].tail == " tail"
    # The caldav library and a Depth 1 listing see the new name too.
    ms = await cal.propfind(HOME, f"{D}displayname", depth="1")
    assert ms[EVENTS].value(f"{D}displayname") == "Renamed"


@pytest.mark.parametrize(
    "prop",
    [
        '<C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set>',
        "<CS:getctag>1</CS:getctag>",
        "<D:sync-token>x</D:sync-token>",
        "<D:resourcetype><D:collection/></D:resourcetype>",
        "<C:supported-calendar-data/>",
        "<C:max-resource-size>5</C:max-resource-size>",
        '<D:getetag>"x"</D:getetag>',
    ],
)
async def test_protected_calendar_properties_are_refused_and_nothing_changes(
    cal: Cal, prop: str
) -> None:
    await cal.request("OPTIONS", "/caldav/")
    before = snapshot(cal.tmp_path / "calendars")
    ctag = await cal.ctag()
    body = proppatch_body(prop + "<D:displayname>Not applied</D:displayname>")
    status, _, data = await cal.request("PROPPATCH", EVENTS, body)
    assert status == 207
    r = parse_multistatus(data).responses[0]
    name = etree.fromstring(f"<x {NSDECL}>{prop}</x>")[0].tag
    assert r.props[name].status == 403
    assert r.props[f"{D}displayname"].status == 424
    assert snapshot(cal.tmp_path / "calendars") == before
    assert await cal.ctag() == ctag
    comps = (await cal.prop(EVENTS, f"{C}supported-calendar-component-set")).element
    assert [el.get("name") for el in comps.iter(f"{C}comp")] == ["VEVENT", "VFREEBUSY"]


async def test_proppatch_remove_of_a_dead_property(cal: Cal) -> None:
    await cal.request("PROPPATCH", EVENTS, proppatch_body("<A:calendar-order>1</A:calendar-order>"))
    body = (
        f"{HEAD}<D:propertyupdate {NSDECL}><D:remove><D:prop><A:calendar-order/></D:prop>"
        "</D:remove></D:propertyupdate>"
    )
    status, _, _ = await cal.request("PROPPATCH", EVENTS, body)
    assert status == 207
    assert (await cal.prop(EVENTS, f"{A}calendar-order")).status == 404


# -- DELETE ------------------------------------------------------------------------------------


async def test_delete_a_calendar_and_make_it_again(cal: Cal) -> None:
    path = f"{HOME}work/"
    assert (await cal.request("MKCALENDAR", path, mkcalendar_body()))[0] == 201
    assert (await cal.put(f"{path}t.ics", todo("t1")))[0] == 201
    old_ctag, old_token = await cal.ctag(path)
    status, _, _ = await cal.request("DELETE", path)
    assert status == 204
    assert not cal.folder("work").exists()
    status, _, _ = await cal.request("PROPFIND", path, Depth="0")
    assert status == 404
    assert (await cal.request("MKCALENDAR", path))[0] == 201
    # A new, empty calendar: a new ctag, nothing in an initial sync, and a client holding
    # a token of the old one learns that its item is gone.
    ctag, token = await cal.ctag(path)
    assert ctag != old_ctag
    assert token != old_token
    assert (await cal.sync(path)).responses == []
    changes = await cal.sync(path, old_token)
    assert [(r.href, r.status) for r in changes.responses] == [(f"{path}t.ics", 404)]
    assert (await cal.put(f"{path}t.ics", todo("t1")))[0] == 201
