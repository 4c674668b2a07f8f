"""calendar-query filters (RFC 4791 §9.7) through the server: comp-filter, prop-filter,
param-filter, is-not-defined, text-match (both collations, negate-condition), time ranges
on VEVENT, VTODO (every row of §9.9's table, by the index and by the exact test),
VJOURNAL, VFREEBUSY and VALARM; free-busy-query, limit-recurrence-set, and the caldav
library's search with and without expand."""

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
    TASKS,
    C,
    Cal,
    error_condition,
    event,
    ical,
    todo,
    vevent,
)

from davserver.caldav.store.items import CalendarItems, Item
from davserver.caldav.timerange import parse_range
from davserver.ical import filters
from davserver.ical.summary import summarize

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures


def query(filter_xml: str, data: str = "") -> str:
    return (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/>{data}</D:prop>"
        f'<C:filter><C:comp-filter name="VCALENDAR">{filter_xml}</C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )


async def names(cal: Cal, collection: str, filter_xml: str) -> set[str]:
    ms = await cal.report(collection, query(filter_xml))
    return {r.href.rpartition("/")[2] for r in ms.responses}


def comp(name: str, inner: str = "") -> str:
    return f'<C:comp-filter name="{name}">{inner}</C:comp-filter>'


def tr(start: str, end: str) -> str:
    return f'<C:time-range start="{start}" end="{end}"/>'


MEETING = ical(
    *vevent(
        "m1", "Team Meeting", "20260110T090000Z", "20260110T100000Z",
        "LOCATION:Room 1", "ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Ann:mailto:ann@example.com",
        "CATEGORIES:WORK", "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Soon",
        "TRIGGER:-PT15M", "END:VALARM",
    )
)  # fmt: skip
LUNCH = ical(
    *vevent(
        "l1", "lunch with Bob", "20260110T120000Z", "20260110T130000Z",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com", "DESCRIPTION:Café",
    )
)  # fmt: skip
ALLDAY = ical(
    "BEGIN:VEVENT", "UID:a1", "DTSTAMP:20260101T000000Z", "DTSTART;VALUE=DATE:20260112",
    "SUMMARY:Holiday", "END:VEVENT",
)  # fmt: skip


async def fill(cal: Cal) -> None:
    for name, data in (("meeting.ics", MEETING), ("lunch.ics", LUNCH), ("allday.ics", ALLDAY)):
        await cal.put_ok(f"{EVENTS}{name}", data)


# -- comp-filter, prop-filter, param-filter, is-not-defined, text-match ---------------------------


async def test_comp_filter_alone_and_is_not_defined(cal: Cal) -> None:
    await fill(cal)
    assert await names(cal, EVENTS, comp("VEVENT")) == {"meeting.ics", "lunch.ics", "allday.ics"}
    assert await names(cal, EVENTS, comp("VTODO")) == set()
    assert await names(cal, EVENTS, comp("VEVENT", comp("VALARM"))) == {"meeting.ics"}
    no_alarm = comp("VEVENT", comp("VALARM", "<C:is-not-defined/>"))
    assert await names(cal, EVENTS, no_alarm) == {"lunch.ics", "allday.ics"}
    assert await names(cal, EVENTS, comp("VTODO", "<C:is-not-defined/>")) == {
        "meeting.ics", "lunch.ics", "allday.ics",
    }  # fmt: skip


async def test_prop_filter_defined_and_not(cal: Cal) -> None:
    await fill(cal)
    has = comp("VEVENT", '<C:prop-filter name="LOCATION"/>')
    assert await names(cal, EVENTS, has) == {"meeting.ics"}
    lacks = comp("VEVENT", '<C:prop-filter name="DESCRIPTION"><C:is-not-defined/></C:prop-filter>')
    assert await names(cal, EVENTS, lacks) == {"meeting.ics", "allday.ics"}


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("<C:text-match>team meeting</C:text-match>", {"meeting.ics"}),
        ('<C:text-match collation="i;ascii-casemap">LUNCH</C:text-match>', {"lunch.ics"}),
        ('<C:text-match collation="i;octet">team meeting</C:text-match>', set()),
        ('<C:text-match collation="i;octet">Team</C:text-match>', {"meeting.ics"}),
        (
            '<C:text-match negate-condition="yes">lunch</C:text-match>',
            {"meeting.ics", "allday.ics"},
        ),
        (
            '<C:text-match collation="i;octet" negate-condition="yes">lunch</C:text-match>',
            {"meeting.ics", "allday.ics"},
        ),
    ],
)
async def test_text_match_collations_and_negation(cal: Cal, match: str, expected: set[str]) -> None:
    await fill(cal)
    flt = comp("VEVENT", f'<C:prop-filter name="SUMMARY">{match}</C:prop-filter>')
    assert await names(cal, EVENTS, flt) == expected


async def test_ascii_casemap_folds_only_ascii_letters(cal: Cal) -> None:
    await fill(cal)
    flt = comp(
        "VEVENT",
        '<C:prop-filter name="DESCRIPTION"><C:text-match>CAFÉ</C:text-match></C:prop-filter>',
    )
    assert await names(cal, EVENTS, flt) == set()  # É does not fold to é under i;ascii-casemap
    flt = comp(
        "VEVENT",
        '<C:prop-filter name="DESCRIPTION"><C:text-match>CAFé</C:text-match></C:prop-filter>',
    )
    assert await names(cal, EVENTS, flt) == {"lunch.ics"}


async def test_an_unknown_collation_is_403(cal: Cal) -> None:
    flt = comp(
        "VEVENT",
        '<C:prop-filter name="SUMMARY"><C:text-match collation="i;unicode-casemap">x</C:text-match></C:prop-filter>',
    )
    status, _, data = await cal.request("REPORT", EVENTS, query(flt), Depth="1")
    assert status == 403
    assert error_condition(data) == [f"{C}supported-collation"]


async def test_param_filter(cal: Cal) -> None:
    await fill(cal)

    def attendee(param: str) -> str:
        return comp("VEVENT", f'<C:prop-filter name="ATTENDEE">{param}</C:prop-filter>')

    pending = (
        '<C:param-filter name="PARTSTAT"><C:text-match>needs-action</C:text-match></C:param-filter>'
    )
    assert await names(cal, EVENTS, attendee(pending)) == {"meeting.ics"}
    named = '<C:param-filter name="CN"/>'
    assert await names(cal, EVENTS, attendee(named)) == {"meeting.ics"}
    unnamed = '<C:param-filter name="CN"><C:is-not-defined/></C:param-filter>'
    assert await names(cal, EVENTS, attendee(unnamed)) == {"lunch.ics"}


async def test_prop_filter_time_range(cal: Cal) -> None:
    await cal.put_ok(f"{TASKS}done.ics", todo("done", "Done", "COMPLETED:20260105T120000Z"))
    await cal.put_ok(f"{TASKS}open.ics", todo("open", "Open"))
    flt = comp(
        "VTODO",
        f'<C:prop-filter name="COMPLETED">{tr("20260105T000000Z", "20260106T000000Z")}</C:prop-filter>',
    )
    assert await names(cal, TASKS, flt) == {"done.ics"}
    flt = comp(
        "VTODO",
        f'<C:prop-filter name="COMPLETED">{tr("20260106T000000Z", "20260107T000000Z")}</C:prop-filter>',
    )
    assert await names(cal, TASKS, flt) == set()


async def test_time_range_with_text_match_tests_the_instance_in_the_range(cal: Cal) -> None:
    """A moved override has its own SUMMARY: the range and the text must meet in one instance."""
    weekly = ical(
        *vevent("w", "Weekly", "20260105T100000Z", "20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=4"),
        *vevent("w", "Special", "20260112T150000Z", "20260112T160000Z", "RECURRENCE-ID:20260112T100000Z"),
    )  # fmt: skip
    await cal.put_ok(f"{EVENTS}w.ics", weekly)

    def flt(word: str, start: str, end: str) -> str:
        text = f'<C:prop-filter name="SUMMARY"><C:text-match>{word}</C:text-match></C:prop-filter>'
        return comp("VEVENT", tr(start, end) + text)

    assert await names(cal, EVENTS, flt("special", "20260112T000000Z", "20260113T000000Z")) == {
        "w.ics"
    }
    assert await names(cal, EVENTS, flt("special", "20260119T000000Z", "20260120T000000Z")) == set()
    assert await names(cal, EVENTS, flt("weekly", "20260119T000000Z", "20260120T000000Z")) == {
        "w.ics"
    }
    assert await names(cal, EVENTS, flt("weekly", "20260112T000000Z", "20260113T000000Z")) == set()


# -- time ranges on each component ---------------------------------------------------------------


async def test_vevent_time_range_all_day_and_instant(cal: Cal) -> None:
    await fill(cal)
    await cal.put_ok(
        f"{EVENTS}instant.ics",
        ical(
            "BEGIN:VEVENT",
            "UID:i1",
            "DTSTAMP:20260101T000000Z",
            "DTSTART:20260110T180000Z",
            "END:VEVENT",
        ),
    )
    assert await names(cal, EVENTS, comp("VEVENT", tr("20260112T000000Z", "20260112T010000Z"))) == {
        "allday.ics"
    }
    assert (
        await names(cal, EVENTS, comp("VEVENT", tr("20260111T230000Z", "20260112T000000Z")))
        == set()
    )
    assert await names(cal, EVENTS, comp("VEVENT", tr("20260110T180000Z", "20260110T180001Z"))) == {
        "instant.ics"
    }
    assert (
        await names(cal, EVENTS, comp("VEVENT", tr("20260110T170000Z", "20260110T180000Z")))
        == set()
    )
    assert await names(cal, EVENTS, comp("VEVENT", tr("20260110T095959Z", "20260110T120000Z"))) == {
        "meeting.ics"
    }


# Each row of RFC 4791 §9.9's VTODO table: the properties, then (range, expected) pairs.
VTODO_ROWS = [
    (  # DTSTART and DURATION: start <= DTSTART+DURATION and (end > DTSTART or end >= DTSTART+DURATION)
        ["DTSTART:20260110T100000Z", "DURATION:PT1H"],
        [("20260110T090000Z", "20260110T100000Z", False), ("20260110T103000Z", "20260110T120000Z", True),
         ("20260110T110000Z", "20260110T120000Z", True), ("20260110T110001Z", "20260110T120000Z", False)],
    ),
    (  # DTSTART and DUE: (start < DUE or start <= DTSTART) and (end > DTSTART or end >= DUE)
        ["DTSTART:20260110T100000Z", "DUE:20260110T120000Z"],
        [("20260110T120000Z", "20260110T130000Z", False), ("20260110T110000Z", "20260110T113000Z", True),
         ("20260110T080000Z", "20260110T100000Z", False), ("20260110T080000Z", "20260110T100001Z", True)],
    ),
    (  # DTSTART only: start <= DTSTART and end > DTSTART
        ["DTSTART:20260110T100000Z"],
        [("20260110T100000Z", "20260110T110000Z", True), ("20260110T090000Z", "20260110T100000Z", False),
         ("20260110T100001Z", "20260110T110000Z", False)],
    ),
    (  # DUE only: start < DUE and end >= DUE
        ["DUE:20260110T120000Z"],
        [("20260110T110000Z", "20260110T120000Z", True), ("20260110T120000Z", "20260110T130000Z", False),
         ("20260110T100000Z", "20260110T115959Z", False)],
    ),
    (  # COMPLETED and CREATED: (start <= CREATED or start <= COMPLETED) and (end >= CREATED or end >= COMPLETED)
        ["CREATED:20260110T080000Z", "COMPLETED:20260110T140000Z"],
        [("20260110T140000Z", "20260110T150000Z", True), ("20260110T140001Z", "20260110T150000Z", False),
         ("20260110T070000Z", "20260110T080000Z", True), ("20260110T060000Z", "20260110T075959Z", False)],
    ),
    (  # COMPLETED only: start <= COMPLETED and end >= COMPLETED
        ["COMPLETED:20260110T140000Z"],
        [("20260110T130000Z", "20260110T140000Z", True), ("20260110T140000Z", "20260110T150000Z", True),
         ("20260110T140001Z", "20260110T150000Z", False), ("20260110T120000Z", "20260110T135959Z", False)],
    ),
    (  # CREATED only: end > CREATED
        ["CREATED:20260110T080000Z"],
        [("20260110T070000Z", "20260110T080000Z", False), ("20260110T070000Z", "20260110T080001Z", True),
         ("20300101T000000Z", "20300102T000000Z", True)],
    ),
    (  # none of them: always
        [],
        [("19991231T000000Z", "20000101T000000Z", True), ("20260110T070000Z", "20260110T080000Z", True)],
    ),
]  # fmt: skip


def _todo_object(props: list[str]) -> bytes:
    return ical("BEGIN:VTODO", "UID:t", "DTSTAMP:20260101T000000Z", *props, "END:VTODO")


@pytest.mark.parametrize(("props", "cases"), VTODO_ROWS)
def test_vtodo_table_row_by_the_index_and_by_the_exact_test(props: list[str], cases: list) -> None:
    data = _todo_object(props)
    items = CalendarItems()
    items.put("t.ics", Item("e", summarize(data)))
    for start, end, expected in cases:
        rng = parse_range(start, end)
        flt = filters.CompFilter("VCALENDAR", comps=(filters.CompFilter("VTODO", time_range=rng),))
        certain, unsure = items.overlapping(rng.lo, rng.hi)
        assert not unsure
        assert ("t.ics" in certain) == expected, (props, start, end)
        assert filters.matches(icalendar.Calendar.from_ical(data), flt) == expected, (
            props,
            start,
            end,
        )


async def test_vtodo_table_through_the_server(cal: Cal) -> None:
    for i, (props, _) in enumerate(VTODO_ROWS):
        await cal.put_ok(
            f"{TASKS}row{i}.ics", _todo_object(props).replace(b"UID:t", f"UID:t{i}".encode())
        )
    for i, (_, cases) in enumerate(VTODO_ROWS):
        for start, end, expected in cases:
            found = f"row{i}.ics" in await names(cal, TASKS, comp("VTODO", tr(start, end)))
            assert found == expected, (i, start, end)


async def test_recurring_todo(cal: Cal) -> None:
    data = _todo_object(
        ["DTSTART:20260105T090000Z", "DUE:20260105T170000Z", "RRULE:FREQ=WEEKLY;COUNT=3"]
    )
    await cal.put_ok(f"{TASKS}weekly.ics", data)
    assert await names(cal, TASKS, comp("VTODO", tr("20260119T100000Z", "20260119T110000Z"))) == {
        "weekly.ics"
    }
    assert (
        await names(cal, TASKS, comp("VTODO", tr("20260126T100000Z", "20260126T110000Z"))) == set()
    )


async def test_vjournal_time_range(cal: Cal) -> None:
    await cal.request(
        "MKCALENDAR", f"{cal.client.make_url('/').path}caldav/calendars/user/journal/",
        f'{HEAD}<C:mkcalendar {NSDECL}><D:set><D:prop><C:supported-calendar-component-set>'
        '<C:comp name="VJOURNAL"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>',
    )  # fmt: skip
    journal = "/caldav/calendars/user/journal/"

    def entry(uid: str, start: str) -> bytes:
        return ical(
            "BEGIN:VJOURNAL", f"UID:{uid}", "DTSTAMP:20260101T000000Z", start, "END:VJOURNAL"
        )

    await cal.put_ok(f"{journal}dt.ics", entry("j1", "DTSTART:20260110T100000Z"))
    await cal.put_ok(f"{journal}date.ics", entry("j2", "DTSTART;VALUE=DATE:20260111"))
    await cal.put_ok(f"{journal}none.ics", entry("j3", "SUMMARY:no date"))
    assert await names(
        cal, journal, comp("VJOURNAL", tr("20260110T100000Z", "20260110T100001Z"))
    ) == {"dt.ics"}
    assert (
        await names(cal, journal, comp("VJOURNAL", tr("20260110T090000Z", "20260110T100000Z")))
        == set()
    )
    assert await names(
        cal, journal, comp("VJOURNAL", tr("20260111T230000Z", "20260112T000000Z"))
    ) == {"date.ics"}
    assert await names(cal, journal, comp("VJOURNAL")) == {"dt.ics", "date.ics", "none.ics"}


async def test_vfreebusy_time_range_of_objects_found_on_disk(cal: Cal) -> None:
    """Calendars do not accept VFREEBUSY by PUT; files put there by other tools are queried."""
    await cal.put_ok(f"{EVENTS}seed.ics", event("seed"))
    folder = cal.folder()
    (folder / "fb1.ics").write_bytes(
        ical("BEGIN:VFREEBUSY", "UID:f1", "DTSTAMP:20260101T000000Z",
             "DTSTART:20260110T080000Z", "DTEND:20260110T180000Z", "END:VFREEBUSY")
    )  # fmt: skip
    (folder / "fb2.ics").write_bytes(
        ical("BEGIN:VFREEBUSY", "UID:f2", "DTSTAMP:20260101T000000Z",
             "FREEBUSY:20260111T100000Z/20260111T110000Z,20260111T140000Z/PT1H", "END:VFREEBUSY")
    )  # fmt: skip
    assert await names(
        cal, EVENTS, comp("VFREEBUSY", tr("20260110T180000Z", "20260110T190000Z"))
    ) == {"fb1.ics"}
    assert (
        await names(cal, EVENTS, comp("VFREEBUSY", tr("20260110T070000Z", "20260110T080000Z")))
        == set()
    )
    assert await names(
        cal, EVENTS, comp("VFREEBUSY", tr("20260111T143000Z", "20260111T143100Z"))
    ) == {"fb2.ics"}
    assert (
        await names(cal, EVENTS, comp("VFREEBUSY", tr("20260111T120000Z", "20260111T130000Z")))
        == set()
    )


async def test_valarm_time_range(cal: Cal) -> None:
    await fill(cal)
    weekly = ical(
        *vevent("wa", "Weekly", "20260105T100000Z", "20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=3",
                "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:x", "TRIGGER;RELATED=END:PT5M", "END:VALARM"),
    )  # fmt: skip
    await cal.put_ok(f"{EVENTS}weekly.ics", weekly)

    def alarm(start: str, end: str) -> str:
        return comp("VEVENT", comp("VALARM", tr(start, end)))

    # The meeting at 09:00 rings at 08:45.
    assert await names(cal, EVENTS, alarm("20260110T084000Z", "20260110T085000Z")) == {
        "meeting.ics"
    }
    assert await names(cal, EVENTS, alarm("20260110T090000Z", "20260110T100000Z")) == set()
    # The third weekly instance ends 19 Jan 11:00 and rings five minutes later.
    assert await names(cal, EVENTS, alarm("20260119T110400Z", "20260119T110600Z")) == {"weekly.ics"}
    assert await names(cal, EVENTS, alarm("20260126T110400Z", "20260126T110600Z")) == set()
    # With a range on the event too, the alarm is that instance's.
    both = comp(
        "VEVENT",
        tr("20260119T000000Z", "20260120T000000Z")
        + comp("VALARM", tr("20260105T110000Z", "20260105T111000Z")),
    )
    assert await names(cal, EVENTS, both) == set()


# -- free-busy-query, limit-recurrence-set -------------------------------------------------------


async def test_free_busy_query_merges_opaque_busy_time(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260110T090000Z", end="20260110T100000Z"))
    await cal.put_ok(f"{EVENTS}b.ics", event("b", start="20260110T093000Z", end="20260110T110000Z"))
    await cal.put_ok(
        f"{EVENTS}free.ics",
        event("f", "Free", "TRANSP:TRANSPARENT", start="20260110T120000Z", end="20260110T130000Z"),
    )
    await cal.put_ok(
        f"{EVENTS}gone.ics",
        event("g", "Gone", "STATUS:CANCELLED", start="20260110T140000Z", end="20260110T150000Z"),
    )
    await cal.put_ok(
        f"{EVENTS}maybe.ics",
        event("m", "Maybe", "STATUS:TENTATIVE", start="20260110T160000Z", end="20260110T170000Z"),
    )
    await cal.put_ok(
        f"{EVENTS}daily.ics",
        event(
            "d",
            "Daily",
            "RRULE:FREQ=DAILY;COUNT=5",
            start="20260108T180000Z",
            end="20260108T190000Z",
        ),
    )
    body = f"{HEAD}<C:free-busy-query {NSDECL}>{tr('20260110T000000Z', '20260111T000000Z')}</C:free-busy-query>"
    status, headers, data = await cal.request("REPORT", EVENTS, body, Depth="1")
    assert status == 200, data
    assert headers["Content-Type"].startswith("text/calendar")
    [fb] = icalendar.Calendar.from_ical(data).walk("VFREEBUSY")
    assert fb["DTSTART"].dt == datetime(2026, 1, 10, tzinfo=UTC)
    periods: dict[str, list] = {}
    for prop in (
        fb.get("FREEBUSY") if isinstance(fb.get("FREEBUSY"), list) else [fb.get("FREEBUSY")]
    ):
        kind = str(prop.params.get("FBTYPE"))
        for start, end in (p for p in prop.dts) if hasattr(prop, "dts") else [prop.dt]:
            periods.setdefault(kind, []).append((start.hour, end.hour))
    assert periods == {"BUSY": [(9, 11), (18, 19)], "BUSY-TENTATIVE": [(16, 17)]}


async def test_limit_recurrence_set_keeps_the_master_and_the_overrides_in_range(cal: Cal) -> None:
    data = ical(
        *vevent("r", "Weekly", "20260105T100000Z", "20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=6"),
        *vevent("r", "Moved in", "20260112T150000Z", "20260112T160000Z", "RECURRENCE-ID:20260112T100000Z"),
        *vevent("r", "Moved later", "20260202T150000Z", "20260202T160000Z", "RECURRENCE-ID:20260202T100000Z"),
    )  # fmt: skip
    await cal.put_ok(f"{EVENTS}r.ics", data)
    limit = '<C:calendar-data><C:limit-recurrence-set start="20260110T000000Z" end="20260120T000000Z"/></C:calendar-data>'
    ms = await cal.report(EVENTS, query(comp("VEVENT"), limit))
    [r] = ms.responses
    got = icalendar.Calendar.from_ical(r.value(f"{C}calendar-data"))
    assert sorted(str(c["SUMMARY"]) for c in got.walk("VEVENT")) == ["Moved in", "Weekly"]


async def test_expand_of_an_event_in_a_time_zone(cal: Cal) -> None:
    berlin = (
        "BEGIN:VTIMEZONE", "TZID:Europe/Berlin", "BEGIN:STANDARD", "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:19700329T020000", "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "END:VTIMEZONE",
    )  # fmt: skip
    single = ical(*berlin, "BEGIN:VEVENT", "UID:z1", "DTSTAMP:20260101T000000Z",
                  "DTSTART;TZID=Europe/Berlin:20260110T100000", "DURATION:PT1H", "SUMMARY:Once", "END:VEVENT")  # fmt: skip
    daily = ical(*berlin, "BEGIN:VEVENT", "UID:z2", "DTSTAMP:20260101T000000Z",
                 "DTSTART;TZID=Europe/Berlin:20260327T100000", "DTEND;TZID=Europe/Berlin:20260327T110000",
                 "RRULE:FREQ=DAILY;COUNT=4", "SUMMARY:Daily", "END:VEVENT")  # fmt: skip
    await cal.put_ok(f"{EVENTS}z1.ics", single)
    await cal.put_ok(f"{EVENTS}z2.ics", daily)
    rng = 'start="20260101T000000Z" end="20260401T000000Z"'
    ms = await cal.report(
        EVENTS,
        query(
            comp("VEVENT", f"<C:time-range {rng}/>"),
            f"<C:calendar-data><C:expand {rng}/></C:calendar-data>",
        ),
    )
    starts = {}
    for r in ms.responses:
        text = r.value(f"{C}calendar-data")
        assert "VTIMEZONE" not in text and "RRULE" not in text and "TZID" not in text
        for c in icalendar.Calendar.from_ical(text).walk("VEVENT"):
            starts.setdefault(str(c["SUMMARY"]), []).append(c["DTSTART"].dt)
    assert starts["Once"] == [datetime(2026, 1, 10, 9, tzinfo=UTC)]
    # Across the switch to summer time on 29 March: 10:00 local is 09:00, then 08:00 UTC.
    assert sorted(starts["Daily"]) == [
        datetime(2026, 3, 27, 9, tzinfo=UTC), datetime(2026, 3, 28, 9, tzinfo=UTC),
        datetime(2026, 3, 29, 8, tzinfo=UTC), datetime(2026, 3, 30, 8, tzinfo=UTC),
    ]  # fmt: skip


# -- the caldav library ----------------------------------------------------------------------------


async def test_caldav_library_search_with_and_without_expand(cal: Cal) -> None:
    await fill(cal)
    await cal.put_ok(
        f"{EVENTS}daily.ics",
        event(
            "d1",
            "Daily",
            "RRULE:FREQ=DAILY;COUNT=4",
            "EXDATE:20260111T070000Z",
            start="20260109T070000Z",
            end="20260109T073000Z",
        ),
    )

    def run() -> tuple[list[str], list[tuple], list[tuple], list[str]]:
        with caldav.DAVClient(url=cal.url) as client:
            events = client.principal().calendar(cal_id="calendar")
            start, end = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 13, tzinfo=UTC)
            plain = sorted(
                str(e.icalendar_component["UID"])
                for e in events.search(start=start, end=end, event=True)
            )
            expanded = sorted(
                (str(e.icalendar_component["UID"]), e.icalendar_component["DTSTART"].dt)
                for e in events.search(
                    start=start, end=end, event=True, expand=True, server_expand=True
                )
            )
            local = sorted(
                (str(e.icalendar_component["UID"]), e.icalendar_component["DTSTART"].dt)
                for e in events.search(start=start, end=end, event=True, expand=True)
            )
            text = sorted(
                str(e.icalendar_component["UID"])
                for e in events.search(summary="lunch", event=True)
            )
            return plain, expanded, local, text

    plain, expanded, local, text = await asyncio.to_thread(run)
    assert plain == ["a1", "d1", "l1", "m1"]
    assert [x for x in expanded if x[0] == "d1"] == [
        ("d1", datetime(2026, 1, 10, 7, tzinfo=UTC)), ("d1", datetime(2026, 1, 12, 7, tzinfo=UTC)),
    ]  # fmt: skip
    assert len(expanded) == 5
    assert expanded == local
    assert text == ["l1"]
