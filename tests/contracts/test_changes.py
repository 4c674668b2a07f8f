"""The change sequence of each mount (ChangeLog, davserver/state/changelog.py) and the
change-event bus (EventBus, davserver/events/bus.py), as every implementation keeps them.

Each log test runs once per log in ``LOGS``, each bus test once per bus in ``BUSES``
(over the first log): a new implementation is one more line. A log is opened at a place
(a folder here) with the number of changes it keeps per mount, so that opening the same
place again finds what was recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from davserver.backends.base import Changed
from opening import Opened

from davserver.events.bus import ChangeEvent, EventBus, LocalBus
from davserver.state.changelog import KEEP, ChangeLog, SQLiteChangeLog


def sqlite_log(folder: Path, keep: int) -> ChangeLog:
    """The SQLite log in the state folder."""
    return SQLiteChangeLog(folder / "changes.sqlite3", keep)


def local_bus(log: ChangeLog) -> EventBus:
    """The bus within one process."""
    return LocalBus(log)


LOGS = [
    pytest.param(sqlite_log, id="sqlite"),
]
BUSES = [
    pytest.param(local_bus, id="local"),
]

OpenLog = Opened[ChangeLog]


def changed(path: str, kind: str = "modified", **fields: object) -> Changed:
    return Changed(path, kind, False, "alice", **fields)


@pytest.fixture(params=LOGS)
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenLog]:
    """Opens the log at one place (keeping ``keep`` changes per mount); every log opened
    is closed at the end."""

    def open_at(keep: int = KEEP, place: Path = tmp_path) -> ChangeLog:
        return request.param(place, keep)

    opened = Opened(open_at)
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


async def test_another_log_has_another_epoch(open_log: OpenLog, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    one, other = open_log(), open_log(place=tmp_path / "elsewhere")
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


# -- the bus -----------------------------------------------------------------------------


@pytest.fixture(params=BUSES)
def bus_and_log(request: pytest.FixtureRequest, open_log: OpenLog) -> tuple[EventBus, ChangeLog]:
    log = open_log()
    return request.param(log), log


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
