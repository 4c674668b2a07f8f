"""COPY and MOVE in the CalDAV tree: RFC 4791's preconditions hold for them as for PUT
(§5.3.2.1: supported-calendar-component, no-uid-conflict; §5.3.1.1:
calendar-collection-location-ok), refusals store nothing, and moves show in both
calendars' sync."""

from __future__ import annotations

import pytest
from caldav_data import (
    EVENTS,
    HOME,
    TASKS,
    C,
    Cal,
    D,
    error_condition,
    event,
    todo,
)
from helpers import snapshot
from lxml import etree

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures


async def move(cal: Cal, src: str, dst: str, method: str = "MOVE", **headers: str):
    return await cal.request(method, src, Destination=str(cal.client.make_url(dst)), **headers)


async def test_move_an_event_to_another_calendar(cal: Cal) -> None:
    await cal.request("MKCALENDAR", f"{HOME}work/")
    await cal.put_ok(f"{EVENTS}e.ics", event("e1"))
    old_token = (await cal.sync(EVENTS)).sync_token
    work_token = (await cal.sync(f"{HOME}work/")).sync_token
    status, _, _ = await move(cal, f"{EVENTS}e.ics", f"{HOME}work/e.ics")
    assert status == 201
    assert not (cal.folder() / "e.ics").exists()
    assert (cal.folder("work") / "e.ics").read_bytes() == event("e1")
    gone = await cal.sync(EVENTS, old_token)
    assert [(r.href, r.status) for r in gone.responses] == [(f"{EVENTS}e.ics", 404)]
    came = await cal.sync(f"{HOME}work/", work_token)
    assert [r.href for r in came.responses] == [f"{HOME}work/e.ics"]
    # The UID moved with it: free in the old calendar, taken in the new one.
    assert (await cal.put(f"{EVENTS}again.ics", event("e1")))[0] == 201
    assert (await cal.put(f"{HOME}work/again.ics", event("e1")))[0] == 409


async def test_rename_within_a_calendar(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}old.ics", event("e1"))
    status, _, _ = await move(cal, f"{EVENTS}old.ics", f"{EVENTS}new.ics")
    assert status == 201
    ms = await cal.multiget(EVENTS, [f"{EVENTS}new.ics", f"{EVENTS}old.ics"])
    assert ms[f"{EVENTS}new.ics"].value(f"{D}getetag")
    assert ms[f"{EVENTS}old.ics"].status == 404


async def refused(cal: Cal, src: str, dst: str, method: str, status: int, condition: str | None):
    before = snapshot(cal.store)
    tokens = await cal.ctag(EVENTS), await cal.ctag(TASKS)
    got, _, body = await move(cal, src, dst, method)
    assert got == status, body
    if condition:
        assert error_condition(body) == [condition]
    assert snapshot(cal.store) == before
    assert (await cal.ctag(EVENTS), await cal.ctag(TASKS)) == tokens
    return body


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_a_todo_cannot_go_into_the_events_calendar(cal: Cal, method: str) -> None:
    await cal.put_ok(f"{TASKS}t.ics", todo("t1"))
    condition = f"{C}supported-calendar-component"
    await refused(cal, f"{TASKS}t.ics", f"{EVENTS}t.ics", method, 403, condition)


async def test_a_copy_into_the_same_calendar_is_a_uid_conflict(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("e1"))
    body = await refused(
        cal, f"{EVENTS}a.ics", f"{EVENTS}b.ics", "COPY", 409, f"{C}no-uid-conflict"
    )
    assert [h.text for h in etree.fromstring(body).iter(f"{D}href")] == [f"{EVENTS}a.ics"]


@pytest.mark.parametrize(("method", "expected"), [("COPY", 409), ("MOVE", 403)])
async def test_overwriting_an_item_of_another_uid_is_a_uid_conflict(
    cal: Cal, method: str, expected: int
) -> None:
    """A COPY onto an object of another UID conflicts with the calendar's state (409); a
    MOVE that would replace it from another calendar is refused outright (403)."""
    await cal.request("MKCALENDAR", f"{HOME}work/")
    await cal.put_ok(f"{HOME}work/a.ics", event("e1"))
    await cal.put_ok(f"{EVENTS}a.ics", event("e2"))
    before = snapshot(cal.store)
    status, _, body = await move(cal, f"{HOME}work/a.ics", f"{EVENTS}a.ics", method)
    assert status == expected
    assert error_condition(body) == [f"{C}no-uid-conflict"]
    assert snapshot(cal.store) == before


async def test_copy_over_the_same_uid_elsewhere_replaces_it(cal: Cal) -> None:
    await cal.request("MKCALENDAR", f"{HOME}work/")
    await cal.put_ok(f"{HOME}work/a.ics", event("e1", "Newer"))
    await cal.put_ok(f"{EVENTS}a.ics", event("e1", "Older"))
    status, _, _ = await move(cal, f"{HOME}work/a.ics", f"{EVENTS}a.ics", "COPY")
    assert status == 204
    assert (cal.folder() / "a.ics").read_bytes() == event("e1", "Newer")


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
@pytest.mark.parametrize("dst", [f"{HOME}loose.ics", "/caldav/loose.ics", f"{EVENTS}sub/x.ics"])
async def test_an_item_cannot_leave_the_calendars(cal: Cal, method: str, dst: str) -> None:
    await cal.put_ok(f"{EVENTS}e.ics", event("e1"))
    await refused(cal, f"{EVENTS}e.ics", dst, method, 403, None)


async def test_a_broken_file_is_not_copied_into_a_calendar(cal: Cal) -> None:
    await cal.request("MKCALENDAR", f"{HOME}work/")
    (cal.folder() / "broken.ics").write_bytes(b"not a calendar")
    await refused(
        cal,
        f"{EVENTS}broken.ics",
        f"{HOME}work/broken.ics",
        "COPY",
        403,
        f"{C}valid-calendar-object-resource",
    )


async def test_copy_a_whole_calendar_within_the_home(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    await cal.put_ok(f"{EVENTS}b.ics", event("b"))
    status, _, _ = await move(cal, EVENTS, f"{HOME}copy/", "COPY")
    assert status == 201
    ms = await cal.sync(f"{HOME}copy/")
    assert {r.href for r in ms.responses} == {f"{HOME}copy/a.ics", f"{HOME}copy/b.ics"}
    r = (await cal.propfind(f"{HOME}copy/", f"{D}resourcetype", f"{D}displayname")).responses[0]
    assert r.ok(f"{D}resourcetype").find(f"{C}calendar") is not None
    assert r.value(f"{D}displayname") == "Calendar"


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
@pytest.mark.parametrize("dst", [f"{EVENTS}inner/", "/caldav/elsewhere/", "/caldav/principals/x/"])
async def test_a_calendar_goes_only_into_a_home(cal: Cal, method: str, dst: str) -> None:
    await cal.put_ok(f"{TASKS}t.ics", todo("t"))
    await refused(cal, TASKS, dst, method, 403, f"{C}calendar-collection-location-ok")
