"""The reader's own way of splitting a content line (davserver/ical/reader.py's _Line)
gives what icalendar's gives, line by line and object by object: the name, parameters
and value, or the same error."""

from __future__ import annotations

import icalendar
import pytest
from caldav_data import ical, vevent
from hypothesis import example, given, settings
from hypothesis import strategies as st
from icalendar.parser.content_line import Contentline

from davserver.ical import reader
from davserver.ical.reader import read_all

lines = st.text(alphabet='Aa9-._:;=,"\\ \t\u00e9\u2003\x0bX', max_size=24)


def _split(line: Contentline, how: str) -> object:
    try:
        name, params, value = getattr(line, how)()
    except ValueError as exc:
        return ("error", str(exc))
    return (name, type(params), dict(params), value)


@settings(max_examples=2000, deadline=None)
@given(lines, st.booleans())
@example("SUMMARY:a:b", False)
@example(":value", False)
@example("DTSTART;TZID=Europe/Berlin:20260301T100000", False)
@example('ATTENDEE;CN="a:b":mailto:x', True)
@example("X-A\\:B:c", False)
@example(" SUMMARY :x", False)
@example("SUMMARY", False)
def test_a_line_splits_as_icalendar_splits_it(text: str, strict: bool) -> None:
    ours = reader._Line(text, strict)  # type: ignore[no-untyped-call]
    theirs = Contentline(text, strict)  # type: ignore[no-untyped-call]
    assert _split(ours, "raw_parts") == _split(theirs, "raw_parts")
    assert _split(ours, "parts") == _split(theirs, "parts")


def _event(*extra: str) -> bytes:
    lines = vevent("r@x", "Reader", "20260301T100000Z", "20260301T110000Z")
    return ical(*lines[:-1], *extra, lines[-1])


@pytest.mark.parametrize(
    "data",
    [
        _event("DESCRIPTION:" + "a long description\\, with commas\\; and: colons " * 40),
        _event('ATTENDEE;CN="Doe: Jane";ROLE=REQ-PARTICIPANT:mailto:jane@example.org'),
        _event("X-WITH-ESCAPE:a\\\\b\\nc", "LOCATION;LANGUAGE=de:Zimmer 1"),
        _event("CATEGORIES:one,two,three", "URL;VALUE=URI:https://example.org/a:b"),
        _event("RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE:20260308T100000Z"),
    ],
    ids=["long text", "quoted parameter", "escapes", "lists and uris", "recurrence"],
)
def test_an_object_reads_as_icalendar_reads_it(data: bytes) -> None:
    theirs = [c.to_ical() for c in icalendar.Calendar.from_ical(data, multiple=True)]
    assert [c.to_ical() for c in read_all(data)] == theirs
