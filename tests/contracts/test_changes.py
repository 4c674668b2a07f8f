"""The change sequence of each mount (ChangeLog, davserver/state/changelog.py) and the
change-event bus (EventBus, davserver/events/bus.py), as every implementation keeps them.

Each log test runs once per log in ``LOGS``, each bus test once per bus in ``BUSES``
(over the log of ``LOGS``): a new implementation is one more line. A log is opened at a
place (a folder here) with the number of changes it keeps per mount, so that opening the
same place again finds what was recorded; two logs, or two buses, open at one place act as
two processes sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from davserver.backends.base import Changed
from opening import Opened, Place, in_database, place_for

from davserver.events.bus import ChangeEvent, EventBus, LocalBus
from davserver.state.changelog import (
    KEEP,
    ChangeLog,
    Group,
    GroupCommit,
    LoggedChange,
    SQLiteChangeLog,
)
from davserver.state.generations import FileGenerations, Generations
from davserver.state.postgres.changelog import PgChangeLog
from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.generations import PgGenerations


def sqlite_log(place: Place, keep: int) -> ChangeLog:
    """The SQLite log in the state folder."""
    return SQLiteChangeLog(place.folder / "changes.sqlite3", keep)


@in_database
def postgres_log(place: Place, keep: int) -> ChangeLog:
    """The log several hosts share."""
    return PgChangeLog(PgDatabase(place.url), keep)


def file_generations(place: Place) -> Generations:
    """What the processes of one host hear of each other: the generations file."""
    return FileGenerations(place.folder / "generations")


def notifications(place: Place) -> Generations:
    """What the processes of several hosts hear of each other: the database's
    notifications."""
    return PgGenerations(PgDatabase(place.url))


@contextlib.asynccontextmanager
async def bus_at(place: Place, log: ChangeLog) -> AsyncIterator[EventBus]:
    """The bus of one process, hearing of the others at ``place`` the way its log's
    implementation goes with."""
    generations = notifications(place) if isinstance(log, PgChangeLog) else file_generations(place)
    await generations.open()
    bus = LocalBus(log, generations)
    try:
        await bus.open()
        yield bus
    finally:
        await generations.close()


LOGS = [
    pytest.param(sqlite_log, id="sqlite"),
    pytest.param(postgres_log, id="postgres"),
]
BUSES = [
    pytest.param(bus_at, id="local"),
]

OpenLog = Opened[ChangeLog]


def changed(path: str, kind: str = "modified", **fields: object) -> Changed:
    return Changed(path, kind, False, "alice", **fields)


@pytest.fixture(params=LOGS)
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenLog]:
    """Opens the log at one place (keeping ``keep`` changes per mount); every log opened
    is closed at the end."""

    here = place_for(request, tmp_path)

    def open_at(keep: int = KEEP, place: Place = here) -> ChangeLog:
        return request.param(place, keep)

    opened = Opened(open_at, here)
    yield opened
    await opened.close_all()


# -- the log -----------------------------------------------------------------------------


async def test_a_new_log_knows_no_change(open_log: OpenLog) -> None:
    log = open_log()
    assert (await log.newest("/m"), await log.oldest("/m")) == (0, 0)
    assert await log.since("/m", 0, 100) == []
    epoch = await log.epoch()
    assert isinstance(epoch, str) and epoch


async def test_changes_are_numbered_in_order_and_kept(open_log: OpenLog) -> None:
    log = open_log()
    first = await log.append("/m", [changed("a", "created", new_etag='"1"')])
    more = await log.append(
        "/m", [changed("a", "modified", new_etag='"2"'), changed("a", "moved", to="b")]
    )
    numbers = first + more
    assert len(numbers) == 3 and numbers == sorted(numbers) and numbers[0] > 0
    assert len(set(numbers)) == 3
    assert await log.newest("/m") == numbers[-1]
    logged = await log.since("/m", 0, 100)
    assert [(c.seq, c.path, c.kind, c.to, c.etag) for c in logged] == [
        (numbers[0], "a", "created", None, '"1"'),
        (numbers[1], "a", "modified", None, '"2"'),
        (numbers[2], "a", "moved", "b", None),
    ]
    assert [c.seq for c in await log.since("/m", numbers[0], 100)] == numbers[1:]
    assert [c.seq for c in await log.since("/m", 0, 2)] == numbers[:2]
    assert await log.since("/m", numbers[-1], 100) == []


async def test_each_mount_has_its_own_sequence(open_log: OpenLog) -> None:
    log = open_log()
    a1 = await log.append("/a", [changed("x")])
    b1 = await log.append("/b", [changed("y")])
    a2 = await log.append("/a", [changed("z")])
    assert a2[0] > a1[0]
    assert [c.path for c in await log.since("/a", 0, 100)] == ["x", "z"]
    assert [c.path for c in await log.since("/b", 0, 100)] == ["y"]
    assert (await log.newest("/a"), await log.newest("/b")) == (a2[0], b1[0])
    assert await log.newest("/c") == 0


async def test_the_log_outlives_its_closing(open_log: OpenLog) -> None:
    log = open_log()
    numbers = await log.append("/m", [changed("a"), changed("b")])
    epoch = await log.epoch()
    await open_log.close(log)
    again = open_log()
    assert await again.epoch() == epoch
    assert await again.newest("/m") == numbers[-1]
    assert [c.path for c in await again.since("/m", 0, 100)] == ["a", "b"]
    later = await again.append("/m", [changed("c")])
    assert later[0] > numbers[-1]


async def test_another_log_has_another_epoch(open_log: OpenLog) -> None:
    assert open_log.place is not None
    one, other = open_log(), open_log(place=open_log.place.elsewhere())
    await one.append("/m", [changed("a")])
    await other.append("/m", [changed("a")])
    assert await one.epoch() != await other.epoch()


async def test_the_log_keeps_the_latest_changes_of_each_mount(open_log: OpenLog) -> None:
    log = open_log(keep=100)
    await log.append("/quiet", [changed("q")])
    numbers: list[int] = []
    for i in range(30):
        numbers += await log.append("/busy", [changed(f"f{i}-{j}") for j in range(50)])
    oldest = await log.oldest("/busy")
    assert numbers[0] <= oldest < numbers[-1]
    kept = await log.since("/busy", oldest, 10_000)
    assert [c.seq for c in kept] == [n for n in numbers if n > oldest]
    assert len(kept) >= 100
    assert await log.oldest("/quiet") == 0
    assert [c.path for c in await log.since("/quiet", 0, 10)] == ["q"]


async def test_concurrent_appends_get_distinct_numbers(open_log: OpenLog) -> None:
    log = open_log()
    results = await asyncio.gather(*(log.append("/m", [changed(f"p{i}")]) for i in range(20)))
    numbers = [n for batch in results for n in batch]
    assert len(set(numbers)) == 20
    assert sorted(c.seq for c in await log.since("/m", 0, 100)) == sorted(numbers)


async def test_appends_that_wait_for_company_are_numbered_alike(open_log: OpenLog) -> None:
    """A log told the process is busy numbers and keeps what it is given as one that is
    not: waiting for company changes when a commit happens, never what it records."""
    log = open_log()
    log.wait_for_company(lambda: True)
    first = await log.append("/m", [changed("a")])
    results = await asyncio.gather(*(log.append("/m", [changed(f"p{i}")]) for i in range(5)))
    later = await log.append("/n", [changed("b"), changed("c")])
    numbers = [*first, *(n for batch in results for n in batch)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 6
    assert [c.path for c in await log.since("/m", 0, 100)] == ["a", *(f"p{i}" for i in range(5))]
    assert [c.path for c in await log.since("/n", 0, 100)] == ["b", "c"]
    assert later[0] < later[1]


class Commits:
    """A commit function for GroupCommit that records the groups it is given."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.seq = 0

    async def __call__(self, group: Group, prune: bool) -> list[list[int]]:
        self.groups.append([ch.path for _, changes in group for ch in changes])
        out = []
        for _, changes in group:
            out.append(list(range(self.seq + 1, self.seq + 1 + len(changes))))
            self.seq += len(changes)
        return out


async def appends_a_moment_apart(groups: GroupCommit, names: list[str]) -> None:
    """Appends that come one after another, each a little after the one before
    (less than the wait), as the writes of a busy server do."""

    async def append_later(i: int, name: str) -> None:
        await asyncio.sleep(i * 0.0001)
        await groups.append("/m", [changed(name)])

    await asyncio.gather(*(append_later(i, name) for i, name in enumerate(names)))


async def test_a_busy_process_commits_appends_that_come_close_together_at_once() -> None:
    commits = Commits()
    groups = GroupCommit(commits, wait=0.05)
    groups.busy = lambda: True
    await groups.append("/m", [changed("first")])  # no commit before it: at once
    await appends_a_moment_apart(groups, ["a", "b", "c"])
    assert commits.groups == [["first"], ["a", "b", "c"]]


async def test_appends_do_not_wait_when_nothing_else_is_under_way() -> None:
    commits = Commits()
    groups = GroupCommit(commits, wait=0.05)
    await groups.append("/m", [changed("first")])
    loop = asyncio.get_running_loop()
    started = loop.time()
    for name in ("a", "b", "c"):
        await groups.append("/m", [changed(name)])
    assert commits.groups == [["first"], ["a"], ["b"], ["c"]]
    assert loop.time() - started < 0.05


# -- the bus -----------------------------------------------------------------------------


MakeBus = Callable[[], Awaitable[tuple[EventBus, ChangeLog]]]


@pytest.fixture(params=BUSES)
async def make_bus(request: pytest.FixtureRequest, open_log: OpenLog) -> AsyncIterator[MakeBus]:
    """Opens a bus, over a log of its own, at one place: each call is another process."""
    async with contextlib.AsyncExitStack() as stack:

        async def make() -> tuple[EventBus, ChangeLog]:
            log = open_log()
            assert open_log.place is not None
            bus = await stack.enter_async_context(request.param(open_log.place, log))
            return bus, log

        yield make


@pytest.fixture
async def bus_and_log(make_bus: MakeBus) -> tuple[EventBus, ChangeLog]:
    return await make_bus()


class Recorder:
    """A subscriber that keeps what it is given (and fails when told to)."""

    def __init__(self, name: str, order: list[str], fail: bool = False) -> None:
        self.name = name
        self.order = order
        self.fail = fail
        self.events: list[ChangeEvent] = []

    async def __call__(self, events: Sequence[ChangeEvent]) -> None:
        self.order.append(self.name)
        self.events.extend(events)
        if self.fail:
            raise RuntimeError(f"{self.name} fails")


async def test_events_are_numbered_in_the_mounts_sequence(
    bus_and_log: tuple[EventBus, ChangeLog],
) -> None:
    bus, log = bus_and_log
    note = object()
    events = await bus.publish(
        "/m",
        [
            changed("a", "created", new_etag='"1"', note=note),
            changed("a", "moved", to="b", old_etag='"1"', new_etag='"1"'),
        ],
    )
    assert [(e.mount, e.path, e.kind, e.to) for e in events] == [
        ("/m", "a", "created", None),
        ("/m", "a", "moved", "b"),
    ]
    assert events[0].seq < events[1].seq == await log.newest("/m")
    assert [c.seq for c in await log.since("/m", 0, 10)] == [e.seq for e in events]
    assert (events[0].note, events[0].new_etag, events[0].author) == (note, '"1"', "alice")
    assert (events[1].old_etag, events[1].is_collection, events[1].outside) == ('"1"', False, False)
    later = await bus.publish("/m", [changed("c")])
    assert later[0].seq > events[1].seq


async def test_subscribers_get_their_mounts_events_in_order(
    bus_and_log: tuple[EventBus, ChangeLog],
) -> None:
    bus, _ = bus_and_log
    order: list[str] = []
    first, second, other = Recorder("first", order), Recorder("second", order), Recorder("o", [])
    bus.subscribe("/m", first)
    bus.subscribe("/m", second)
    bus.subscribe("/other", other)
    one = await bus.publish("/m", [changed("a"), changed("b")])
    two = await bus.publish("/m", [changed("c")])
    assert first.events == second.events == one + two
    assert order == ["first", "second", "first", "second"]
    assert other.events == []
    elsewhere = await bus.publish("/other", [changed("z")])
    assert other.events == elsewhere and len(first.events) == 3


async def test_a_failing_subscriber_keeps_no_other_from_its_events(
    bus_and_log: tuple[EventBus, ChangeLog],
) -> None:
    bus, log = bus_and_log
    order: list[str] = []
    before, failing, after = (
        Recorder("before", order),
        Recorder("failing", order, fail=True),
        Recorder("after", order),
    )
    for subscriber in (before, failing, after):
        bus.subscribe("/m", subscriber)
    with pytest.raises(RuntimeError, match="failing fails"):
        await bus.publish("/m", [changed("a")])
    assert order == ["before", "failing", "after"]
    assert len(before.events) == len(after.events) == 1
    assert await log.newest("/m") == after.events[0].seq  # the change is numbered all the same
    failing.fail = False
    events = await bus.publish("/m", [changed("b")])
    assert after.events[1:] == events


# -- several processes -------------------------------------------------------------------


async def test_logs_at_one_place_share_one_sequence(open_log: OpenLog) -> None:
    one, other = open_log(), open_log()
    assert one.origin and other.origin and one.origin != other.origin
    mine = await one.append("/a", [changed("x", "created", new_etag='"1"')])
    theirs = await other.append("/b", [Changed("dir", "created", True, "bob")])
    more = await one.append("/a", [changed("y")])
    assert mine[0] < theirs[0] < more[0]
    assert await other.newest_all() == await one.newest_all() == more[0]
    logged = await other.since_all(0, 100)
    assert [(c.seq, c.mount, c.path, c.origin) for c in logged] == [
        (mine[0], "/a", "x", one.origin),
        (theirs[0], "/b", "dir", other.origin),
        (more[0], "/a", "y", one.origin),
    ]
    assert (logged[0].author, logged[0].etag, logged[0].collection) == ("alice", '"1"', False)
    assert (logged[1].author, logged[1].collection) == ("bob", True)
    assert [c.seq for c in await one.since_all(mine[0], 1)] == theirs
    assert await one.epoch() == await other.epoch()


class Remote(Recorder):
    """A remote subscriber (what another process made)."""


async def test_a_bus_hands_other_processes_changes_to_its_remote_subscribers(
    make_bus: MakeBus,
) -> None:
    (mine, _), (theirs, _) = await make_bus(), await make_bus()
    order: list[str] = []
    remote, local, elsewhere = Remote("remote", order), Recorder("local", order), Remote("e", [])
    mine.subscribe("/m", remote, remote=True)
    mine.subscribe("/m", local)
    mine.subscribe("/other", elsewhere, remote=True)
    made = await theirs.publish(
        "/m",
        [
            changed("a", "created", new_etag='"1"', note="only here"),
            Changed("a", "moved", False, "alice", to="b", new_etag='"1"'),
        ],
    )
    assert remote.events == [] and local.events == []  # nothing until the bus catches up
    await mine.catch_up(settle=True)
    assert [
        (e.mount, e.seq, e.path, e.kind, e.to, e.new_etag, e.author) for e in remote.events
    ] == [(e.mount, e.seq, e.path, e.kind, e.to, e.new_etag, e.author) for e in made]
    assert all(e.note is None and e.resource is None for e in remote.events)  # not here
    assert local.events == [] and elsewhere.events == []
    await mine.catch_up(settle=True)
    assert len(remote.events) == 2  # each change once


async def test_a_bus_does_not_hand_its_own_changes_to_its_remote_subscribers(
    make_bus: MakeBus,
) -> None:
    (mine, _), (theirs, _) = await make_bus(), await make_bus()
    remote, local = Remote("remote", []), Recorder("local", [])
    mine.subscribe("/m", remote, remote=True)
    mine.subscribe("/m", local)
    own = await mine.publish("/m", [changed("mine")])
    other = await theirs.publish("/m", [changed("theirs")])
    await mine.catch_up(settle=True)
    assert local.events == own
    assert [e.path for e in remote.events] == ["theirs"] and remote.events[0].seq == other[0].seq


async def test_a_bus_opened_later_hands_on_only_what_comes_after(make_bus: MakeBus) -> None:
    theirs, _ = await make_bus()
    await theirs.publish("/m", [changed("before")])
    mine, _ = await make_bus()
    remote = Remote("remote", [])
    mine.subscribe("/m", remote, remote=True)
    await mine.catch_up(settle=True)
    assert remote.events == []
    await theirs.publish("/m", [changed("after")])
    await mine.catch_up(settle=True)
    assert [e.path for e in remote.events] == ["after"]


async def test_a_bus_without_remote_subscribers_reads_no_log_yet_owes_a_later_one(
    make_bus: MakeBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mine, log), (theirs, _) = await make_bus(), await make_bus()
    reads: list[int] = []
    since_all = log.since_all

    async def counted(seq: int, limit: int) -> list[LoggedChange]:
        reads.append(seq)
        return await since_all(seq, limit)

    monkeypatch.setattr(log, "since_all", counted)
    await theirs.publish("/m", [changed("unseen")])
    await mine.catch_up(settle=True)
    await mine.catch_up()
    assert reads == []  # nobody here is owed their changes: a request costs no read
    remote = Remote("remote", [])
    mine.subscribe("/m", remote, remote=True)
    await mine.catch_up(settle=True)
    assert [e.path for e in remote.events] == ["unseen"] and len(reads) == 1


async def test_catching_up_hands_on_every_change_in_order(make_bus: MakeBus) -> None:
    (mine, _), (theirs, _) = await make_bus(), await make_bus()
    remote = Remote("remote", [])
    mine.subscribe("/m", remote, remote=True)
    made = await theirs.publish("/m", [changed(f"f{i}") for i in range(2500)])
    await mine.catch_up(settle=True)
    assert [e.seq for e in remote.events] == [e.seq for e in made]


async def test_a_failing_remote_subscriber_keeps_no_other_from_its_events(
    make_bus: MakeBus,
) -> None:
    (mine, _), (theirs, _) = await make_bus(), await make_bus()
    order: list[str] = []
    failing, after = Remote("failing", order, fail=True), Remote("after", order)
    mine.subscribe("/m", failing, remote=True)
    mine.subscribe("/m", after, remote=True)
    await theirs.publish("/m", [changed("a")])
    await mine.catch_up(settle=True)
    assert order == ["failing", "after"] and [e.path for e in after.events] == ["a"]
