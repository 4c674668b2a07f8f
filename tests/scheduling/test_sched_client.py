"""The caldav library's scheduling calls, end to end between two accounts on both
backends: ann invites bob (save_with_invites), bob finds the invitation in his inbox and
accepts it (accept_invite, which saves his copy with If-Schedule-Tag-Match), ann's copy
and inbox show the answer, ann asks bob's free-busy through her outbox
(freebusy_request), and ann's deletion reaches bob as a cancellation.

The library is synchronous: each step runs in a thread while the server answers on the
test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import caldav
from sched_data import PASSWORDS, Site, attendee_line, calendar, param, unfolded

T = TypeVar("T")
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
    "UID:lib-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
    "DTEND:20260105T110000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def run(step: Callable[[], T]) -> T:
    return await asyncio.to_thread(step)


def client(site: Site, user: str) -> caldav.DAVClient:
    url = str(site.client.make_url("/caldav/"))
    return caldav.DAVClient(url=url, username=user, password=PASSWORDS[user])


async def test_scheduling_with_the_caldav_library(site: Site) -> None:
    ann, bob = client(site, "ann"), client(site, "bob")
    ann_principal = await run(ann.principal)
    bob_principal = await run(bob.principal)
    assert await run(bob_principal.calendar_user_address_set) == [
        "mailto:bob@example.org",
        "mailto:robert@example.org",
        "/caldav/principals/bob/",
    ]

    # ann invites bob.
    ann_cal = await run(lambda: ann_principal.calendar(cal_id="calendar"))
    await run(
        lambda: ann_cal.save_with_invites(EVENT, attendees=[bob_principal.get_vcal_address()])
    )

    # bob's inbox holds the invitation; his calendar a copy.
    bob_inbox = await run(bob_principal.schedule_inbox)
    items = await run(lambda: list(bob_inbox.get_items()))
    assert len(items) == 1
    invitation = items[0]
    await run(lambda: invitation.load())
    assert await run(invitation.is_invite_request)
    copies = await run(
        lambda: [c for c in bob_principal.calendars() if c.url.path.endswith("/calendar/")]
    )
    copy = await run(lambda: copies[0].event_by_uid("lib-1"))
    assert copy is not None

    # bob accepts.
    await run(invitation.accept_invite)
    mine = await site.events("bob", "lib-1")
    assert len(mine) == 1  # his copy was updated, not a second one made
    assert param(attendee_line(mine[0][1], "bob"), "PARTSTAT") == "ACCEPTED"

    # ann's copy knows, and her inbox has the reply.
    stored = await site.get("ann", calendar("ann") + "lib-1.ics")
    assert param(attendee_line(stored, "bob"), "PARTSTAT") == "ACCEPTED"
    ann_inbox = await run(ann_principal.schedule_inbox)
    replies = await run(lambda: list(ann_inbox.get_items()))
    assert len(replies) == 1
    await run(lambda: replies[0].load())
    assert await run(replies[0].is_invite_reply)

    # ann asks bob's free-busy.
    found = await run(
        lambda: ann_principal.freebusy_request(
            datetime(2026, 1, 5, tzinfo=UTC),
            datetime(2026, 1, 6, tzinfo=UTC),
            [bob_principal.get_vcal_address()],
        )
    )
    assert found["errors"] == {}
    answer = found["mailto:bob@example.org"]
    lines = unfolded(answer.data.encode())
    assert "METHOD:REPLY" in lines
    assert any(x.endswith(":20260105T100000Z/20260105T110000Z") for x in lines), lines

    # ann deletes the meeting: bob hears of it.
    event = await run(lambda: ann_cal.event_by_uid("lib-1"))
    await run(event.delete)
    messages = await run(lambda: list(bob_inbox.get_items()))
    kinds = []
    for message in messages:
        await run(message.load)
        kinds.append(next(x for x in unfolded(message.data.encode()) if x.startswith("METHOD:")))
    assert sorted(kinds) == ["METHOD:CANCEL", "METHOD:REQUEST"]
    [(_, cancelled)] = await site.events("bob", "lib-1")
    assert "STATUS:CANCELLED" in unfolded(cancelled)
