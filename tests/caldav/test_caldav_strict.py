"""What RFC 4791, RFC 5545 and RFC 6578 say a server MUST refuse (issue #16): one test per
rule, each with the status, the precondition element and nothing stored."""

from __future__ import annotations

import pytest
from caldav_data import (
    EVENTS,
    HEAD,
    HOME,
    NSDECL,
    C,
    Cal,
    D,
    error_condition,
    event,
    ical,
    parse_multistatus,
    sync_body,
)
from helpers import snapshot

pytest_plugins = ("caldav_data.fixtures",)

TIMEZONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VTIMEZONE\r\n"
    "TZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n"
)


def query(filter_xml: str, data: str = "<C:calendar-data/>", extra: str = "") -> str:
    return (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/>{data}</D:prop>"
        f"<C:filter>{filter_xml}</C:filter>{extra}</C:calendar-query>"
    )


def vevent_filter(inner: str) -> str:
    return f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{inner}</C:comp-filter></C:comp-filter>'


INVALID_FILTERS = {
    "no comp-filter": "",
    "not VCALENDAR": '<C:comp-filter name="VEVENT"/>',
    "two top filters": '<C:comp-filter name="VCALENDAR"/><C:comp-filter name="VCALENDAR"/>',
    "no name": '<C:comp-filter name="VCALENDAR"><C:comp-filter/></C:comp-filter>',
    "time-range on VCALENDAR": (
        '<C:comp-filter name="VCALENDAR"><C:time-range start="20260101T000000Z"/></C:comp-filter>'
    ),
    "is-not-defined and more": vevent_filter(
        '<C:is-not-defined/><C:time-range start="20260101T000000Z"/>'
    ),
    "two time-ranges": vevent_filter(
        '<C:time-range start="20260101T000000Z"/><C:time-range start="20260201T000000Z"/>'
    ),
    "unknown element": vevent_filter("<C:whatever/>"),
    "prop-filter with time-range and text-match": vevent_filter(
        '<C:prop-filter name="DTSTART"><C:time-range start="20260101T000000Z"/>'
        "<C:text-match>x</C:text-match></C:prop-filter>"
    ),
    "param-filter without a name": vevent_filter(
        '<C:prop-filter name="ATTENDEE"><C:param-filter><C:is-not-defined/></C:param-filter></C:prop-filter>'
    ),
    "time-range in local time": vevent_filter('<C:time-range start="20260101T000000"/>'),
    "time-range as a date": vevent_filter('<C:time-range start="20260101"/>'),
    "time-range without bounds": vevent_filter("<C:time-range/>"),
    "time-range ending before it starts": vevent_filter(
        '<C:time-range start="20260201T000000Z" end="20260101T000000Z"/>'
    ),
}


@pytest.mark.parametrize("flt", INVALID_FILTERS.values(), ids=list(INVALID_FILTERS))
async def test_an_invalid_filter_is_403_valid_filter(cal: Cal, flt: str) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    status, _, data = await cal.request("REPORT", EVENTS, query(flt), Depth="1")
    assert status == 403, data
    assert error_condition(data) == [f"{C}valid-filter"]


@pytest.mark.parametrize(
    "attrs",
    ['content-type="application/calendar+json"', 'version="1.0"', 'content-type="text/plain"'],
)
async def test_calendar_data_of_another_type_is_403_supported_calendar_data(
    cal: Cal, attrs: str
) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    data_el = f"<C:calendar-data {attrs}/>"
    status, _, data = await cal.request(
        "REPORT", EVENTS, query(vevent_filter(""), data_el), Depth="1"
    )
    assert status == 403
    assert error_condition(data) == [f"{C}supported-calendar-data"]
    multiget = (
        f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop>{data_el}</D:prop>"
        f"<D:href>{EVENTS}a.ics</D:href></C:calendar-multiget>"
    )
    status, _, data = await cal.request("REPORT", EVENTS, multiget)
    assert status == 403
    assert error_condition(data) == [f"{C}supported-calendar-data"]


@pytest.mark.parametrize(
    "zone",
    ["not a calendar", ical("BEGIN:VEVENT", "UID:x", "END:VEVENT").decode(), TIMEZONE * 2],
    ids=["garbage", "no VTIMEZONE", "two calendars"],
)
async def test_an_invalid_query_timezone_is_403_valid_calendar_data(cal: Cal, zone: str) -> None:
    extra = f"<C:timezone>{zone.replace('&', '&amp;').replace('<', '&lt;')}</C:timezone>"
    status, _, data = await cal.request(
        "REPORT", EVENTS, query(vevent_filter(""), extra=extra), Depth="1"
    )
    assert status == 403
    assert error_condition(data) == [f"{C}valid-calendar-data"]


async def test_a_valid_query_timezone_is_accepted(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    extra = f"<C:timezone>{TIMEZONE}</C:timezone>"
    status, _, data = await cal.request(
        "REPORT", EVENTS, query(vevent_filter(""), extra=extra), Depth="1"
    )
    assert status == 207
    assert len(parse_multistatus(data).responses) == 1


@pytest.mark.parametrize("level", ["2", "infinity", "one"])
async def test_a_bad_sync_level_is_400(cal: Cal, level: str) -> None:
    body = sync_body().replace(
        "<D:sync-token", f"<D:sync-level>{level}</D:sync-level><D:sync-token"
    )
    status, _, _ = await cal.request("REPORT", EVENTS, body)
    assert status == 400


@pytest.mark.parametrize("level", ["1", "infinite"])
async def test_the_sync_levels_of_rfc_6578_are_answered(cal: Cal, level: str) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    body = sync_body().replace(
        "<D:sync-token", f"<D:sync-level>{level}</D:sync-level><D:sync-token"
    )
    status, _, data = await cal.request("REPORT", EVENTS, body)
    assert status == 207
    assert [r.href for r in parse_multistatus(data).responses] == [f"{EVENTS}a.ics"]


INVALID_OBJECTS = {
    "RRULE with an unknown frequency": event("x", "Meeting", "RRULE:FREQ=SOMETIMES"),
    "RRULE without a frequency": event("x", "Meeting", "RRULE:COUNT=3"),
    "RRULE with a bad count": event("x", "Meeting", "RRULE:FREQ=DAILY;COUNT=abc"),
    "RRULE with a bad day": event("x", "Meeting", "RRULE:FREQ=WEEKLY;BYDAY=XX"),
    "bad escape sequence": event("x", "a\\qb"),
    "RECURRENCE-ID that is no date": event("x", "Meeting", "RECURRENCE-ID:tomorrow"),
    "control character": event("x", "a\x01b"),
    "DEL character": event("x", "a\x7fb"),
    "not UTF-8": event("x", "caf\xe9").replace("caf\xe9".encode(), "caf\xe9".encode("latin-1")),
}


@pytest.mark.parametrize("data", INVALID_OBJECTS.values(), ids=list(INVALID_OBJECTS))
async def test_an_invalid_object_is_403_valid_calendar_data(cal: Cal, data: bytes) -> None:
    await cal.put_ok(f"{EVENTS}keep.ics", event("keep"))
    before = snapshot(cal.store)
    status, _, body = await cal.put(f"{EVENTS}x.ics", data)
    assert status == 403
    assert error_condition(body) == [f"{C}valid-calendar-data"]
    assert snapshot(cal.store) == before


async def test_a_non_utf8_body_is_judged_on_its_encoding_before_its_uid(cal: Cal) -> None:
    """The UID is taken already: the body's encoding is what fails first (403, not 409)."""
    await cal.put_ok(f"{EVENTS}a.ics", event("taken"))
    before = snapshot(cal.store)
    latin1 = event("taken", "caf\xe9").replace("caf\xe9".encode(), b"caf\xe9")
    status, _, body = await cal.put(f"{EVENTS}b.ics", latin1)
    assert status == 403
    assert error_condition(body) == [f"{C}valid-calendar-data"]
    assert snapshot(cal.store) == before


async def test_proppatch_of_an_invalid_calendar_timezone_is_refused(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    before = snapshot(cal.store)
    ctag = await cal.ctag()
    body = (
        f"{HEAD}<D:propertyupdate {NSDECL}><D:set><D:prop>"
        "<C:calendar-timezone>BEGIN:VCALENDAR&#13;\nEND:VCALENDAR</C:calendar-timezone>"
        "<D:displayname>Not applied</D:displayname></D:prop></D:set></D:propertyupdate>"
    )
    status, _, data = await cal.request("PROPPATCH", EVENTS, body)
    assert status == 207
    r = parse_multistatus(data).responses[0]
    assert r.props[f"{C}calendar-timezone"].status == 403
    assert f"{C}valid-calendar-data".encode()[1:].split(b"}")[1] in data
    assert r.props[f"{D}displayname"].status == 424
    assert snapshot(cal.store) == before
    assert await cal.ctag() == ctag


async def test_a_new_calendar_has_no_calendar_timezone_until_one_is_set(cal: Cal) -> None:
    await cal.request("MKCALENDAR", f"{HOME}fresh/")
    assert (await cal.prop(f"{HOME}fresh/", f"{C}calendar-timezone")).status == 404
    assert (await cal.prop(EVENTS, f"{C}calendar-timezone")).status == 404
    body = (
        f"{HEAD}<D:propertyupdate {NSDECL}><D:set><D:prop><C:calendar-timezone>"
        f"{TIMEZONE}</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"
    )
    status, _, _ = await cal.request("PROPPATCH", f"{HOME}fresh/", body)
    assert status == 207
    assert (await cal.prop(f"{HOME}fresh/", f"{C}calendar-timezone")).status == 200


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_overwrite_f_onto_an_existing_item_is_412_before_the_uid_check(
    cal: Cal, method: str
) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("one"))
    await cal.put_ok(f"{EVENTS}b.ics", event("two"))
    before = snapshot(cal.store)
    status, _, _ = await cal.request(
        method,
        f"{EVENTS}a.ics",
        Destination=str(cal.client.make_url(f"{EVENTS}b.ics")),
        Overwrite="F",
    )
    assert status == 412
    assert snapshot(cal.store) == before


async def test_vfreebusy_objects_go_where_no_component_set_forbids_them(cal: Cal) -> None:
    freebusy = ical(
        "BEGIN:VFREEBUSY", "UID:fb", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T000000Z",
        "DTEND:20260106T000000Z", "FREEBUSY:20260105T100000Z/20260105T110000Z", "END:VFREEBUSY",
    )  # fmt: skip
    await cal.request("MKCALENDAR", f"{HOME}any/")
    assert (await cal.put(f"{HOME}any/fb.ics", freebusy))[0] == 201
    assert (await cal.put(f"{EVENTS}fb.ics", freebusy))[0] == 201  # the default calendar
    status, _, body = await cal.put(f"{HOME}tasks/fb.ics", freebusy)
    assert status == 403
    assert error_condition(body) == [f"{C}supported-calendar-component"]
