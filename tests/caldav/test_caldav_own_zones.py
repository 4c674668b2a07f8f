"""Each object's times are read by its own VTIMEZONEs (RFC 5545 §3.2.19), never by a
definition another object brought: a TZID the zone database does not know ("Customized
Time Zone", as Outlook writes them) means what the object that uses it defines, wherever
in the object the definition stands, and nothing of it stays behind in the process. A
VTIMEZONE parsed once is copied, not parsed again, and the copy is the object's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
from caldav_data import EVENTS, HOME, Cal, ical, vevent
from icalendar.timezone import tzp
from test_caldav_floating import BERLIN, NEW_YORK, TOKYO, hits, query, starts, vtimezone

from davserver.ical import reader, zones
from davserver.ical.objects import InvalidObject, check
from davserver.ical.reader import read, read_all
from davserver.ical.zones import parse

pytest_plugins = ("caldav_data.fixtures",)

CUSTOM = "Customized Time Zone"


def fixed(tzid: str, offset: str) -> str:
    """A VTIMEZONE of one fixed offset."""
    return vtimezone(tzid, ("STANDARD", "16010101T000000", offset, offset, ""))


def meeting(uid: str, tzid: str, *definitions: str, zones_last: bool = False) -> bytes:
    """An event on 1 March 2026, 10:00 to 11:00 in ``tzid``, with the VTIMEZONEs
    ``definitions`` before it (or after it)."""
    lines = vevent(uid, "Zoned", "X", "X")
    lines[lines.index("DTSTART:X")] = f"DTSTART;TZID={tzid}:20260301T100000"
    lines[lines.index("DTEND:X")] = f"DTEND;TZID={tzid}:20260301T110000"
    return ical(*lines, *definitions) if zones_last else ical(*definitions, *lines)


def start_of(data: bytes) -> datetime:
    dt: datetime = parse(data).walk("VEVENT")[0]["DTSTART"].dt
    return dt


def utc_hour(data: bytes) -> float:
    """The UTC hour the object's first span starts at, from what a PUT keeps."""
    return check(data).summary.spans[0].start % 86400 / 3600


def test_one_tzid_defined_two_ways_gives_each_object_its_own_times() -> None:
    east = meeting("east@x", CUSTOM, fixed(CUSTOM, "+0500"))
    west = meeting("west@x", CUSTOM, fixed(CUSTOM, "-0800"))
    for first, second in ((east, west), (west, east), (east, west)):
        check(first)
        check(second)
    assert utc_hour(east) == 5.0
    assert utc_hour(west) == 18.0
    assert start_of(east).utcoffset().total_seconds() == 5 * 3600
    assert start_of(west).utcoffset().total_seconds() == -8 * 3600


def test_a_definition_after_the_event_that_uses_it_governs_it() -> None:
    tzid = f"Zone {uuid.uuid4()}"
    data = meeting("late@x", tzid, fixed(tzid, "+0900"), zones_last=True)
    assert utc_hour(data) == 1.0


def test_a_tzid_without_definition_or_zone_stays_local_time() -> None:
    tzid = f"Nowhere {uuid.uuid4()}"
    elsewhere = meeting("def@x", tzid, fixed(tzid, "+0300"))
    check(elsewhere)
    assert start_of(meeting("none@x", tzid)).tzinfo is None
    assert start_of(elsewhere).utcoffset().total_seconds() == 3 * 3600


@pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")  # icalendar's
@pytest.mark.parametrize(
    ("tzid", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("/freeassociation.sourceforge.net/Tzfile/America/New_York", "America/New_York"),
        ("/Asia/Tokyo/", "Asia/Tokyo"),
    ],
)
def test_names_of_the_zone_database_are_read_as_icalendar_reads_them(tzid: str, zone: str) -> None:
    assert start_of(meeting("db@x", tzid)).tzinfo is ZoneInfo(zone)
    theirs = icalendar.Calendar.from_ical(meeting("db@x", tzid)).walk("VEVENT")[0]
    assert theirs["DTSTART"].dt.tzinfo is ZoneInfo(zone)


def test_icalendar_keeps_no_zone_of_an_object() -> None:
    """icalendar's own table of zones (private to it, looked at here for this one guard)
    does not grow with the TZIDs objects invent, nor learns their definitions."""
    table = tzp._TZP__tz_cache
    check(meeting("warm@x", "/vendor0/Europe/Berlin"))
    before = len(table)
    tzid = f"Invented {uuid.uuid4()}"
    check(meeting("inv@x", tzid, fixed(tzid, "+0100")))
    for i in range(200):
        check(meeting(f"v{i}@x", f"/vendor{i}/Europe/Berlin"))
        check(meeting(f"c{i}@x", f"Custom {i}", fixed(f"Custom {i}", "+0200")))
    assert len(table) == before
    theirs = icalendar.Calendar.from_ical(meeting("t@x", tzid)).walk("VEVENT")[0]
    assert theirs["DTSTART"].dt.tzinfo is None


def test_a_vtimezone_parsed_again_is_the_same_and_the_objects_own() -> None:
    data = meeting("a@x", "Europe/Berlin", BERLIN, TOKYO)
    first, second = read(data), read(data)
    assert first.to_ical() == second.to_ical() == icalendar.Calendar.from_ical(data).to_ical()
    zone_a, zone_b = first.subcomponents[0], second.subcomponents[0]
    assert zone_a is not zone_b and zone_a.subcomponents[0] is not zone_b.subcomponents[0]
    zone_a["TZID"] = "Changed"
    zone_a.subcomponents[0]["TZNAME"] = "Changed"
    zone_a.subcomponents.clear()
    assert read(data).to_ical() == second.to_ical()


def _variants() -> dict[str, bytes]:
    """Objects whose VTIMEZONEs are well made and not: the reader must give what
    icalendar gives for each, or fail as it fails."""
    good = meeting("v@x", "America/New_York", NEW_YORK)
    text = good.decode()
    lower = text.replace("BEGIN:VTIMEZONE", "begin:vtimezone").replace(
        "END:VTIMEZONE", "end:vtimezone"
    )
    too_long = NEW_YORK.replace("TZID:America/New_York", "TZID:" + "y" * 20000)
    return {
        "good": good,
        "zone last": meeting("v@x", "America/New_York", NEW_YORK, zones_last=True),
        "zone never ends": text.replace("END:VTIMEZONE\r\n", "").encode(),
        "observance never ends": text.replace("END:STANDARD\r\n", "", 1).encode(),
        "two ends": text.replace("END:VTIMEZONE", "END:VTIMEZONE\r\nEND:VTIMEZONE").encode(),
        "lower case": lower.encode(),
        "bad offset": text.replace("TZOFFSETFROM:-0500", "TZOFFSETFROM:oops").encode(),
        "zone in the event": text.replace("BEGIN:VEVENT", f"BEGIN:VEVENT\r\n{NEW_YORK}").encode(),
        "zone alone": ical(NEW_YORK),
        "longer than kept": ical(too_long),
    }


def _outcome(read_them: Callable[[bytes], list[icalendar.cal.Component]], data: bytes) -> object:
    """The components' text, or the kind of error."""
    try:
        return [c.to_ical() for c in read_them(data)]
    except ValueError:
        return ValueError


@pytest.mark.parametrize("data", _variants().values(), ids=_variants().keys())
def test_the_reader_gives_what_icalendar_gives(data: bytes) -> None:
    theirs = _outcome(lambda d: icalendar.Calendar.from_ical(d, multiple=True), data)
    for _ in range(2):  # the second time, from what the first kept
        assert _outcome(read_all, data) == theirs


def test_a_put_with_a_broken_definition_is_refused_each_time() -> None:
    broken = meeting(
        "b@x", CUSTOM, fixed(CUSTOM, "+0500").replace("TZOFFSETTO:+0500", "TZOFFSETTO:x")
    )
    for _ in range(2):
        with pytest.raises(InvalidObject):
            check(broken)


async def test_the_server_answers_each_object_by_its_own_definition(cal: Cal) -> None:
    """Over HTTP: two objects of the same invented TZID, in two calendars, each found at
    its own time by a time-range query and expanded at it."""
    other = f"{HOME}other/"
    status, _, _ = await cal.request("MKCALENDAR", other)
    assert status == 201
    await cal.put_ok(f"{EVENTS}east.ics", meeting("east@x", CUSTOM, fixed(CUSTOM, "+0500")))
    await cal.put_ok(f"{other}west.ics", meeting("west@x", CUSTOM, fixed(CUSTOM, "-0800")))
    assert await hits(cal, "20260301T043000Z", "20260301T053000Z") == ["east.ics"]
    assert await hits(cal, "20260301T173000Z", "20260301T183000Z") == []
    ms = await cal.report(other, query("20260301T173000Z", "20260301T183000Z"))
    assert [r.href.rpartition("/")[2] for r in ms.responses] == ["west.ics"]
    ms = await cal.report(other, query("20260301T043000Z", "20260301T053000Z"))
    assert ms.responses == []
    rng = 'start="20260301T000000Z" end="20260302T000000Z"'
    body = query("20260301T000000Z", "20260302T000000Z",
                 data=f"<C:calendar-data><C:expand {rng}/></C:calendar-data>")  # fmt: skip
    east = (
        (await cal.report(EVENTS, body))
        .responses[0]
        .value("{urn:ietf:params:xml:ns:caldav}calendar-data")
    )
    west = (
        (await cal.report(other, body))
        .responses[0]
        .value("{urn:ietf:params:xml:ns:caldav}calendar-data")
    )
    assert starts(east) == ["DTSTART:20260301T050000Z"]
    assert starts(west) == ["DTSTART:20260301T180000Z"]


def test_long_definitions_are_not_kept() -> None:
    """Zones are kept by their text: a text longer than real ones is worked out each
    time, so that what clients send cannot fill the memory."""
    comment = "COMMENT:" + "x" * (zones.KEPT_DEFINITION_BYTES + 1)
    long_zone = fixed(CUSTOM, "+0500").replace("END:VTIMEZONE", f"{comment}\r\nEND:VTIMEZONE")
    kept = (zones._kept_definition, zones._kept_zone_of_text, reader._zone)
    before = [f.cache_info().currsize for f in kept]
    for _ in range(2):
        assert utc_hour(meeting("long@x", CUSTOM, long_zone)) == 5.0
        text = ical(long_zone).decode()
        zone = zones.zone_of_text(text, 0, 86400)
        assert zone is not None and zone.utcoffset(datetime(2026, 3, 1)).total_seconds() == 18000
    assert [f.cache_info().currsize for f in kept] == before


@pytest.mark.parametrize("freq", ["DAILY", "HOURLY", "SECONDLY"])
def test_a_definition_of_endless_changes_is_not_worked_with(freq: str) -> None:
    """icalendar lists every change a VTIMEZONE's rules make, up to 2038: one rule of a
    change a second would take hours and gigabytes. Past 5,000 changes the definition is
    one the server cannot work with: a zone's name keeps the database's zone, any other
    TZID stays local time; the object is stored and found as such."""
    rules = ("STANDARD", "20000101T000000", "+0100", "+0200", f"FREQ={freq}")
    for tzid, hour in (("Europe/Berlin", 9.0), (f"Endless {uuid.uuid4()}", 10.0)):
        data = meeting("endless@x", tzid, vtimezone(tzid, rules))
        assert utc_hour(data) == hour
    with pytest.raises(ValueError, match="changes offset over 5000 times"):
        zones._definition(vtimezone("Europe/Berlin", rules).encode())
    yearly = vtimezone(
        "Europe/Berlin", ("STANDARD", "16010101T000000", "+0100", "+0500", "FREQ=YEARLY")
    )
    assert utc_hour(meeting("yearly@x", "Europe/Berlin", yearly)) == 5.0
