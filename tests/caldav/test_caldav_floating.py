"""Time as clients mean it (RFC 4791 §9.9, RFC 5545 §3.3.5, §3.6.5): floating date-times
and dates happen in the query's ``timezone``, else the calendar's ``calendar-timezone``,
else UTC, for time ranges, expand and free-busy; the index keeps them apart in wall time
and answers them in any zone; an object's own VTIMEZONE wins over the zone database where
the two differ; a new calendar has no ``calendar-timezone`` until one is set."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from caldav_data import (
    EVENTS,
    HEAD,
    HOME,
    NSDECL,
    C,
    Cal,
    ical,
    parse_multistatus,
    vevent,
)

from davserver.caldav.store.index import CalendarIndex
from davserver.caldav.store.items import CalendarItems, Item
from davserver.ical.spans import FLOATING
from davserver.ical.summary import summarize
from davserver.ical.zones import parse, zone_of_text

pytest_plugins = ("caldav_data.fixtures",)


def vtimezone(tzid: str, *observances: tuple[str, str, str, str, str]) -> str:
    """A VTIMEZONE: (kind, DTSTART, from, to, RRULE or "") per observance."""
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}"]
    for kind, start, before, after, rule in observances:
        lines += [f"BEGIN:{kind}", f"DTSTART:{start}", f"TZOFFSETFROM:{before}",
                  f"TZOFFSETTO:{after}"]  # fmt: skip
        lines += [f"RRULE:{rule}"] if rule else []
        lines.append(f"END:{kind}")
    return "\r\n".join([*lines, "END:VTIMEZONE"])


TOKYO = vtimezone("Asia/Tokyo", ("STANDARD", "19700101T000000", "+0900", "+0900", ""))
NEW_YORK = vtimezone(
    "America/New_York",
    ("DAYLIGHT", "20070311T020000", "-0500", "-0400", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU"),
    ("STANDARD", "20071104T020000", "-0400", "-0500", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU"),
)
BERLIN = vtimezone(
    "Europe/Berlin",
    ("DAYLIGHT", "19810329T020000", "+0100", "+0200", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU"),
    ("STANDARD", "19961027T030000", "+0200", "+0100", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"),
)
NOT_BERLIN = vtimezone("Europe/Berlin", ("STANDARD", "19700101T000000", "+0500", "+0500", ""))
"""A deliberately different definition under the IANA name."""


def as_calendar(zone: str) -> str:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{zone}\r\nEND:VCALENDAR\r\n"


def floating(uid: str, start: str, end: str, *extra: str) -> bytes:
    return ical(*vevent(uid, "Floating", start, end, *extra))


def query(start: str, end: str, zone: str = "", data: str = "", extra: str = "") -> str:
    tz = f"<C:timezone>{as_calendar(zone)}</C:timezone>" if zone else ""
    return (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/>{data}</D:prop><C:filter>"
        f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/>{extra}</C:comp-filter></C:comp-filter>'
        f"</C:filter>{tz}</C:calendar-query>"
    )


async def hits(cal: Cal, start: str, end: str, zone: str = "", extra: str = "") -> list[str]:
    ms = await cal.report(EVENTS, query(start, end, zone, extra=extra))
    return sorted(r.href.rpartition("/")[2] for r in ms.responses)


async def set_zone(cal: Cal, zone: str, path: str = EVENTS) -> None:
    body = (
        f"{HEAD}<D:propertyupdate {NSDECL}><D:set><D:prop><C:calendar-timezone>"
        f"{as_calendar(zone)}</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"
    )
    status, _, data = await cal.request("PROPPATCH", path, body)
    assert status == 207
    assert {p.status for p in parse_multistatus(data).responses[0].props.values()} == {200}


def starts(text: str) -> list[str]:
    """The DTSTART lines of an expanded answer, in order."""
    return sorted(
        line for line in text.replace("\r\n", "\n").split("\n") if line.startswith("DTSTART")
    )


async def test_a_new_calendar_has_no_calendar_timezone_until_one_is_set(cal: Cal) -> None:
    name = f"{C}calendar-timezone"
    assert (await cal.prop(EVENTS, name)).status == 404
    status, _, _ = await cal.request("MKCALENDAR", f"{HOME}new/")
    assert status == 201
    assert (await cal.prop(f"{HOME}new/", name)).status == 404
    await set_zone(cal, TOKYO, f"{HOME}new/")
    prop = await cal.prop(f"{HOME}new/", name)
    assert prop.status == 200
    assert "TZID:Asia/Tokyo" in prop.text


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_floating_times_happen_in_the_calendars_zone_or_the_querys(
    make_cal: object, backend: str
) -> None:
    cal: Cal = await make_cal(backend=backend)  # type: ignore[operator]
    await cal.put_ok(f"{EVENTS}f.ics", floating("f@x", "20260105T100000", "20260105T110000"))
    day = ical(*vevent("d@x", "All day", "20260107", "20260108"))
    await cal.put_ok(f"{EVENTS}d.ics", day.replace(b"DTSTART:", b"DTSTART;VALUE=DATE:")
                     .replace(b"DTEND:", b"DTEND;VALUE=DATE:"))  # fmt: skip
    tokyo_10 = ("20260105T003000Z", "20260105T013000Z")
    utc_10 = ("20260105T093000Z", "20260105T103000Z")
    # No calendar-timezone: UTC, as before.
    assert await hits(cal, *utc_10) == ["f.ics"]
    assert await hits(cal, *tokyo_10) == []
    assert await hits(cal, "20260107T160000Z", "20260107T170000Z") == ["d.ics"]
    await set_zone(cal, TOKYO)
    assert await hits(cal, *tokyo_10) == ["f.ics"]
    assert await hits(cal, *utc_10) == []
    # The all-day event is 7 January in Tokyo: 6 Jan 15:00Z to 7 Jan 15:00Z.
    assert await hits(cal, "20260106T150000Z", "20260106T153000Z") == ["d.ics"]
    assert await hits(cal, "20260107T160000Z", "20260107T170000Z") == []
    # A filter the index cannot answer alone (the objects are parsed) says the same.
    text = '<C:prop-filter name="SUMMARY"><C:text-match>o</C:text-match></C:prop-filter>'
    assert await hits(cal, *tokyo_10, extra=text) == ["f.ics"]
    assert await hits(cal, *utc_10, extra=text) == []
    # The query's own zone comes first: 10:00 in New York is 15:00Z.
    assert await hits(cal, "20260105T143000Z", "20260105T153000Z", NEW_YORK) == ["f.ics"]
    assert await hits(cal, *tokyo_10, zone=NEW_YORK) == []
    # Another calendar-timezone moves the answers at once (nothing is indexed again).
    await set_zone(cal, NEW_YORK)
    assert await hits(cal, "20260105T143000Z", "20260105T153000Z") == ["f.ics"]


async def test_recurring_floating_events_follow_daylight_saving_in_expand(cal: Cal) -> None:
    await set_zone(cal, BERLIN)
    daily = floating("r@x", "20260327T100000", "20260327T110000", "RRULE:FREQ=DAILY;COUNT=4")
    await cal.put_ok(f"{EVENTS}r.ics", daily)
    # 10:00 in Berlin: 09:00Z before the switch on 29 March, 08:00Z from then on.
    assert await hits(cal, "20260328T090000Z", "20260328T093000Z") == ["r.ics"]
    assert await hits(cal, "20260329T090000Z", "20260329T093000Z") == []
    assert await hits(cal, "20260329T080000Z", "20260329T083000Z") == ["r.ics"]
    want = [f"DTSTART:{d}Z" for d in ("20260327T090000", "20260328T090000",
                                       "20260329T080000", "20260330T080000")]  # fmt: skip
    rng = 'start="20260301T000000Z" end="20260401T000000Z"'
    for data in (
        f"<C:calendar-data><C:expand {rng}/></C:calendar-data>",  # on the text
        f'<C:calendar-data><C:comp name="VCALENDAR"><C:allprop/><C:comp name="VEVENT">'
        f"<C:allprop/></C:comp></C:comp><C:expand {rng}/></C:calendar-data>",  # parsed
    ):
        ms = await cal.report(EVENTS, query("20260301T000000Z", "20260401T000000Z", data=data))
        assert starts(ms.responses[0].value(f"{C}calendar-data")) == want
    # A multiget has no timezone of its own: the calendar's.
    ms = await cal.multiget(EVENTS, [f"{EVENTS}r.ics"],
                            f"<C:calendar-data><C:expand {rng}/></C:calendar-data>")  # fmt: skip
    assert starts(ms.responses[0].value(f"{C}calendar-data")) == want


async def test_a_time_in_a_gap_has_the_offset_before_the_gap(cal: Cal) -> None:
    """RFC 5545 §3.3.5: 02:30 on the day Berlin skips from 02:00 to 03:00 is 02:30 +01:00
    (01:30Z, the moment of 03:30 +02:00)."""
    await set_zone(cal, BERLIN)
    await cal.put_ok(f"{EVENTS}g.ics", floating("g@x", "20260329T023000", "20260329T043000"))
    assert await hits(cal, "20260329T013000Z", "20260329T014500Z") == ["g.ics"]
    assert await hits(cal, "20260329T003000Z", "20260329T010000Z") == []


async def test_free_busy_takes_floating_times_in_the_calendars_zone(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}f.ics", floating("f@x", "20260105T100000", "20260105T110000"))
    body = (
        f'{HEAD}<C:free-busy-query {NSDECL}><C:time-range start="20260105T000000Z" '
        'end="20260106T000000Z"/></C:free-busy-query>'
    )
    status, _, data = await cal.request("REPORT", EVENTS, body, Depth="1")
    assert status == 200
    assert b"FREEBUSY;FBTYPE=BUSY:20260105T100000Z/20260105T110000Z" in data
    await set_zone(cal, TOKYO)
    status, _, data = await cal.request("REPORT", EVENTS, body, Depth="1")
    assert b"FREEBUSY;FBTYPE=BUSY:20260105T010000Z/20260105T020000Z" in data


async def test_a_calendar_timezone_damaged_on_disk_counts_as_none(cal: Cal) -> None:
    """A property file edited behind the server's back may hold a calendar-timezone that
    is no XML on its own (an entity of the file's DTD): floating times are then UTC."""
    await cal.put_ok(f"{EVENTS}f.ics", floating("f@x", "20260105T100000", "20260105T110000"))
    await set_zone(cal, TOKYO)
    props = cal.folder() / ".davprops" / "self"
    text = props.read_text()
    start = text.index("<C:calendar-timezone")
    start = text.index(">", start) + 1
    end = text.index("</C:calendar-timezone>")
    damaged = '<!DOCTYPE props [<!ENTITY e "x">]>' + text[:start] + "&e;" + text[end:]
    props.write_text(damaged)
    assert await hits(cal, "20260105T093000Z", "20260105T103000Z") == ["f.ics"]
    body = (
        f'{HEAD}<C:free-busy-query {NSDECL}><C:time-range start="20260105T000000Z" '
        'end="20260106T000000Z"/></C:free-busy-query>'
    )
    status, _, data = await cal.request("REPORT", EVENTS, body, Depth="1")
    assert status == 200
    assert b"FREEBUSY;FBTYPE=BUSY:20260105T100000Z/20260105T110000Z" in data
    assert props.read_text() == damaged


def zoned(zone: str, *lines: str) -> bytes:
    return ical(zone, *lines)


async def test_an_objects_own_vtimezone_wins_where_it_differs_from_the_database(
    cal: Cal,
) -> None:
    own = zoned(
        NOT_BERLIN,
        *vevent("z@x", "Zoned", "X", "X", "RRULE:FREQ=DAILY;COUNT=3"),
        *vevent("z@x", "Moved", "X", "X", "RECURRENCE-ID;TZID=Europe/Berlin:20260106T100000"),
    )
    own = own.replace(b"DTSTART:X", b"DTSTART;TZID=Europe/Berlin:20260105T100000", 1)
    own = own.replace(b"DTEND:X", b"DTEND;TZID=Europe/Berlin:20260105T110000", 1)
    own = own.replace(b"DTSTART:X", b"DTSTART;TZID=Europe/Berlin:20260106T120000", 1)
    own = own.replace(b"DTEND:X", b"DTEND;TZID=Europe/Berlin:20260106T130000", 1)
    await cal.put_ok(f"{EVENTS}z.ics", own)
    # 10:00 at +05:00 is 05:00Z (the database's Berlin would say 09:00Z).
    assert await hits(cal, "20260105T043000Z", "20260105T053000Z") == ["z.ics"]
    assert await hits(cal, "20260105T083000Z", "20260105T093000Z") == []
    rng = 'start="20260101T000000Z" end="20260201T000000Z"'
    ms = await cal.report(EVENTS, query("20260101T000000Z", "20260201T000000Z",
                                        data=f"<C:calendar-data><C:expand {rng}/></C:calendar-data>"))  # fmt: skip
    text = ms.responses[0].value(f"{C}calendar-data")
    assert starts(text) == ["DTSTART:20260105T050000Z", "DTSTART:20260106T070000Z",
                            "DTSTART:20260107T050000Z"]  # fmt: skip
    assert "RECURRENCE-ID:20260106T050000Z" in text.replace("\r\n", "\n")
    # The same object with a definition that agrees with the database: 09:00Z.
    same = own.replace(NOT_BERLIN.encode(), BERLIN.encode()).replace(b"z@x", b"s@x")
    await cal.put_ok(f"{EVENTS}s.ics", same)
    assert await hits(cal, "20260105T083000Z", "20260105T093000Z") == ["s.ics"]


def test_the_database_zone_is_kept_where_a_definition_agrees() -> None:
    for text, name in ((BERLIN, "Europe/Berlin"), (NEW_YORK, "America/New_York")):
        data = zoned(text, *vevent("a@x", "A", "X", "X"))
        data = data.replace(b"DTSTART:X", f"DTSTART;TZID={name}:20260105T100000".encode())
        data = data.replace(b"DTEND:X", f"DTEND;TZID={name}:20260105T110000".encode())
        event = parse(data).walk("VEVENT")[0]
        assert event["DTSTART"].dt.tzinfo is ZoneInfo(name)
        lo = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        assert zone_of_text(as_calendar(text), lo, lo) is ZoneInfo(name)
    lo = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    different = zone_of_text(as_calendar(NOT_BERLIN), lo, lo)
    assert different is not None and different is not ZoneInfo("Europe/Berlin")
    assert different.utcoffset(datetime(2026, 7, 1)) == ZoneInfo("Asia/Karachi").utcoffset(
        datetime(2026, 7, 1)
    )


def test_the_index_answers_floating_instances_in_any_zone() -> None:
    """Floating spans are kept in wall time, flagged, and found without the object."""
    data = floating("f@x", "20260105T100000", "20260105T110000", "RRULE:FREQ=WEEKLY;COUNT=10")
    summary = summarize(data)
    assert all(s.flags & FLOATING for s in summary.spans)
    items = CalendarItems()
    items.put("f.ics", Item("e", summary))
    for name, utc_hour in (("Asia/Tokyo", 1), ("America/New_York", 15), ("Europe/Berlin", 9)):
        lo = datetime(2026, 1, 12, utc_hour, tzinfo=UTC).timestamp()
        assert items.overlapping(lo, lo + 1800, ZoneInfo(name)) == ({"f.ics"}, set()), name
        assert items.overlapping(lo - 7200, lo - 3600, ZoneInfo(name)) == (set(), set()), name
    items.remove("f.ics")
    assert items.overlapping(0, 2e9, ZoneInfo("Asia/Tokyo")) == (set(), set())


async def test_rows_of_an_older_index_are_summarized_again(tmp_path: Path) -> None:
    index = CalendarIndex(tmp_path / "index.sqlite3")
    data = floating("f@x", "20260105T100000", "20260105T110000")
    await index.update("user/calendar", {"f.ics": Item("e", summarize(data))}, [])
    await index.close()

    def age() -> None:  # what an index written before floating spans holds
        with sqlite3.connect(tmp_path / "index.sqlite3") as db:
            db.execute("UPDATE items SET format = NULL")

    await asyncio.to_thread(age)
    again = CalendarIndex(tmp_path / "index.sqlite3")
    items = await again.items("user/calendar")
    assert items["f.ics"].summary.since == float("inf")  # STALE: worked out again
    await again.close()


def test_parse_keeps_what_icalendar_gives_without_own_zones() -> None:
    data = floating("f@x", "20260105T100000", "20260105T110000")
    assert parse(data).to_ical() == icalendar.Calendar.from_ical(data).to_ical()
