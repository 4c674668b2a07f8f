"""REPORTs: calendar-multiget (RFC 4791 §7.9) with whole and partial calendar-data,
calendar-query (§7.8) basics, expanded recurrences (§9.6.5), expand-property (empty, for
InfCloud) and unknown reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import caldav
import icalendar
import pytest
from caldav_data import (
    EVENTS,
    HEAD,
    NSDECL,
    RECURRING,
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
from lxml import etree

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

DETAILED = ical(
    *vevent(
        "d1@example.com", "Dentist", "20260110T090000Z", "20260110T093000Z",
        "DESCRIPTION:Bring the forms", "LOCATION:Main street 1",
        "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Soon", "TRIGGER:-PT15M", "END:VALARM",
    )
)  # fmt: skip


def parse_data(response: object) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(response.value(f"{C}calendar-data"))  # type: ignore[attr-defined]


# -- calendar-multiget -------------------------------------------------------------------------


async def test_multiget_returns_the_stored_bytes_and_etags(cal: Cal) -> None:
    items = {f"{EVENTS}{i}.ics": event(f"m{i}", f"Item {i}") for i in range(3)}
    etags = {path: await cal.put_ok(path, data) for path, data in items.items()}
    ms = await cal.multiget(EVENTS, list(items))
    assert [r.href for r in ms.responses] == list(items)  # in the order asked
    for path, data in items.items():
        r = ms[path]
        assert r.value(f"{D}getetag") == etags[path]
        # XML turns CRLF into LF; the text is otherwise the stored object.
        assert r.value(f"{C}calendar-data") == data.decode().replace("\r\n", "\n")


async def test_multiget_asked_again_answers_the_same_and_a_changed_item_anew(cal: Cal) -> None:
    # The second answer comes from the renderings kept in the body cache; a PUT moves the
    # ETag, so the third renders the new bytes.
    links = [f"{EVENTS}a.ics", f"{EVENTS}b.ics"]
    for link in links:
        await cal.put_ok(link, event(link[-5], "Before"))
    first = await cal.multiget(EVENTS, links)
    again = await cal.multiget(EVENTS, links)
    assert etree.tostring(again.root) == etree.tostring(first.root)
    etag = await cal.put_ok(links[0], event("a", "After"))
    ms = await cal.multiget(EVENTS, links)
    assert ms[links[0]].value(f"{D}getetag") == etag
    assert "SUMMARY:After" in ms[links[0]].value(f"{C}calendar-data")
    assert etree.tostring(ms.root[1]) == etree.tostring(first.root[1])  # b, unchanged


async def test_multiget_of_missing_and_foreign_hrefs_answers_404_for_each(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}here.ics", event("h1"))
    asked = [
        f"{EVENTS}here.ics",
        f"{EVENTS}missing.ics",
        "/data/file.ics",  # outside the CalDAV mount
        "http://elsewhere.example/caldav/calendars/user/calendar/here.ics",  # another host
        f"{TASKS}missing.ics",
        EVENTS,  # a collection, not an object
    ]
    ms = await cal.multiget(EVENTS, asked)
    assert len(ms.responses) == len(asked)
    assert ms[f"{EVENTS}here.ics"].value(f"{D}getetag")
    for r in ms.responses[1:]:
        assert r.status == 404, r.href
    assert {r.href for r in ms.responses[1:]} >= {f"{EVENTS}missing.ics", "/data/file.ics"}


async def test_multiget_checks_each_href_whole_though_its_folder_is_decoded_once(
    cal: Cal,
) -> None:
    # Hrefs in one folder: the folder is decoded (and its access decided) once, and only
    # the last segment of each is looked at; every other spelling takes the whole way.
    await cal.put_ok(f"{EVENTS}here.ics", event("h1"))
    await cal.put_ok(f"{TASKS}t.ics", todo("t1"))
    ok = {
        f"{EVENTS}here.ics": f"{EVENTS}here.ics",
        f"{EVENTS}h%65re.ics": f"{EVENTS}here.ics",  # an escape in the name
        f"{EVENTS[:-1].replace('calendar', 'c%61lendar')}/here.ics": f"{EVENTS}here.ics",
        f"  {EVENTS}here.ics\n": f"{EVENTS}here.ics",  # white space around
        f"{TASKS}t.ics": f"{TASKS}t.ics",  # another folder
    }
    refused = {
        f"{EVENTS}.davprops": 404,  # a reserved name
        f"{EVENTS}..": 404,
        f"{EVENTS}?x=/here.ics": 404,  # a query: the path is the calendar itself
        f"{EVENTS}#/here.ics": 404,
        "/caldav/calendars/other/calendar/here.ics": 403,  # another user's tree
        "/caldav/calendars/here.ics": 403,  # the home of a user called so
        "here.ics": 404,  # no absolute path
    }
    ms = await cal.multiget(EVENTS, [*ok, *refused])
    assert len(ms.responses) == len(ok) + len(refused)
    for r, want in zip(ms.responses, ok.values(), strict=False):
        assert r.href == want and r.value(f"{D}getetag"), r.href
    for r, status in zip(ms.responses[len(ok) :], refused.values(), strict=True):
        assert r.status == status, r.href


async def test_multiget_answers_names_that_need_encoding_with_their_encoded_hrefs(
    cal: Cal,
) -> None:
    # The names of one request are checked together: one that needs encoding among plain
    # ones takes the whole way, in the request and in the answer.
    asked = [f"{EVENTS}plain.ics", f"{EVENTS}with%20space.ics", f"{EVENTS}%C3%A9t%C3%A9.ics"]
    etags = [await cal.put_ok(link, event(f"e{i}")) for i, link in enumerate(asked)]
    ms = await cal.multiget(EVENTS, asked)
    assert [r.href for r in ms.responses] == asked
    assert [r.value(f"{D}getetag") for r in ms.responses] == etags
    spelled = [f"{EVENTS}pl%61in.ics", f"{EVENTS}with space.ics"]  # decoded the same
    ms = await cal.multiget(EVENTS, spelled)
    assert [r.href for r in ms.responses] == asked[:2]
    assert [r.value(f"{D}getetag") for r in ms.responses] == etags[:2]
    names = sorted(p.name for p in cal.folder().glob("*.ics"))
    assert names == ["plain.ics", "with space.ics", "été.ics"]


async def test_multiget_with_full_urls_as_thunderbird_may_send(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a1"))
    full = str(cal.client.make_url(f"{EVENTS}a.ics"))
    ms = await cal.multiget(EVENTS, [full])
    assert ms.responses[0].value(f"{D}getetag")


async def test_multiget_partial_retrieval_of_components_and_properties(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}d.ics", DETAILED)
    prop = (
        '<C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/>'
        '<C:comp name="VEVENT"><C:prop name="UID"/><C:prop name="SUMMARY"/>'
        '<C:prop name="DTSTART"/></C:comp></C:comp></C:calendar-data>'
    )
    ms = await cal.multiget(EVENTS, [f"{EVENTS}d.ics"], prop)
    got = parse_data(ms.responses[0])
    assert set(got) == {"VERSION"}
    [ev] = got.subcomponents
    assert ev.name == "VEVENT"
    assert set(ev) == {"UID", "SUMMARY", "DTSTART"}
    assert str(ev["SUMMARY"]) == "Dentist"
    assert ev.subcomponents == []  # the VALARM was not asked for


async def test_multiget_partial_retrieval_with_allprop_and_allcomp(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}d.ics", DETAILED)
    prop = (
        '<C:calendar-data><C:comp name="VCALENDAR"><C:allprop/>'
        '<C:comp name="VEVENT"><C:prop name="SUMMARY"/><C:allcomp/></C:comp>'
        "</C:comp></C:calendar-data>"
    )
    ms = await cal.multiget(EVENTS, [f"{EVENTS}d.ics"], prop)
    got = parse_data(ms.responses[0])
    assert {"VERSION", "PRODID"} <= set(got)
    [ev] = got.subcomponents
    assert set(ev) == {"SUMMARY"}
    assert [s.name for s in ev.subcomponents] == ["VALARM"]
    assert str(ev.subcomponents[0]["DESCRIPTION"]) == "Soon"


async def test_multiget_getetag_only_reads_no_calendar_data(cal: Cal) -> None:
    etag = await cal.put_ok(f"{EVENTS}a.ics", event("a1"))
    ms = await cal.multiget(EVENTS, [f"{EVENTS}a.ics"], "<D:getcontenttype/>")
    r = ms.responses[0]
    assert r.value(f"{D}getetag") == etag
    assert r.value(f"{D}getcontenttype").startswith("text/calendar")
    assert f"{C}calendar-data" not in r.props


async def test_multiget_without_href_is_400(cal: Cal) -> None:
    body = (
        f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop><D:getetag/></D:prop></C:calendar-multiget>"
    )
    assert (await cal.request("REPORT", EVENTS, body, Depth="1"))[0] == 400


# -- calendar-query ------------------------------------------------------------------------------


def query_body(filter_xml: str, data: str = "<C:calendar-data/>") -> str:
    return (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/>{data}</D:prop>"
        f'<C:filter><C:comp-filter name="VCALENDAR">{filter_xml}</C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )


async def fill(cal: Cal) -> None:
    await cal.put_ok(
        f"{EVENTS}early.ics",
        event("early", "Early", start="20250101T100000Z", end="20250101T110000Z"),
    )
    await cal.put_ok(
        f"{EVENTS}late.ics", event("late", "Late", start="20270101T100000Z", end="20270101T110000Z")
    )
    await cal.put_ok(f"{EVENTS}weekly.ics", RECURRING)
    await cal.put_ok(f"{TASKS}t1.ics", todo("t1", "Open", "STATUS:NEEDS-ACTION"))
    await cal.put_ok(f"{TASKS}t2.ics", todo("t2", "Done", "STATUS:COMPLETED"))


async def test_query_all_events_and_all_todos(cal: Cal) -> None:
    await fill(cal)
    ms = await cal.report(EVENTS, query_body('<C:comp-filter name="VEVENT"/>'))
    assert {r.href for r in ms.responses} == {
        f"{EVENTS}early.ics",
        f"{EVENTS}late.ics",
        f"{EVENTS}weekly.ics",
    }
    ms = await cal.report(TASKS, query_body('<C:comp-filter name="VTODO"/>'))
    assert {r.href for r in ms.responses} == {f"{TASKS}t1.ics", f"{TASKS}t2.ics"}
    ms = await cal.report(TASKS, query_body('<C:comp-filter name="VEVENT"/>'))
    assert ms.responses == []


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('start="20260101T000000Z" end="20260201T000000Z"', {"weekly.ics"}),
        ('start="20260601T000000Z"', {"late.ics"}),  # open-ended, as DAVx5 sends (CLIENTS 20)
        ('end="20260101T000000Z"', {"early.ics"}),
        ('start="20260119T000000Z" end="20260120T000000Z"', set()),  # the EXDATE'd week
        ('start="20260126T130000Z" end="20260126T160000Z"', {"weekly.ics"}),  # the moved one
        ('start="20260126T100000Z" end="20260126T110000Z"', set()),  # where it was
    ],
)
async def test_query_by_time_range(cal: Cal, attrs: str, expected: set[str]) -> None:
    await fill(cal)
    flt = f'<C:comp-filter name="VEVENT"><C:time-range {attrs}/></C:comp-filter>'
    ms = await cal.report(EVENTS, query_body(flt, ""))
    assert {r.href.rsplit("/", 1)[1] for r in ms.responses} == expected


async def test_query_by_text_match(cal: Cal) -> None:
    await fill(cal)
    flt = (
        '<C:comp-filter name="VTODO"><C:prop-filter name="STATUS">'
        "<C:text-match>completed</C:text-match></C:prop-filter></C:comp-filter>"
    )
    ms = await cal.report(TASKS, query_body(flt))
    assert [r.href for r in ms.responses] == [f"{TASKS}t2.ics"]


async def test_query_by_param_filter_and_is_not_defined(cal: Cal) -> None:
    await cal.put_ok(
        f"{EVENTS}invite.ics",
        event("inv", "Invite", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@example.com"),
    )
    await cal.put_ok(f"{EVENTS}alone.ics", event("alone", "Alone"))
    accepted = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE">'
        '<C:param-filter name="PARTSTAT"><C:text-match>ACCEPTED</C:text-match>'
        "</C:param-filter></C:prop-filter></C:comp-filter>"
    )
    ms = await cal.report(EVENTS, query_body(accepted, ""))
    assert [r.href for r in ms.responses] == [f"{EVENTS}invite.ics"]
    without = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE">'
        "<C:is-not-defined/></C:prop-filter></C:comp-filter>"
    )
    ms = await cal.report(EVENTS, query_body(without, ""))
    assert [r.href for r in ms.responses] == [f"{EVENTS}alone.ics"]
    negated = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY">'
        '<C:text-match negate-condition="yes">invite</C:text-match></C:prop-filter>'
        "</C:comp-filter>"
    )
    ms = await cal.report(EVENTS, query_body(negated, ""))
    assert [r.href for r in ms.responses] == [f"{EVENTS}alone.ics"]


async def test_query_with_expand_returns_the_instances(cal: Cal) -> None:
    await fill(cal)
    data = (
        '<C:calendar-data><C:expand start="20260101T000000Z" end="20260201T000000Z"/>'
        "</C:calendar-data>"
    )
    flt = (
        '<C:comp-filter name="VEVENT"><C:time-range start="20260101T000000Z" '
        'end="20260201T000000Z"/></C:comp-filter>'
    )
    ms = await cal.report(EVENTS, query_body(flt, data))
    [r] = ms.responses
    got = parse_data(r)
    events = [c for c in got.subcomponents if c.name == "VEVENT"]
    starts = sorted(c["DTSTART"].dt for c in events)
    assert starts == [
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        datetime(2026, 1, 12, 10, tzinfo=UTC),
        datetime(2026, 1, 26, 14, tzinfo=UTC),  # the override, moved; 19 Jan is gone
    ]
    for c in events:
        assert "RRULE" not in c and "EXDATE" not in c
        assert "RECURRENCE-ID" in c
        assert c["UID"] == "weekly@example.com"
    moved = next(c for c in events if c["DTSTART"].dt.hour == 14)
    assert str(moved["SUMMARY"]) == "Weekly (moved)"
    assert moved["RECURRENCE-ID"].dt == datetime(2026, 1, 26, 10, tzinfo=UTC)


async def test_query_without_a_vcalendar_filter_is_refused(cal: Cal) -> None:
    body = (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop>"
        '<C:filter><C:comp-filter name="VEVENT"/></C:filter></C:calendar-query>'
    )
    status, _, data = await cal.request("REPORT", EVENTS, body, Depth="1")
    assert status == 403
    assert error_condition(data) == [f"{C}valid-filter"]


async def test_query_with_a_bad_time_is_403_valid_filter(cal: Cal) -> None:
    """RFC 4791 §9.9: a time-range is UTC date-times; anything else is an invalid filter."""
    flt = '<C:comp-filter name="VEVENT"><C:time-range start="tomorrow"/></C:comp-filter>'
    status, _, data = await cal.request("REPORT", EVENTS, query_body(flt), Depth="1")
    assert status == 403
    assert error_condition(data) == [f"{C}valid-filter"]


# -- with the caldav library ---------------------------------------------------------------------


async def test_caldav_library_events_todos_and_search(cal: Cal) -> None:
    await fill(cal)

    def run() -> dict[str, object]:
        with caldav.DAVClient(url=cal.url) as client:
            principal = client.principal()
            events = principal.calendar(cal_id="calendar")
            tasks = principal.calendar(cal_id="tasks")
            found: dict[str, object] = {}
            found["events"] = sorted(str(e.icalendar_component["UID"]) for e in events.events())
            found["todos"] = sorted(
                str(t.icalendar_component["UID"]) for t in tasks.todos(include_completed=True)
            )
            found["open"] = sorted(str(t.icalendar_component["UID"]) for t in tasks.todos())
            january = events.search(
                start=datetime(2026, 1, 1, tzinfo=UTC),
                end=datetime(2026, 2, 1, tzinfo=UTC),
                event=True,
            )
            found["january"] = [str(e.icalendar_component["UID"]) for e in january]
            expanded = events.search(
                start=datetime(2026, 1, 1, tzinfo=UTC),
                end=datetime(2026, 2, 1, tzinfo=UTC),
                event=True,
                expand=True,
            )
            found["instances"] = sorted(
                (e.icalendar_component["DTSTART"].dt, str(e.icalendar_component["SUMMARY"]))
                for e in expanded
            )
            # The library expands on its side unless told to ask the server (<C:expand>).
            by_server = events.search(
                start=datetime(2026, 1, 1, tzinfo=UTC),
                end=datetime(2026, 2, 1, tzinfo=UTC),
                event=True,
                expand=True,
                server_expand=True,
            )
            found["server instances"] = sorted(
                (e.icalendar_component["DTSTART"].dt, str(e.icalendar_component["SUMMARY"]))
                for e in by_server
            )
            return found

    found = await asyncio.to_thread(run)
    assert found["events"] == ["early", "late", "weekly@example.com"]
    assert found["todos"] == ["t1", "t2"]
    assert found["open"] == ["t1"]
    assert found["january"] == ["weekly@example.com"]
    assert found["instances"] == [
        (datetime(2026, 1, 5, 10, tzinfo=UTC), "Weekly"),
        (datetime(2026, 1, 12, 10, tzinfo=UTC), "Weekly"),
        (datetime(2026, 1, 26, 14, tzinfo=UTC), "Weekly (moved)"),
    ]
    assert found["server instances"] == found["instances"]


# -- other reports -------------------------------------------------------------------------------


async def test_expand_property_answers_an_empty_multistatus(cal: Cal) -> None:
    """InfCloud sends it unasked and dies on an error (CLIENTS 22): off the principals
    (where CardDAV expands it, tests/carddav/test_carddav_discovery.py), the answer is an
    empty 207; with contacts off, on the principals too."""
    body = (
        f'{HEAD}<D:expand-property xmlns:D="DAV:"><D:property name="current-user-principal">'
        '<D:property name="displayname"/></D:property></D:expand-property>'
    )
    ms = await cal.report(EVENTS, body, depth="0")
    assert ms.responses == []


async def test_expand_property_without_contacts_answers_an_empty_multistatus(
    make_cal: MakeCal,
) -> None:
    cal = await make_cal(contacts=False)
    body = (
        f'{HEAD}<D:expand-property xmlns:D="DAV:"><D:property name="current-user-principal">'
        '<D:property name="displayname"/></D:property></D:expand-property>'
    )
    for path in ("/caldav/principals/user/", EVENTS):
        ms = await cal.report(path, body, depth="0")
        assert ms.responses == []


async def test_an_unknown_report_is_403_supported_report(cal: Cal) -> None:
    body = f'{HEAD}<Z:whatever xmlns:Z="urn:z"/>'
    status, _, data = await cal.request("REPORT", EVENTS, body, Depth="0")
    assert status == 403
    assert error_condition(data) == [f"{D}supported-report"]
    assert (await cal.request("REPORT", EVENTS, None, Depth="0"))[0] == 400
    assert (await cal.request("REPORT", EVENTS, "<not xml", Depth="0"))[0] == 400
