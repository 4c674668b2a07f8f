"""Implicit scheduling (RFC 6638 §3.2) between ann, bob and cat on both backends: what an
organizer's PUT, change, DELETE and MOVE deliver, what an attendee's answer delivers,
SCHEDULE-STATUS, schedule tags, recurring meetings with overridden instances; and that
the owner-only rule stays whole outside the deliveries."""

from __future__ import annotations

import logging

import pytest
from helpers import snapshot
from sched_data import (
    ICS,
    Site,
    attendee_line,
    calendar,
    home,
    inbox,
    lines_of,
    meeting,
    param,
    unfolded,
)

ANN_M1 = calendar("ann") + "m1.ics"


def method(data: bytes) -> str:
    return lines_of(data, "METHOD")[0].partition(":")[2]


async def invite(site: Site, uid: str = "m1", **kw: object) -> None:
    ans = await site.put("ann", calendar("ann") + f"{uid}.ics", meeting(uid, **kw))  # type: ignore[arg-type]
    assert ans.status in (201, 204), ans.body


async def answer(site: Site, user: str, uid: str, partstat: str) -> bytes:
    """``user`` changes their participation in their copy, as a client does."""
    [(name, data)] = await site.events(user, uid)
    text = data.decode().replace(
        f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{user}@example.org",
        f"PARTSTAT={partstat};RSVP=TRUE:mailto:{user}@example.org",
    )
    assert text != data.decode()
    ans = await site.put(user, calendar(user) + name, text.encode())
    assert ans.status == 204, ans.body
    return await site.get(user, calendar(user) + name)


async def test_an_organizers_put_invites_each_attendee(site: Site) -> None:
    ans = await site.put("ann", ANN_M1, meeting("m1", attendees=("bob", "cat")))
    assert ans.status == 201
    # What is stored is no longer what was sent (SCHEDULE-STATUS): no ETag, a schedule tag.
    assert "ETag" not in ans.headers
    tag = ans.headers["Schedule-Tag"]
    assert tag.startswith('"')
    for user in ("bob", "cat"):
        [message] = await site.inbox(user)
        assert method(message) == "REQUEST"
        assert "UID:m1" in unfolded(message)
        [(name, copy)] = await site.events(user, "m1")
        assert name == "m1.ics"
        assert not lines_of(copy, "METHOD")
        assert param(attendee_line(copy, user), "PARTSTAT") == "NEEDS-ACTION"
        assert param(attendee_line(copy, user), "SCHEDULE-STATUS") is None
    stored = await site.get("ann", ANN_M1)
    for user in ("bob", "cat"):
        assert param(attendee_line(stored, user), "SCHEDULE-STATUS") == "1.2"
    assert await site.inbox("ann") == []
    got = await site.request("GET", ANN_M1, "ann")
    assert got.headers["Schedule-Tag"] == tag


async def test_a_meeting_nobody_here_attends_is_stored_as_sent(site: Site) -> None:
    data = meeting("plain", attendees=())
    ans = await site.put("ann", calendar("ann") + "plain.ics", data)
    assert ans.status == 201
    assert await site.get("ann", calendar("ann") + "plain.ics") == data
    assert "ETag" in ans.headers


async def test_a_plain_event_is_left_alone(site: Site) -> None:
    data = meeting("x", attendees=()).replace(b"ORGANIZER;CN=ann:mailto:ann@example.org\r\n", b"")
    ans = await site.put("ann", calendar("ann") + "x.ics", data)
    assert ans.status == 201 and "ETag" in ans.headers and "Schedule-Tag" not in ans.headers
    assert await site.get("ann", calendar("ann") + "x.ics") == data


async def test_a_change_the_attendees_must_hear_of_is_delivered(site: Site) -> None:
    await invite(site)
    [(_, first)] = await site.events("bob", "m1")
    tag = (await site.request("GET", calendar("bob") + "m1.ics", "bob")).headers["Schedule-Tag"]
    await invite(site, start="20260106T100000Z", end="20260106T110000Z", sequence=1)
    messages = await site.inbox("bob")
    assert [method(m) for m in messages] == ["REQUEST", "REQUEST"]
    [(_, copy)] = await site.events("bob", "m1")
    assert "DTSTART:20260106T100000Z" in unfolded(copy)
    assert copy != first
    again = (await site.request("GET", calendar("bob") + "m1.ics", "bob")).headers["Schedule-Tag"]
    assert again != tag  # the organizer changed it


async def test_a_change_for_the_organizer_alone_delivers_nothing(site: Site) -> None:
    await invite(site)
    alarm = ("BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT5M", "DESCRIPTION:x", "END:VALARM")
    ans = await site.put("ann", ANN_M1, meeting("m1", extra=alarm))
    assert ans.status == 204
    assert len(await site.inbox("bob")) == 1
    assert "Schedule-Tag" in ans.headers  # every write of the organizer gets a new tag


async def test_an_attendee_removed_gets_a_cancel(site: Site) -> None:
    await invite(site, attendees=("bob", "cat"))
    await invite(site, attendees=("bob",))
    messages = await site.inbox("cat")
    assert [method(m) for m in messages] == ["REQUEST", "CANCEL"]
    [(_, copy)] = await site.events("cat", "m1")
    assert "STATUS:CANCELLED" in unfolded(copy)
    # bob hears of the new list of attendees.
    second = (await site.inbox("bob"))[-1]
    assert method(second) == "REQUEST" and "mailto:cat@example.org" not in second.decode()


async def test_the_organizers_delete_cancels_for_everyone(site: Site) -> None:
    await invite(site, attendees=("bob", "cat"))
    ans = await site.request("DELETE", ANN_M1, "ann")
    assert ans.status == 204
    for user in ("bob", "cat"):
        assert [method(m) for m in await site.inbox(user)] == ["REQUEST", "CANCEL"]
        [(_, copy)] = await site.events(user, "m1")
        assert "STATUS:CANCELLED" in unfolded(copy)


async def test_deleting_the_organizers_calendar_cancels_its_meetings(site: Site) -> None:
    await site.request("MKCALENDAR", home("ann") + "work/", "ann")
    ans = await site.put("ann", home("ann") + "work/m2.ics", meeting("m2"))
    assert ans.status == 201
    assert (await site.request("DELETE", home("ann") + "work/", "ann")).status == 204
    assert [method(m) for m in await site.inbox("bob")] == ["REQUEST", "CANCEL"]


async def test_an_attendees_answer_replies_to_the_organizer(site: Site) -> None:
    await invite(site, attendees=("bob", "cat"))
    org_tag = (await site.request("GET", ANN_M1, "ann")).headers["Schedule-Tag"]
    bob_tag = (await site.request("GET", calendar("bob") + "m1.ics", "bob")).headers["Schedule-Tag"]
    copy = await answer(site, "bob", "m1", "ACCEPTED")
    [reply] = await site.inbox("ann")
    assert method(reply) == "REPLY"
    assert [param(line, "PARTSTAT") for line in lines_of(reply, "ATTENDEE")] == ["ACCEPTED"]
    organizers = await site.get("ann", ANN_M1)
    assert param(attendee_line(organizers, "bob"), "PARTSTAT") == "ACCEPTED"
    assert param(attendee_line(organizers, "cat"), "PARTSTAT") == "NEEDS-ACTION"
    # The delivery of the reply is noted on the ORGANIZER of bob's copy.
    assert param(lines_of(copy, "ORGANIZER")[0], "SCHEDULE-STATUS") == "1.2"
    # Neither schedule tag moves: the organizer changed nothing, bob only answered.
    assert (await site.request("GET", ANN_M1, "ann")).headers["Schedule-Tag"] == org_tag
    got = await site.request("GET", calendar("bob") + "m1.ics", "bob")
    assert got.headers["Schedule-Tag"] == bob_tag
    assert [method(m) for m in await site.inbox("cat")] == ["REQUEST"]


async def test_an_organizers_stale_copy_keeps_the_replies(site: Site) -> None:
    """The organizer's client writes back what it had before bob replied (with the schedule
    tag, which replies do not move): bob's answer stays."""
    ans = await site.put("ann", ANN_M1, meeting("m1"))
    tag = ans.headers["Schedule-Tag"]
    await answer(site, "bob", "m1", "ACCEPTED")
    stale = meeting("m1", summary="Meeting (agenda added)")
    ans = await site.put("ann", ANN_M1, stale, If_Schedule_Tag_Match=tag)
    assert ans.status == 204, ans.body
    stored = await site.get("ann", ANN_M1)
    assert param(attendee_line(stored, "bob"), "PARTSTAT") == "ACCEPTED"


async def test_if_schedule_tag_match_refuses_a_stale_tag(site: Site) -> None:
    ans = await site.put("ann", ANN_M1, meeting("m1"))
    old = ans.headers["Schedule-Tag"]
    await site.put("ann", ANN_M1, meeting("m1", summary="Renamed"))
    before = snapshot(site.store)
    bob_inbox = await site.inbox("bob")
    ans = await site.put("ann", ANN_M1, meeting("m1", summary="Lost"), If_Schedule_Tag_Match=old)
    assert ans.status == 412
    ans = await site.request("DELETE", ANN_M1, "ann", If_Schedule_Tag_Match=old)
    assert ans.status == 412
    assert snapshot(site.store) == before
    assert await site.inbox("bob") == bob_inbox


async def test_an_attendees_delete_declines(site: Site) -> None:
    await invite(site)
    ans = await site.request("DELETE", calendar("bob") + "m1.ics", "bob")
    assert ans.status == 204
    [reply] = await site.inbox("ann")
    assert method(reply) == "REPLY"
    assert param(lines_of(reply, "ATTENDEE")[0], "PARTSTAT") == "DECLINED"
    stored = await site.get("ann", ANN_M1)
    assert param(attendee_line(stored, "bob"), "PARTSTAT") == "DECLINED"


async def test_schedule_reply_f_deletes_without_a_reply(site: Site) -> None:
    await invite(site)
    ans = await site.request("DELETE", calendar("bob") + "m1.ics", "bob", Schedule_Reply="F")
    assert ans.status == 204
    assert await site.inbox("ann") == []
    stored = await site.get("ann", ANN_M1)
    assert param(attendee_line(stored, "bob"), "PARTSTAT") == "NEEDS-ACTION"


async def test_schedule_agent_client_is_left_to_the_client(site: Site) -> None:
    data = meeting("m1", attendees=()).replace(
        b"END:VEVENT",
        b"ATTENDEE;SCHEDULE-AGENT=CLIENT;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n"
        b"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:cat@example.org\r\nEND:VEVENT",
    )
    ans = await site.put("ann", ANN_M1, data)
    assert ans.status == 201
    assert await site.inbox("bob") == []
    assert len(await site.inbox("cat")) == 1
    stored = await site.get("ann", ANN_M1)
    assert param(attendee_line(stored, "bob"), "SCHEDULE-STATUS") is None
    assert param(attendee_line(stored, "cat"), "SCHEDULE-STATUS") == "1.2"


async def test_an_unknown_address_here_is_not_delivered(site: Site) -> None:
    await invite(site, attendees=("mailto:nobody@example.org",))
    stored = await site.get("ann", ANN_M1)
    line = attendee_line(stored, "mailto:nobody@example.org")
    assert param(line, "SCHEDULE-STATUS") == "5.2"  # no mail server configured
    assert not (site.tmp_path / "store" / "nobody").exists()


async def test_a_second_address_and_the_principal_url_find_the_user(site: Site) -> None:
    await invite(site, attendees=("mailto:Robert@Example.org", "/caldav/principals/cat/"))
    assert len(await site.inbox("bob")) == 1
    assert len(await site.inbox("cat")) == 1


async def test_the_default_calendar_of_the_inbox_takes_the_copies(site: Site) -> None:
    assert (await site.request("MKCALENDAR", home("bob") + "work/", "bob")).status == 201
    body = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set>'
        f"<D:prop><C:schedule-default-calendar-URL><D:href>{home('bob')}work/</D:href>"
        "</C:schedule-default-calendar-URL></D:prop></D:set></D:propertyupdate>"
    )
    ans = await site.request("PROPPATCH", inbox("bob"), "bob", body)
    assert ans.status == 207 and b"200 OK" in ans.body, ans.body
    await invite(site)
    assert await site.events("bob", "m1") == []
    found = await site.members("bob", home("bob") + "work/")
    assert list(found) == ["m1.ics"]


async def test_recurring_meeting_with_overrides(site: Site) -> None:
    override = (
        "UID:r1", "RECURRENCE-ID:20260112T100000Z", "DTSTAMP:20260101T000000Z",
        "DTSTART:20260112T140000Z", "DTEND:20260112T150000Z", "SUMMARY:Moved",
        "ORGANIZER:mailto:ann@example.org", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.org",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org",
    )  # fmt: skip
    data = meeting(
        "r1", attendees=("bob", "cat"), extra=("RRULE:FREQ=WEEKLY;COUNT=4",),
        components=(override,),
    )  # fmt: skip
    assert (await site.put("ann", calendar("ann") + "r1.ics", data)).status == 201
    # bob attends every instance; cat is left out of the moved one.
    [(_, bobs)] = await site.events("bob", "r1")
    assert len(lines_of(bobs, "RECURRENCE-ID")) == 1
    [(_, cats)] = await site.events("cat", "r1")
    assert not lines_of(cats, "RECURRENCE-ID")
    assert lines_of(cats, "EXDATE") == ["EXDATE:20260112T100000Z"]
    # bob declines the third instance only, which ann's copy does not override yet.
    text = bobs.decode().replace(
        "END:VCALENDAR",
        "BEGIN:VEVENT\r\nUID:r1\r\nRECURRENCE-ID:20260119T100000Z\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260119T100000Z\r\nDTEND:20260119T110000Z\r\nSUMMARY:Meeting\r\n"
        "ORGANIZER:mailto:ann@example.org\r\n"
        "ATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR",
    )
    ans = await site.put("bob", calendar("bob") + "r1.ics", text.encode())
    assert ans.status == 204, ans.body
    [reply] = await site.inbox("ann")
    assert lines_of(reply, "RECURRENCE-ID") == ["RECURRENCE-ID:20260119T100000Z"]
    stored = await site.get("ann", calendar("ann") + "r1.ics")
    rids = sorted(lines_of(stored, "RECURRENCE-ID"))
    assert rids == ["RECURRENCE-ID:20260112T100000Z", "RECURRENCE-ID:20260119T100000Z"]
    [instance] = [
        block
        for block in stored.decode().replace("\r\n ", "").split("BEGIN:VEVENT")
        if "RECURRENCE-ID:20260119T100000Z" in block
    ]
    assert "PARTSTAT=DECLINED" in instance
    assert "DTSTART:20260119T100000Z" in instance
    # The master still has bob's NEEDS-ACTION.
    assert param(attendee_line(stored.split(b"BEGIN:VEVENT")[1], "bob"), "PARTSTAT") == (
        "NEEDS-ACTION"
    )


async def test_moving_a_meeting_keeps_it_scheduled(site: Site) -> None:
    await invite(site)
    await site.request("MKCALENDAR", home("ann") + "work/", "ann")
    ans = await site.request("MOVE", ANN_M1, "ann", Destination=home("ann") + "work/m1.ics")
    assert ans.status == 201
    assert [method(m) for m in await site.inbox("bob")] == ["REQUEST"]
    await site.request("DELETE", home("ann") + "work/m1.ics", "ann")
    assert [method(m) for m in await site.inbox("bob")] == ["REQUEST", "CANCEL"]


async def test_a_move_over_the_same_meeting_cancels_nothing(site: Site) -> None:
    """ann keeps a second copy of m1 in another calendar and moves it over the first."""
    await invite(site, "m1", attendees=("bob",))
    await site.request("MKCALENDAR", home("ann") + "work/", "ann")
    ans = await site.put("ann", home("ann") + "work/m1.ics", meeting("m1", summary="Again"))
    assert ans.status == 201
    ans = await site.request(
        "MOVE", home("ann") + "work/m1.ics", "ann", Destination=ANN_M1, Overwrite="T"
    )
    assert ans.status == 204, ans.body
    assert "CANCEL" not in [method(m) for m in await site.inbox("bob")]
    await site.request("DELETE", ANN_M1, "ann")
    assert method((await site.inbox("bob"))[-1]) == "CANCEL"


async def test_a_copy_of_a_meeting_is_refused(site: Site) -> None:
    """Two organizer's copies of one meeting would each speak for it (RFC 6638 §3.2.4.1:
    unique-scheduling-object-resource)."""
    await invite(site)
    await site.request("MKCALENDAR", home("ann") + "work/", "ann")
    before = snapshot(site.store)
    ans = await site.request("COPY", ANN_M1, "ann", Destination=home("ann") + "work/m1.ics")
    assert ans.status == 403
    assert b"unique-scheduling-object-resource" in ans.body
    assert snapshot(site.store) == before


async def test_deliveries_are_audited_and_do_not_loop(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="davserver.scheduling.audit"):
        await invite(site, attendees=("bob", "cat"))
    lines = [r.getMessage() for r in caplog.records if r.name == "davserver.scheduling.audit"]
    delivered = [line for line in lines if "delivered to" in line]
    assert len(delivered) == 2
    assert any("REQUEST m1 from mailto:ann@example.org delivered to bob" in x for x in lines)
    assert len(await site.inbox("bob")) == 1


async def test_the_owner_only_rule_stays_whole(site: Site) -> None:
    await invite(site)
    before = snapshot(site.store)
    cases = [
        ("PUT", inbox("ann") + "x.ics", "bob", meeting("x", organizer="bob", attendees=("ann",))),
        ("PUT", ANN_M1, "bob", meeting("m1")),
        ("DELETE", ANN_M1, "bob", b""),
        ("PROPFIND", inbox("ann"), "bob", b""),
        ("DELETE", inbox("bob"), "bob", b""),
        ("PUT", inbox("bob") + "x.ics", "bob", meeting("x", organizer="bob", attendees=("ann",))),
        ("POST", calendar("ann"), "ann", meeting("x")),
    ]
    for verb, path, user, body in cases:
        headers = {"Content_Type": ICS} if body else {}
        ans = await site.request(verb, path, user, body, **headers)
        assert ans.status in (403, 405), (verb, path, ans.status)
    ans = await site.request("COPY", ANN_M1, "ann", Destination=inbox("ann") + "copy.ics")
    assert ans.status == 403
    assert snapshot(site.store) == before
