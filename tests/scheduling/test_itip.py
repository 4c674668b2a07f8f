"""The iTIP domain (davserver/ical/meeting.py, itip.py) on parsed objects: who is who,
the messages a change calls for, what they do to the copies, and the checks of a POSTed
message."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
import pytest

from davserver.ical.itip import (
    apply_reply,
    attendee_copy,
    cancel,
    cancelled_copy,
    changed_partstats,
    keep_partstats,
    posted,
    reply,
    request,
    rescheduled,
    serialize,
    set_schedule_status,
    significant,
)
from davserver.ical.meeting import InvalidMessage, address, meeting, role

NOW = datetime(2026, 1, 2, 12, tzinfo=UTC)
ANN, BOB, CAT = "mailto:ann@example.org", "mailto:bob@example.org", "mailto:cat@example.org"


def parse(*blocks: str) -> icalendar.Calendar:
    text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + "".join(blocks)
    return icalendar.Calendar.from_ical(text + "END:VCALENDAR\r\n")


def vevent(*lines: str) -> str:
    return "BEGIN:VEVENT\r\n" + "".join(f"{x}\r\n" for x in lines) + "END:VEVENT\r\n"


MASTER = vevent(
    "UID:w1", "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z",
    "DTEND:20260105T110000Z", "RRULE:FREQ=WEEKLY;COUNT=4", "SUMMARY:Weekly",
    f"ORGANIZER:{ANN}", f"ATTENDEE;PARTSTAT=NEEDS-ACTION:{BOB}",
    f"ATTENDEE;PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:{CAT}",
    "BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT5M", "DESCRIPTION:x", "END:VALARM",
)  # fmt: skip
OVERRIDE = vevent(
    "UID:w1", "RECURRENCE-ID:20260112T100000Z", "DTSTAMP:20260101T000000Z",
    "DTSTART:20260112T140000Z", "DTEND:20260112T150000Z", "SUMMARY:Weekly (moved)",
    f"ORGANIZER:{ANN}", f"ATTENDEE;PARTSTAT=NEEDS-ACTION:{BOB}",
)  # fmt: skip


def text(calendar: icalendar.Calendar) -> str:
    return serialize(calendar).decode().replace("\r\n ", "")


def test_addresses_compare_folded() -> None:
    assert address(" MAILTO:Bob@Example.ORG ") == BOB
    assert address("/caldav/principals/Bob/") == "/caldav/principals/Bob/"


def test_who_is_who() -> None:
    found = meeting(parse(MASTER, OVERRIDE))
    assert found is not None
    assert found.uid == "w1" and found.organizer == ANN and found.component == "VEVENT"
    assert found.instances_of(CAT) == {None}
    assert found.instances_of(BOB) == {None, datetime(2026, 1, 12, 10, tzinfo=UTC).timestamp()}
    assert role(found, {ANN}) == "organizer"
    assert role(found, {BOB}) == "attendee"
    assert role(found, {"mailto:zed@x.org"}) is None
    assert meeting(parse(vevent("UID:p", "DTSTART:20260105T100000Z"))) is None


def test_two_organizers_are_refused() -> None:
    other = OVERRIDE.replace(f"ORGANIZER:{ANN}", f"ORGANIZER:{BOB}")
    with pytest.raises(InvalidMessage) as caught:
        meeting(parse(MASTER, other))
    assert caught.value.condition == "same-organizer-in-all-components"


def test_a_request_carries_what_each_attends() -> None:
    calendar = parse(MASTER, OVERRIDE)
    for_cat = text(request(calendar, CAT, NOW))  # type: ignore[arg-type]
    assert "METHOD:REQUEST" in for_cat
    assert "RECURRENCE-ID" not in for_cat
    assert "EXDATE:20260112T100000Z" in for_cat  # cat is not at the moved instance
    assert "VALARM" not in for_cat and "SCHEDULE-STATUS" not in for_cat
    assert "DTSTAMP:20260102T120000Z" in for_cat
    for_bob = text(request(calendar, BOB, NOW))  # type: ignore[arg-type]
    assert for_bob.count("BEGIN:VEVENT") == 2 and "EXDATE" not in for_bob
    assert request(calendar, "mailto:zed@x.org", NOW) is None


def test_a_cancel_and_what_it_does_to_a_copy() -> None:
    calendar = parse(MASTER, OVERRIDE)
    message = cancel(calendar, BOB, NOW)
    assert message is not None
    out = text(message)
    assert "METHOD:CANCEL" in out and out.count("STATUS:CANCELLED") == 2
    assert CAT not in out
    copy = attendee_copy(request(calendar, BOB, NOW), None)  # type: ignore[arg-type]
    assert cancelled_copy(copy, message)
    assert text(copy).count("STATUS:CANCELLED") == 2
    # One instance called off: the copy that does not override it excludes it.
    one = cancel(
        parse(MASTER, OVERRIDE), BOB, NOW, [datetime(2026, 1, 12, 10, tzinfo=UTC).timestamp()]
    )
    cats = attendee_copy(request(parse(MASTER), CAT, NOW), None)  # type: ignore[arg-type]
    assert one is not None
    moved = text(one).replace("RECURRENCE-ID:20260112T100000Z", "RECURRENCE-ID:20260119T100000Z")
    assert cancelled_copy(cats, icalendar.Calendar.from_ical(moved))
    assert "EXDATE:20260119T100000Z" in text(cats)


def test_a_reply_and_what_it_does_to_the_organizers_copy() -> None:
    bobs = parse(MASTER.replace(f"PARTSTAT=NEEDS-ACTION:{BOB}", f"PARTSTAT=ACCEPTED:{BOB}"))
    before = meeting(parse(MASTER))
    after = meeting(bobs)
    assert after is not None
    assert changed_partstats(before, after, BOB) == [None]
    message = reply(bobs, BOB, NOW, [None])
    assert message is not None
    out = text(message)
    assert "METHOD:REPLY" in out and f"ATTENDEE;PARTSTAT=ACCEPTED:{BOB}" in out
    assert CAT not in out and "RRULE" not in out
    organizers = parse(MASTER)
    assert apply_reply(organizers, message)
    assert f"PARTSTAT=ACCEPTED:{BOB}" in text(organizers)
    assert not apply_reply(organizers, message)  # already so


def test_a_reply_for_an_instance_not_overridden_makes_the_override() -> None:
    organizers = parse(MASTER)
    rid = datetime(2026, 1, 19, 10, tzinfo=UTC).timestamp()
    bobs = parse(
        MASTER,
        vevent(
            "UID:w1", "RECURRENCE-ID:20260119T100000Z", "DTSTAMP:20260101T000000Z",
            "DTSTART:20260119T100000Z", "DTEND:20260119T110000Z", f"ORGANIZER:{ANN}",
            f"ATTENDEE;PARTSTAT=DECLINED:{BOB}",
        ),
    )  # fmt: skip
    message = reply(bobs, BOB, NOW, [rid])
    assert message is not None
    assert apply_reply(organizers, message)
    blocks = text(organizers).split("BEGIN:VEVENT")
    [made] = [b for b in blocks if "RECURRENCE-ID:20260119T100000Z" in b]
    assert f"PARTSTAT=DECLINED:{BOB}" in made and "DTSTART:20260119T100000Z" in made
    assert "RRULE" not in made and "VALARM" not in made
    [master] = [b for b in blocks if "RRULE" in b]
    assert f"PARTSTAT=NEEDS-ACTION:{BOB}" in master
    # An instance the master does not have is not made.
    stray = reply(bobs, BOB, NOW, [rid])
    assert stray is not None
    wrong = text(stray).replace("20260119T100000Z", "20260120T100000Z")
    assert not apply_reply(parse(MASTER), icalendar.Calendar.from_ical(wrong))


def test_what_counts_as_a_change_for_the_attendees() -> None:
    base = parse(MASTER)
    alarm_only = parse(MASTER.replace("TRIGGER:-PT5M", "TRIGGER:-PT15M"))
    answered = parse(MASTER.replace(f"PARTSTAT=NEEDS-ACTION:{BOB}", f"PARTSTAT=ACCEPTED:{BOB}"))
    renamed = parse(MASTER.replace("SUMMARY:Weekly", "SUMMARY:Weekly sync"))
    moved = parse(MASTER.replace("DTSTART:20260105T100000Z", "DTSTART:20260105T090000Z"))
    assert not significant(base, alarm_only) and not significant(base, answered)
    assert significant(base, renamed) and significant(base, moved)
    assert not rescheduled(base, renamed) and rescheduled(base, moved)
    assert rescheduled(base, parse(MASTER, OVERRIDE))


def test_the_answers_stay_and_statuses_are_set() -> None:
    stale = parse(MASTER)
    replied = parse(MASTER.replace(f"PARTSTAT=NEEDS-ACTION:{BOB}", f"PARTSTAT=ACCEPTED:{BOB}"))
    assert keep_partstats(stale, replied, ANN)
    assert f"PARTSTAT=ACCEPTED:{BOB}" in text(stale)
    assert set_schedule_status(stale, {BOB: "1.2"})
    assert not set_schedule_status(stale, {BOB: "1.2"})
    [bob] = [line for line in text(stale).splitlines() if line.endswith(BOB)]
    assert ";SCHEDULE-STATUS=1.2" in bob


def fb(*lines: str) -> bytes:
    body = "".join(f"{x}\r\n" for x in lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + body + "END:VCALENDAR\r\n"
    ).encode()


GOOD = (
    "METHOD:REQUEST", "BEGIN:VFREEBUSY", "UID:f", "DTSTAMP:20260101T000000Z",
    "DTSTART:20260105T000000Z", "DTEND:20260106T000000Z", f"ORGANIZER:{ANN}",
    f"ATTENDEE:{BOB}", f"ATTENDEE:{CAT}", "END:VFREEBUSY",
)  # fmt: skip


def test_a_posted_free_busy_request() -> None:
    found = posted(fb(*GOOD))
    assert found.method == "REQUEST" and found.component == "VFREEBUSY"
    assert found.attendees == (BOB, CAT) and found.organizer == ANN
    assert found.start == datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lines", "condition"),
    [
        (GOOD[1:], "valid-scheduling-message"),
        (("METHOD:COUNTER", *GOOD[1:]), "valid-scheduling-message"),
        (tuple(x for x in GOOD if not x.startswith("ORGANIZER")), "valid-scheduling-message"),
        (tuple(x for x in GOOD if not x.startswith("DTEND")), "valid-scheduling-message"),
        (tuple(x for x in GOOD if not x.startswith("UID")), "valid-scheduling-message"),
        ((*GOOD, "BEGIN:VTODO", "UID:f", "END:VTODO"), "valid-scheduling-message"),
        (("METHOD:REQUEST", "BEGIN:VFREEBUSY", "DTSTART:garbage", "END:VFREEBUSY"),
         "valid-calendar-data"),
    ],
    ids=["no METHOD", "COUNTER", "no ORGANIZER", "no DTEND", "no UID", "two kinds", "garbage"],
)  # fmt: skip
def test_posted_messages_that_cannot_be_taken(lines: tuple[str, ...], condition: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        posted(fb(*lines))
    assert caught.value.condition == condition
