"""A calendar in a browser: its page links the whole calendar as one .ics file, which is
also the subscription URL read-only calendar apps take; each time zone comes once."""

from __future__ import annotations

import icalendar
import pytest
from caldav_data import EVENTS, ICS, MakeCal, event, ical, vevent

pytest_plugins = ("caldav_data.fixtures",)

ZONE = [
    "BEGIN:VTIMEZONE", "TZID:Europe/Berlin", "BEGIN:STANDARD", "DTSTART:19701025T030000",
    "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD", "END:VTIMEZONE",
]  # fmt: skip


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_a_calendar_downloads_whole(make_cal: MakeCal, backend: str) -> None:
    cal = await make_cal(backend=backend)
    client = cal.client
    assert (await client.put(EVENTS + "a.ics", data=event("a@x", "First"),
                             headers={"Content-Type": ICS})).status == 201  # fmt: skip
    zoned = ical(*ZONE, *vevent("b@x", "Second", "TZID=Europe/Berlin:20260105T100000"))
    zoned = zoned.replace(b"DTSTART:TZID", b"DTSTART;TZID").replace(
        b"DTEND:20260105T110000Z", b"DTEND;TZID=Europe/Berlin:20260105T110000"
    )
    other = ical(*ZONE, *vevent("c@x", "Third"))
    for name, body in (("b.ics", zoned), ("c.ics", other)):
        resp = await client.put(EVENTS + name, data=body, headers={"Content-Type": ICS})
        assert resp.status == 201, await resp.text()
    page = await (await client.get(EVENTS)).text()
    assert 'href="/caldav/calendars/user/calendar/?export"' in page
    assert "Subscription URL" in page and "calendar.ics" in page
    resp = await client.get(EVENTS + "?export")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    data = await resp.read()
    parsed = icalendar.Calendar.from_ical(data)
    assert sorted(str(e["SUMMARY"]) for e in parsed.walk("VEVENT")) == ["First", "Second", "Third"]
    assert len(parsed.walk("VTIMEZONE")) == 1
    assert data.count(b"BEGIN:VCALENDAR") == 1


async def test_other_collections_offer_no_calendar(make_cal: MakeCal) -> None:
    cal = await make_cal()
    page = await (await cal.client.get("/caldav/calendars/user/")).text()
    assert "?export" not in page
    home = await cal.client.get("/caldav/calendars/user/?export")
    assert home.content_type == "text/html"  # just the page
