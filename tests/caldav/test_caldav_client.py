"""End to end with the caldav client library, on the filesystem and on the git backend:
discovery, calendars, saving and editing events and todos, multiget, sync tokens after
add/change/delete, ctag changes, deletion; on git, each change is one commit and a push
from outside is seen on the next request.

The library is synchronous: each step runs in a thread while the server answers on the
test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import caldav
import pytest
from caldav.elements import cdav, dav
from caldav_data import (
    EVENTS,
    TASKS,
    Cal,
    MakeCal,
    event,
    todo,
)
from gitrepo import commits, files, git, messages

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

T = TypeVar("T")


@pytest.fixture(params=["filesystem", "git"])
async def anycal(request: pytest.FixtureRequest, make_cal: MakeCal) -> Cal:
    """A server whose calendars live on the backend named by the parameter."""
    return await make_cal(backend=request.param)


class Session:
    """One caldav library client, driven from a thread."""

    def __init__(self, cal: Cal) -> None:
        self.cal = cal
        self.client = caldav.DAVClient(url=cal.url)

    async def run(self, step: Callable[[], T]) -> T:
        return await asyncio.to_thread(step)

    def calendar(self, cal_id: str) -> Any:
        return self.client.principal().calendar(cal_id=cal_id)


def stored(cal: Cal) -> dict[str, bytes]:
    """The items of the events and tasks calendars as the backend holds them."""
    if cal.backend == "git":
        return {
            name: data
            for name, data in files(cal.store).items()
            if name.endswith(".ics") and name.startswith("user/")
        }
    out = {}
    for calendar in ("calendar", "tasks"):
        for path in cal.folder(calendar).glob("*.ics"):
            out[f"user/{calendar}/{path.name}"] = path.read_bytes()
    return out


class Commits:
    """Checks that each change made exactly one commit (git backend only)."""

    def __init__(self, cal: Cal) -> None:
        self.cal = cal
        self.count = len(commits(cal.store)) if cal.backend == "git" else 0

    def expect(self, new: int) -> None:
        if self.cal.backend != "git":
            return
        now = len(commits(self.cal.store))
        assert now - self.count == new, messages(self.cal.store)[-(now - self.count) :]
        self.count = now


async def test_end_to_end_with_the_caldav_library(anycal: Cal, tmp_path: Path) -> None:
    cal = anycal
    s = Session(cal)
    base = cal.url.rstrip("/")

    # Discovery from the bare URL, both default calendars.
    names = await s.run(
        lambda: sorted(c.get_display_name() for c in s.client.principal().calendars())
    )
    assert names == ["Calendar", "Tasks"]
    history = Commits(cal)
    events, tasks = await s.run(lambda: (s.calendar("calendar"), s.calendar("tasks")))
    tokens = [await cal.ctag()]

    async def moved() -> None:
        now = await cal.ctag()
        assert now != tokens[-1]
        tokens.append(now)

    # Save an event and a todo.
    lunch = await s.run(lambda: events.add_event(event("lunch@x", "Lunch").decode()))
    history.expect(1)
    await moved()
    milk = await s.run(lambda: tasks.add_todo(todo("milk@x", "Buy milk").decode()))
    history.expect(1)
    assert str(lunch.url).startswith(base + EVENTS)
    assert str(milk.url).startswith(base + TASKS)
    on_disk = stored(cal)
    assert len(on_disk) == 2
    assert any(b"SUMMARY:Lunch" in data for data in on_disk.values())

    # Initial sync.
    first = await s.run(lambda: events.objects_by_sync_token(load_objects=True))
    assert [str(o.url) for o in first] == [str(lunch.url)]
    assert first.sync_token == tokens[-1][1]
    assert "Lunch" in first.objects[0].data

    # Edit the event, add another, edit the todo.
    def edit() -> Any:
        lunch.load()
        lunch.icalendar_component["SUMMARY"] = "Long lunch"
        lunch.save()
        return events.add_event(
            event("dinner@x", "Dinner", start="20260105T190000Z", end="20260105T210000Z").decode()
        )

    dinner = await s.run(edit)
    history.expect(2)
    await moved()

    def edit_todo() -> None:
        milk.load()
        milk.icalendar_component["STATUS"] = "COMPLETED"
        milk.save()

    await s.run(edit_todo)
    history.expect(1)
    assert (await cal.ctag()) == tokens[-1]  # the events calendar did not change

    # Incremental sync sees both.
    updated, deleted = await s.run(first.sync)
    assert sorted(str(o.url) for o in updated) == sorted([str(lunch.url), str(dinner.url)])
    assert list(deleted) == []
    assert {str(o.url) for o in first} == {str(lunch.url), str(dinner.url)}

    # Multiget of both, as the library does it.
    got = await s.run(lambda: events.multiget([lunch.url, dinner.url]))
    summaries = sorted(str(o.icalendar_component["SUMMARY"]) for o in got)
    assert summaries == ["Dinner", "Long lunch"]

    # Search, events() and todos().
    assert len(await s.run(events.events)) == 2
    assert await s.run(tasks.todos) == []  # the only todo is completed
    done = await s.run(lambda: tasks.todos(include_completed=True))
    assert [str(t.icalendar_component["STATUS"]) for t in done] == ["COMPLETED"]

    # Delete: the sync reports it gone, the ctag moves, the store no longer has it.
    await s.run(dinner.delete)
    history.expect(1)
    await moved()
    updated, deleted = await s.run(first.sync)
    assert [str(o.url) for o in deleted] == [str(dinner.url)]
    assert list(updated) == []
    assert not any(b"Dinner" in data for data in stored(cal).values())

    # A calendar made with the library, then deleted.
    made = await s.run(lambda: s.client.principal().make_calendar(name="Trips", cal_id="trips"))
    history.expect(1)
    await s.run(lambda: made.add_event(event("trip@x", "Trip").decode()))
    history.expect(1)
    await s.run(made.delete)
    history.expect(1)
    names = await s.run(
        lambda: sorted(c.get_display_name() for c in s.client.principal().calendars())
    )
    assert names == ["Calendar", "Tasks"]
    if cal.backend == "git":
        assert messages(cal.store)[-1].startswith("DELETE")


async def test_a_git_push_is_seen_on_the_next_request(make_cal: MakeCal, tmp_path: Path) -> None:
    cal = await make_cal(backend="git")
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    ctag, token = await cal.ctag()
    clone = tmp_path / "clone"
    await asyncio.to_thread(git, tmp_path, "clone", "-q", str(cal.store), str(clone))
    (clone / "user" / "calendar" / "pushed.ics").write_bytes(event("pushed", "From a push"))
    (clone / "user" / "calendar" / "a.ics").unlink()

    def push() -> None:
        git(clone, "add", "-A")
        git(clone, "commit", "-q", "-m", "from outside")
        git(clone, "push", "-q", "origin", "HEAD:main")

    await asyncio.to_thread(push)
    assert await cal.ctag() != (ctag, token)
    ms = await cal.sync(token=token)
    assert {r.href: r.status for r in ms.responses} == {
        f"{EVENTS}pushed.ics": None,
        f"{EVENTS}a.ics": 404,
    }
    got = await cal.multiget(EVENTS, [f"{EVENTS}pushed.ics"])
    assert "From a push" in got.responses[0].value("{urn:ietf:params:xml:ns:caldav}calendar-data")
    # The pushed UID is known: another item may not take it.
    assert (await cal.put(f"{EVENTS}dup.ics", event("pushed")))[0] == 409


async def test_git_refusals_make_no_commit(make_cal: MakeCal) -> None:
    cal = await make_cal(backend="git")
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    before = commits(cal.store)
    await cal.put(f"{EVENTS}b.ics", b"garbage")
    await cal.put(f"{EVENTS}c.ics", todo("t"))
    await cal.put(f"{EVENTS}d.ics", event("a"))
    await cal.request("MKCALENDAR", "/caldav/calendars/user/calendar/x/")
    assert commits(cal.store) == before


def test_element_names_used_above_exist() -> None:
    """Guard against a caldav release renaming what the tests rely on."""
    assert dav.GetEtag.tag == "{DAV:}getetag"
    assert cdav.CalendarData.tag == "{urn:ietf:params:xml:ns:caldav}calendar-data"
