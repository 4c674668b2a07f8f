"""Named locks (Mutexes, davserver/state/mutex.py), as every implementation keeps them.

Each test runs once per implementation in ``MUTEXES``, a function that opens it at a
place (a folder, or a database: opening.py) with what runs once a lock is held. Within
a process, tasks are what contend; across processes, another process holds a lock at
the same place (:func:`holder`): the file's byte-range locks belong to a process, so two
instances in one process would not exclude each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from opening import Place, in_database, place_for

from davserver.runtime.threads import offload
from davserver.state import mutex
from davserver.state.mutex import After, FileMutexes, Mutexes
from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.mutex import PgMutexes

PATIENCE = 0.3
"""Seconds a lock that is held elsewhere must stay not granted."""


def file(place: Place, after: After | None = None) -> Mutexes:
    """The processes of one host: byte-range locks on a file."""
    return FileMutexes(place.folder / "caldav.locks", after)


@in_database
def postgres(place: Place, after: After | None = None) -> Mutexes:
    """The processes of several hosts: advisory locks (the smallest pool allowed)."""
    return PgMutexes(PgDatabase(place.url, 2).attach(), "/caldav", after)


MUTEXES = [
    pytest.param(file, id="file"),
    pytest.param(postgres, id="postgres"),
]
Open = Callable[..., Mutexes]


@pytest.fixture(params=MUTEXES)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the implementation at one place (closed at the end)."""
    place = place_for(request, tmp_path)
    opened: list[Mutexes] = []

    def open_one(after: After | None = None) -> Mutexes:
        mutexes = request.param(place, after)
        opened.append(mutexes)
        return mutexes

    open_one.place = place  # type: ignore[attr-defined]
    open_one.factory = request.param.__name__  # type: ignore[attr-defined]
    open_one.url = place.url if getattr(request.param, "in_database", False) else ""  # type: ignore[attr-defined]
    yield open_one
    for mutexes in opened:
        await offload(mutexes.close)
        if isinstance(mutexes, PgMutexes):
            await mutexes._db.close()


async def opened(opener: Open, after: After | None = None) -> Mutexes:
    mutexes = opener(after)
    await offload(mutexes.open)
    return mutexes


@contextlib.asynccontextmanager
async def holder(opener: Open, name: str) -> AsyncIterator[None]:
    """Another process holding the lock ``name`` at the same place for the block."""
    place: Place = opener.place  # type: ignore[attr-defined]
    factory, url = opener.factory, opener.url  # type: ignore[attr-defined]
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from opening import Place\n"
        "import test_mutexes as t\n"
        "async def main():\n"
        "    place = Place(Path(sys.argv[2]), None, sys.argv[3] or None)\n"
        "    mutexes = getattr(t, sys.argv[1])(place)\n"
        "    mutexes.open()\n"
        "    async with mutexes.hold(bytes.fromhex(sys.argv[4]).decode()):\n"
        "        print('held', flush=True)\n"
        "        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)\n"
        "    mutexes.close()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, factory, str(place.folder), url, name.encode().hex(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"held\n"
        yield
    finally:
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def waits(mutexes: Mutexes, name: str, release: Callable[[], object]) -> None:
    """``name`` is not granted while held elsewhere, and is once ``release()`` ran."""
    granted = asyncio.Event()

    async def take() -> None:
        async with mutexes.hold(name):
            granted.set()

    task = asyncio.create_task(take())
    await asyncio.sleep(PATIENCE)
    assert not granted.is_set()
    result = release()
    if asyncio.iscoroutine(result):
        await result
    await asyncio.wait_for(task, 10)
    assert granted.is_set()


async def test_a_lock_held_by_another_process_is_waited_for(opener: Open) -> None:
    mine = await opened(opener)
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(holder(opener, "collection\0ann/calendar"))
    await waits(mine, "collection\0ann/calendar", stack.aclose)


async def test_other_names_are_not_held_up(opener: Open) -> None:
    mine = await opened(opener)
    async with (
        holder(opener, "collection\0ann/calendar"),
        asyncio.timeout(10),
        mine.hold("collection\0ann/tasks"),
    ):
        pass


async def test_tasks_of_one_process_take_turns(opener: Open) -> None:
    mine = await opened(opener)
    first = contextlib.AsyncExitStack()
    await first.enter_async_context(mine.hold("home\0cal\0ann"))
    await waits(mine, "home\0cal\0ann", first.aclose)


async def test_a_task_holding_a_lock_passes_it_again(opener: Open) -> None:
    caught_up: list[str] = []

    async def after() -> None:
        caught_up.append("once held")

    mine = await opened(opener, after)
    async with (
        asyncio.timeout(10),
        mine.hold("collection\0ann/calendar"),
        mine.hold("collection\0ann/calendar"),  # a refresh inside a write
        mine.hold("home\0cal\0ann"),  # a home made inside it
    ):
        pass
    assert caught_up == ["once held", "once held"]  # not again on passing
    async with holder(opener, "collection\0ann/calendar"):
        pass  # released by all of it


async def test_a_wait_cancelled_leaves_the_lock_free(opener: Open) -> None:
    """A task cancelled while another process holds its lock ends cancelled once that
    lets go, and leaves the lock to whoever comes next, here or elsewhere."""
    mine = await opened(opener)
    name = "collection\0ann/calendar"
    other = contextlib.AsyncExitStack()
    await other.enter_async_context(holder(opener, name))

    async def take() -> None:
        async with mine.hold(name):
            raise AssertionError("granted to a cancelled task")

    task = asyncio.create_task(take())
    await asyncio.sleep(PATIENCE)
    task.cancel()
    await other.aclose()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    async with holder(opener, name):
        pass
    async with asyncio.timeout(10), mine.hold(name):
        pass


@pytest.fixture
async def file_opener(tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the file implementation (for the tests of its own; closed at the end)."""
    place = Place(tmp_path)
    opened: list[Mutexes] = []

    def open_one(after: After | None = None) -> Mutexes:
        opened.append(file(place, after))
        return opened[-1]

    open_one.place, open_one.factory, open_one.url = place, "file", ""  # type: ignore[attr-defined]
    yield open_one
    for mutexes in opened:
        await offload(mutexes.close)


async def test_more_waits_than_waiting_threads_are_all_granted(
    file_opener: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's own: one thread waits in the kernel, the further wait tries again."""
    monkeypatch.setattr(mutex, "WAITERS", 1)
    opener = file_opener
    mine = await opened(opener)
    names = ["collection\0ann/calendar", "collection\0bob/calendar"]
    others = contextlib.AsyncExitStack()
    for name in names:
        await others.enter_async_context(holder(opener, name))
    granted: list[str] = []

    async def take(name: str) -> None:
        async with mine.hold(name):
            granted.append(name)

    tasks = [asyncio.create_task(take(name)) for name in names]
    await asyncio.sleep(PATIENCE)
    assert not granted
    await others.aclose()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sorted(granted) == names


async def test_a_block_that_raises_releases_the_lock(opener: Open) -> None:
    mine = await opened(opener)
    with pytest.raises(RuntimeError):
        async with mine.hold("collection\0ann/calendar"):
            raise RuntimeError("the write failed")
    async with holder(opener, "collection\0ann/calendar"):
        pass


async def test_a_tasks_locks_in_two_spaces_take_one_connection(pg_url: str) -> None:
    """PostgreSQL's own: a task holding a meeting's lock (scheduling's space) that takes
    an attendee's calendar lock (the mount's space) needs no second connection, so
    deliveries to several attendees at once cannot drain the pool."""
    db = PgDatabase(pg_url, 2).attach()  # one connection may be held
    meetings = PgMutexes(db.attach(), "scheduling\0/caldav")
    calendars = PgMutexes(db.attach(), "/caldav")
    try:
        async with (
            asyncio.timeout(10),
            meetings.hold("meeting\0ann\0m1"),
            calendars.hold("collection\0bob/calendar"),
            calendars.hold("collection\0bob/calendar"),
        ):
            pass
        async with asyncio.timeout(10), calendars.hold("collection\0bob/calendar"):
            pass  # released with the rest
    finally:
        for _ in range(3):
            await db.close()
