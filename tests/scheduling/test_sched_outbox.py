"""POST to the outbox (RFC 6638 §5): free-busy of users here (their opaque calendars, their
answers), iTIP messages sent explicitly, and every refusal with its precondition, nothing
delivered and nothing changed."""

from __future__ import annotations

import pytest
from helpers import snapshot
from lxml import etree
from sched_data import (
    ICS,
    Site,
    calendar,
    home,
    inbox,
    meeting,
    outbox,
    unfolded,
)

C = "{urn:ietf:params:xml:ns:caldav}"
D = "{DAV:}"


def freebusy(
    organizer: str = "mailto:ann@example.org",
    attendees: tuple[str, ...] = ("mailto:bob@example.org",),
    *,
    method: str | None = "REQUEST",
    start: str = "20260105T000000Z",
    end: str = "20260112T000000Z",
) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    lines += ["BEGIN:VFREEBUSY", "UID:fb-1", "DTSTAMP:20260101T000000Z"]
    lines += [f"DTSTART:{start}", f"DTEND:{end}", f"ORGANIZER:{organizer}"]
    lines += [f"ATTENDEE:{a}" for a in attendees]
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def event(uid: str, start: str, end: str, *extra: str) -> bytes:
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN", "BEGIN:VEVENT", f"UID:{uid}",
        "DTSTAMP:20260101T000000Z", f"DTSTART:{start}", f"DTEND:{end}", *extra,
        "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def responses(body: bytes) -> dict[str, tuple[str, str]]:
    """recipient → (request-status, calendar-data) of a schedule-response."""
    root = etree.fromstring(body)
    assert root.tag == f"{C}schedule-response"
    out = {}
    for r in root.iter(f"{C}response"):
        who = r.find(f"{C}recipient").findtext(f"{D}href")
        out[who] = (r.findtext(f"{C}request-status"), r.findtext(f"{C}calendar-data") or "")
    return out


async def post(site: Site, user: str, data: bytes, content_type: str = ICS, box: str = ""):
    return await site.request("POST", box or outbox(user), user, data, Content_Type=content_type)


async def test_free_busy_of_a_user_here(site: Site) -> None:
    bob = calendar("bob")
    await site.put("bob", bob + "a.ics", event("a", "20260105T090000Z", "20260105T100000Z"))
    await site.put("bob", bob + "b.ics", event("b", "20260105T093000Z", "20260105T110000Z"))
    await site.put(
        "bob",
        bob + "t.ics",
        event("t", "20260106T090000Z", "20260106T100000Z", "TRANSP:TRANSPARENT"),
    )
    await site.put(
        "bob", bob + "x.ics", event("x", "20260107T090000Z", "20260107T100000Z", "STATUS:CANCELLED")
    )
    await site.put(
        "bob", bob + "y.ics", event("y", "20260108T090000Z", "20260108T100000Z", "STATUS:TENTATIVE")
    )
    await site.put("bob", bob + "z.ics", event("z", "20260201T090000Z", "20260201T100000Z"))
    # A second calendar counts; one made transparent for free-busy does not.
    await site.request("MKCALENDAR", home("bob") + "work/", "bob")
    await site.put(
        "bob", home("bob") + "work/w.ics", event("w", "20260109T120000Z", "20260109T130000Z")
    )
    await site.request("MKCALENDAR", home("bob") + "hobby/", "bob")
    await site.put(
        "bob", home("bob") + "hobby/h.ics", event("h", "20260110T120000Z", "20260110T130000Z")
    )
    body = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set>'
        "<D:prop><C:schedule-calendar-transp><C:transparent/></C:schedule-calendar-transp>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    ans = await site.request("PROPPATCH", home("bob") + "hobby/", "bob", body)
    assert ans.status == 207 and b"200 OK" in ans.body
    ans = await post(site, "ann", freebusy())
    assert ans.status == 200, ans.body
    assert ans.headers["Content-Type"].startswith("application/xml")
    [(status, data)] = responses(ans.body).values()
    assert status.startswith("2.0")
    lines = unfolded(data.encode())
    assert "METHOD:REPLY" in lines
    assert "UID:fb-1" in lines
    assert "ATTENDEE:mailto:bob@example.org" in lines
    assert periods(lines) == {
        ("BUSY", "20260105T090000Z/20260105T110000Z"),
        ("BUSY", "20260109T120000Z/20260109T130000Z"),
        ("BUSY-TENTATIVE", "20260108T090000Z/20260108T100000Z"),
    }


def periods(lines: list[str]) -> set[tuple[str, str]]:
    """(FBTYPE, period) of each FREEBUSY line's periods."""
    out = set()
    for line in lines:
        if line.startswith("FREEBUSY"):
            head, _, value = line.partition(":")
            kind = head.partition("FBTYPE=")[2].partition(";")[0]
            out.update((kind, p) for p in value.split(","))
    return out


async def test_free_busy_follows_the_answers_to_invitations(site: Site) -> None:
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1", attendees=("bob", "cat")))
    [(name, copy)] = await site.events("bob", "m1")
    declined = copy.replace(
        b"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.org",
        b"PARTSTAT=DECLINED;RSVP=TRUE:mailto:bob@example.org",
    )
    assert (await site.put("bob", calendar("bob") + name, declined)).status == 204
    ans = await post(
        site, "ann", freebusy(attendees=("mailto:bob@example.org", "mailto:cat@example.org"))
    )
    found = responses(ans.body)
    bob = [
        x for x in unfolded(found["mailto:bob@example.org"][1].encode()) if x.startswith("FREEBUSY")
    ]
    cat = [
        x for x in unfolded(found["mailto:cat@example.org"][1].encode()) if x.startswith("FREEBUSY")
    ]
    assert bob == []  # declined: free
    assert len(cat) == 1 and "BUSY-TENTATIVE" in cat[0]  # not answered yet


async def test_free_busy_of_someone_elsewhere_is_unknown(site: Site) -> None:
    ans = await post(site, "ann", freebusy(attendees=("mailto:zed@elsewhere.org",)))
    assert ans.status == 200
    assert responses(ans.body) == {"mailto:zed@elsewhere.org": ("3.7;Invalid calendar user", "")}


async def test_an_explicit_request_and_reply_are_delivered(site: Site) -> None:
    data = meeting("x1", attendees=("bob",)).replace(
        b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"
    )
    ans = await post(site, "ann", data)
    assert ans.status == 200, ans.body
    assert responses(ans.body) == {"mailto:bob@example.org": ("2.0;Success", "")}
    [message] = await site.inbox("bob")
    assert "METHOD:REQUEST" in unfolded(message)
    assert len(await site.events("bob", "x1")) == 1
    reply = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nMETHOD:REPLY\r\n"
        b"BEGIN:VEVENT\r\nUID:x1\r\nDTSTAMP:20260101T000000Z\r\n"
        b"ORGANIZER:mailto:ann@example.org\r\n"
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    ans = await post(site, "bob", reply)
    assert ans.status == 200, ans.body
    assert responses(ans.body) == {"mailto:ann@example.org": ("2.0;Success", "")}
    [got] = await site.inbox("ann")
    assert "METHOD:REPLY" in unfolded(got)


REPLY_AS_CAT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nMETHOD:REPLY\r\n"
    b"BEGIN:VEVENT\r\nUID:x1\r\nDTSTAMP:20260101T000000Z\r\nORGANIZER:mailto:ann@example.org\r\n"
    b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:cat@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize(
    ("user", "data", "content_type", "condition"),
    [
        ("ann", freebusy(attendees=()), ICS, "recipient-specified"),
        ("ann", freebusy(method=None), ICS, "valid-scheduling-message"),
        ("ann", freebusy(method="PUBLISH"), ICS, "valid-scheduling-message"),
        ("ann", freebusy(organizer="mailto:bob@example.org"), ICS, "organizer-allowed"),
        ("bob", REPLY_AS_CAT, ICS, "attendee-allowed"),
        ("ann", b"BEGIN:VCALENDAR\r\nnot iCalendar\r\n", ICS, "valid-calendar-data"),
        ("ann", freebusy(start="20260112T000000Z", end="20260105T000000Z"), ICS,
         "valid-scheduling-message"),
        ("ann", freebusy(), "application/xml", "supported-calendar-data"),
        ("ann", meeting("x2", attendees=()).replace(b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"),
         ICS, "recipient-specified"),
        ("ann", meeting("x3", organizer="bob").replace(b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"),
         ICS, "organizer-allowed"),
    ],
    ids=[
        "no recipient", "no METHOD", "a METHOD not taken", "organizer not the user",
        "attendee not the user", "not iCalendar", "an empty range", "not text/calendar",
        "a request to nobody", "a request of someone else's meeting",
    ],
)  # fmt: skip
async def test_refused_posts_deliver_nothing(
    site: Site, user: str, data: bytes, content_type: str, condition: str
) -> None:
    await site.inbox("bob")  # (creates nothing)
    before = snapshot(site.store)
    ans = await post(site, user, data, content_type)
    assert ans.status == 403, ans.body
    root = etree.fromstring(ans.body)
    assert [el.tag for el in root] == [f"{C}{condition}"]
    assert snapshot(site.store) == before


async def test_a_request_a_form_could_send_is_refused(site: Site) -> None:
    """An iTIP request sent as a form's type (which another site's page could make the
    user's browser send) delivers nothing; a client's text/calendar needs no more."""
    data = meeting("x4", attendees=("bob",)).replace(
        b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"
    )
    before = snapshot(site.store)
    ans = await post(site, "ann", data, "text/plain")
    assert ans.status == 403
    assert snapshot(site.store) == before
    assert (await post(site, "ann", data)).status == 200
    assert len(await site.inbox("bob")) == 1


async def test_another_users_outbox_is_refused(site: Site) -> None:
    before = snapshot(site.store)
    ans = await post(site, "bob", freebusy(), box=outbox("ann"))
    assert ans.status == 403
    assert snapshot(site.store) == before


async def test_post_elsewhere_is_not_allowed(site: Site) -> None:
    for path in (calendar("ann"), inbox("ann"), home("ann")):
        ans = await post(site, "ann", freebusy(), box=path)
        assert ans.status == 405, path


async def test_the_outbox_holds_nothing_and_takes_nothing(site: Site) -> None:
    ans = await site.request("PUT", outbox("ann") + "x.ics", "ann", meeting("x"), Content_Type=ICS)
    assert ans.status == 403
    body = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname>'
        "</D:prop></D:set></D:propertyupdate>"
    )
    before = snapshot(site.store)
    assert (await site.request("PROPPATCH", outbox("ann"), "ann", body)).status == 403
    assert await site.members("ann", outbox("ann")) == {}
    assert (await site.request("DELETE", outbox("ann"), "ann")).status == 403
    assert snapshot(site.store) == before
