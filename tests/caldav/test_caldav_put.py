"""PUT of calendar object resources (RFC 4791 §5.3.2): stored byte for byte with an ETag
that GET and PROPFIND agree on, edits, conditional requests, and every precondition
failure answered with its element while nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from caldav_data import (
    EVENTS,
    HOME,
    TASKS,
    C,
    Cal,
    D,
    MakeCal,
    error_condition,
    event,
    ical,
    todo,
    vevent,
)
from helpers import snapshot
from lxml import etree

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

LIMIT = 4096


async def test_put_an_event_then_get_and_propfind_agree_on_bytes_and_etag(cal: Cal) -> None:
    data = event("e1@example.com", "Lunch")
    status, headers, body = await cal.put(f"{EVENTS}lunch.ics", data)
    assert status == 201, body
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert "Last-Modified" in headers
    status, got_headers, got = await cal.request("GET", f"{EVENTS}lunch.ics")
    assert status == 200
    assert got == data  # stored as sent, so the ETag is the one of these bytes
    assert got_headers["ETag"] == etag
    assert got_headers["Content-Type"].startswith("text/calendar")
    assert (await cal.prop(f"{EVENTS}lunch.ics", f"{D}getetag")).element.text == etag
    # One readable .ics file per item on disk.
    assert (cal.folder() / "lunch.ics").read_bytes() == data


async def test_edit_an_event_answers_204_with_a_new_etag(cal: Cal) -> None:
    first = await cal.put_ok(f"{EVENTS}e.ics", event("e1", "Before"))
    data = event("e1", "After")
    status, headers, _ = await cal.put(f"{EVENTS}e.ics", data)
    assert status == 204
    assert headers["ETag"] != first
    status, got_headers, got = await cal.request("GET", f"{EVENTS}e.ics")
    assert got == data
    assert got_headers["ETag"] == headers["ETag"]


async def test_put_a_todo_into_the_tasks_calendar(cal: Cal) -> None:
    data = todo("t1@example.com", "Buy milk", "STATUS:NEEDS-ACTION")
    etag = await cal.put_ok(f"{TASKS}milk.ics", data)
    status, headers, got = await cal.request("GET", f"{TASKS}milk.ics")
    assert (status, got, headers["ETag"]) == (200, data, etag)
    assert (cal.folder("tasks") / "milk.ics").read_bytes() == data


async def test_put_of_a_recurring_event_with_override_and_timezone(cal: Cal) -> None:
    """Several components sharing one UID, and the VTIMEZONE they use, make one object."""
    data = ical(
        "BEGIN:VTIMEZONE", "TZID:Europe/Paris", "BEGIN:STANDARD", "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD", "END:VTIMEZONE",
        "BEGIN:VEVENT", "UID:r1", "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Europe/Paris:20260105T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY",
        "SUMMARY:Daily", "END:VEVENT",
        "BEGIN:VEVENT", "UID:r1", "DTSTAMP:20260101T000000Z",
        "RECURRENCE-ID;TZID=Europe/Paris:20260106T100000",
        "DTSTART;TZID=Europe/Paris:20260106T120000", "DURATION:PT1H", "SUMMARY:Moved",
        "END:VEVENT",
    )  # fmt: skip
    assert (await cal.put(f"{EVENTS}r.ics", data))[0] == 201


@pytest.mark.parametrize(
    "data",
    [
        # Evolution and Outlook sync tools: RRULE UNTIL in local time (CLIENTS 21)
        event("u1", "Until", "RRULE:FREQ=WEEKLY;UNTIL=20260301T100000"),
        # a TZID with a trailing space, as buggy Microsoft clients send (CLIENTS 21)
        ical(*vevent("u2", "Tz", "20260105T100000Z", "20260105T110000Z", "X-TZ;TZID=Foo :bar")),
        # LF line ends instead of CRLF
        event("u3", "LF").replace(b"\r\n", b"\n"),
    ],
)
async def test_slightly_invalid_icalendar_from_real_clients_is_accepted(
    cal: Cal, data: bytes
) -> None:
    assert (await cal.put(f"{EVENTS}lenient.ics", data))[0] == 201
    assert (await cal.request("GET", f"{EVENTS}lenient.ics"))[2] == data


async def test_put_answers_never_a_multistatus(cal: Cal) -> None:
    """Thunderbird wants 201/204 (CLIENTS 19), not 207, whatever the body."""
    for data in (event("x1"), event("x1", "again"), b"garbage"):
        status, headers, _ = await cal.put(f"{EVENTS}x.ics", data)
        assert status != 207
        assert not headers.get("Content-Type", "").startswith("application/xml") or status >= 400


async def test_delete_an_item(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}e.ics", event("e1"))
    status, _, _ = await cal.request("DELETE", f"{EVENTS}e.ics")
    assert status == 204
    assert (await cal.request("GET", f"{EVENTS}e.ics"))[0] == 404
    assert not (cal.folder() / "e.ics").exists()
    # The UID is free again.
    assert (await cal.put(f"{EVENTS}other.ics", event("e1")))[0] == 201


# -- conditional requests ----------------------------------------------------------------------


async def test_if_none_match_star_creates_but_never_overwrites(cal: Cal) -> None:
    path = f"{EVENTS}new.ics"
    assert (await cal.put(path, event("n1"), If_None_Match="*"))[0] == 201
    before = snapshot(cal.store)
    status, _, _ = await cal.put(path, event("n1", "Changed"), If_None_Match="*")
    assert status == 412
    assert snapshot(cal.store) == before


async def test_if_none_match_with_another_etag_lets_the_update_through(cal: Cal) -> None:
    """Exact semantics (CLIENTS 21): only a matching tag (or * on an existing resource)
    stops the PUT."""
    path = f"{EVENTS}e.ics"
    etag = await cal.put_ok(path, event("e1"))
    assert (await cal.put(path, event("e1", "v2"), If_None_Match='"something-else"'))[0] == 204
    new = (await cal.request("GET", path))[1]["ETag"]
    assert new != etag
    assert (await cal.put(path, event("e1", "v3"), If_None_Match=new))[0] == 412
    assert (await cal.request("GET", path))[2] == event("e1", "v2")


async def test_if_match_updates_only_the_version_the_client_has(cal: Cal) -> None:
    path = f"{EVENTS}e.ics"
    etag = await cal.put_ok(path, event("e1", "v1"))
    status, headers, _ = await cal.put(path, event("e1", "v2"), If_Match=etag)
    assert status == 204
    before = snapshot(cal.store)
    # The old ETag no longer matches: a concurrent edit is not overwritten.
    assert (await cal.put(path, event("e1", "v3"), If_Match=etag))[0] == 412
    assert snapshot(cal.store) == before
    assert (await cal.put(path, event("e1", "v3"), If_Match=headers["ETag"]))[0] == 204
    # If-Match on nothing fails, even with *.
    assert (await cal.put(f"{EVENTS}none.ics", event("z1"), If_Match="*"))[0] == 412
    assert (await cal.put(f"{EVENTS}none.ics", event("z1"), If_Match=etag))[0] == 412
    assert not (cal.folder() / "none.ics").exists()


# -- preconditions: the element, the status, and nothing stored -----------------------------------

GARBAGE = b"this is not iCalendar\r\n"
TWO_UIDS = ical(*vevent("a"), *vevent("b"))
MIXED = ical(*vevent("m1"), "BEGIN:VTODO", "UID:m1", "DTSTAMP:20260101T000000Z", "END:VTODO")
WITH_METHOD = ical("METHOD:REQUEST", *vevent("meth1"))
NO_UID = ical("BEGIN:VEVENT", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "END:VEVENT")
ONLY_TIMEZONE = ical(
    "BEGIN:VTIMEZONE", "TZID:X", "BEGIN:STANDARD", "DTSTART:19700101T000000",
    "TZOFFSETFROM:+0000", "TZOFFSETTO:+0000", "END:STANDARD", "END:VTIMEZONE",
)  # fmt: skip
TWO_CALENDARS = event("c1") + event("c2")
NOT_VCALENDAR = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n"


def refusals() -> Iterator[object]:
    valid = "valid-calendar-data"
    resource = "valid-calendar-object-resource"
    yield pytest.param(EVENTS, GARBAGE, "text/calendar", 403, valid, id="garbage")
    yield pytest.param(EVENTS, NOT_VCALENDAR, "text/calendar", 403, valid, id="vcard")
    yield pytest.param(EVENTS, TWO_CALENDARS, "text/calendar", 403, valid, id="two-vcalendars")
    yield pytest.param(EVENTS, b"", "text/calendar", 403, valid, id="empty")
    yield pytest.param(EVENTS, TWO_UIDS, "text/calendar", 403, resource, id="two-uids")
    yield pytest.param(EVENTS, MIXED, "text/calendar", 403, resource, id="mixed-components")
    yield pytest.param(EVENTS, WITH_METHOD, "text/calendar", 403, resource, id="method")
    yield pytest.param(EVENTS, NO_UID, "text/calendar", 403, resource, id="no-uid")
    yield pytest.param(EVENTS, ONLY_TIMEZONE, "text/calendar", 403, resource, id="no-component")
    yield pytest.param(
        EVENTS,
        todo("t1"),
        "text/calendar",
        403,
        "supported-calendar-component",
        id="todo-in-events",
    )
    yield pytest.param(
        TASKS,
        event("e9"),
        "text/calendar",
        403,
        "supported-calendar-component",
        id="event-in-tasks",
    )
    yield pytest.param(
        EVENTS, event("e8"), "text/plain", 403, "supported-calendar-data", id="text-plain"
    )
    yield pytest.param(
        EVENTS, event("e7"), "text/vcard", 403, "supported-calendar-data", id="text-vcard"
    )


@pytest.mark.parametrize(("calendar", "data", "media", "status", "condition"), list(refusals()))
async def test_each_precondition_failure_names_its_element_and_stores_nothing(
    cal: Cal, calendar: str, data: bytes, media: str, status: int, condition: str
) -> None:
    await cal.put_ok(f"{calendar}existing.ics", todo("old") if calendar == TASKS else event("old"))
    before = snapshot(cal.store)
    tokens = await cal.ctag(calendar)
    for name in ("new.ics", "existing.ics"):  # creating, and overwriting a valid item
        got, headers, body = await cal.put(f"{calendar}{name}", data, content_type=media)
        assert got == status, (name, got, body)
        assert error_condition(body) == [f"{C}{condition}"]
        assert "ETag" not in headers
    assert snapshot(cal.store) == before
    assert await cal.ctag(calendar) == tokens


async def test_no_uid_conflict_names_the_existing_resource(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}first.ics", event("same-uid"))
    before = snapshot(cal.store)
    tokens = await cal.ctag()
    status, _, body = await cal.put(f"{EVENTS}second.ics", event("same-uid", "Copy"))
    assert status == 409
    assert error_condition(body) == [f"{C}no-uid-conflict"]
    hrefs = [h.text for h in etree.fromstring(body).iter(f"{D}href")]
    assert hrefs == [f"{EVENTS}first.ics"]
    assert snapshot(cal.store) == before
    assert await cal.ctag() == tokens
    # The same UID in another calendar is fine (RFC 4791: unique per collection).
    await cal.request("MKCALENDAR", f"{HOME}other/")
    assert (await cal.put(f"{HOME}other/x.ics", event("same-uid")))[0] == 201


async def test_overwriting_an_item_with_another_uid_is_a_uid_conflict(cal: Cal) -> None:
    """RFC 4791 §5.3.2.1 no-uid-conflict: a PUT must not "overwrite an existing calendar
    object resource with one that has a different UID property value"."""
    path = f"{EVENTS}e.ics"
    await cal.put_ok(path, event("original"))
    before = snapshot(cal.store)
    status, _, body = await cal.put(path, event("replacement"))
    assert status == 409
    assert error_condition(body) == [f"{C}no-uid-conflict"]
    assert [h.text for h in etree.fromstring(body).iter(f"{D}href")] == [path]
    assert snapshot(cal.store) == before


@pytest.mark.parametrize("chunked", [False, True])
async def test_max_resource_size(make_cal: MakeCal, chunked: bool) -> None:
    cal = await make_cal(max_resource_size=LIMIT)
    assert (await cal.prop(EVENTS, f"{C}max-resource-size")).element.text == str(LIMIT)
    filler = "DESCRIPTION:" + "x" * 60
    small = event("s1", "Small")
    assert (await cal.put(f"{EVENTS}small.ics", small))[0] == 201
    big = event("b1", "Big", *([filler] * (LIMIT // 60)))
    assert len(big) > LIMIT
    before = snapshot(cal.store)
    tokens = await cal.ctag()

    async def chunks() -> object:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    resp = await cal.client.put(
        f"{EVENTS}big.ics",
        data=chunks() if chunked else big,
        headers={"Content-Type": "text/calendar"},
    )
    body = await resp.read()
    assert resp.status == 403, body
    assert error_condition(body) == [f"{C}max-resource-size"]
    assert snapshot(cal.store) == before
    assert await cal.ctag() == tokens


async def test_put_outside_a_calendar_is_refused(cal: Cal) -> None:
    await cal.request("OPTIONS", "/caldav/")
    before = snapshot(cal.store)
    for path in (f"{HOME}loose.ics", "/caldav/loose.ics", f"{EVENTS}sub/x.ics"):
        status, _, _ = await cal.put(path, event("loose"))
        assert status in (403, 409), path
    assert (await cal.put("/caldav/calendars/user/nocal/x.ics", event("l2")))[0] == 409
    assert snapshot(cal.store) == before


async def test_a_refused_put_leaves_no_temporary_file(cal: Cal, tmp_path: Path) -> None:
    await cal.put_ok(f"{EVENTS}ok.ics", event("ok"))
    await cal.put(f"{EVENTS}x.ics", GARBAGE)
    leftovers = [p.name for p in cal.folder().iterdir() if p.name != ".davprops"]
    assert leftovers == ["ok.ics"]
