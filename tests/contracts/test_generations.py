"""How processes sharing the state tell each other that something changed (Generations,
davserver/state/generations.py), as every implementation keeps it.

Each test runs once per implementation in ``GENERATIONS``, opened at a place (a folder,
or a database: opening.py); two opened at one place act as two processes (or hosts).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.state.errors import StateUnavailable
from davserver.state.generations import TOPICS, FileGenerations, Generations
from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.generations import PgGenerations


def file(place: Place) -> Generations:
    """The processes of one host: a file mapped by each."""
    return FileGenerations(place.folder / "generations")


@in_database
def postgres(place: Place) -> Generations:
    """The processes of several hosts: the database's notifications."""
    return PgGenerations(PgDatabase(place.url))


GENERATIONS = [
    pytest.param(file, id="file"),
    pytest.param(postgres, id="postgres"),
]
Open = Opened[Generations]


@pytest.fixture(params=GENERATIONS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    here = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(here), here)
    yield opened
    await opened.close_all()


async def opened(opener: Open) -> Generations:
    generations = opener()
    await generations.open()
    for topic in TOPICS:  # what was there before it opened
        generations.changed(topic)
    return generations


async def test_a_bump_is_heard_by_the_others_once_settled(opener: Open) -> None:
    mine, theirs, third = await opened(opener), await opened(opener), await opened(opener)
    await theirs.bump("locks")
    await mine.settle()
    await third.settle()
    assert mine.changed("locks") and third.changed("locks")
    assert not mine.changed("locks")  # told once
    assert not mine.changed("changes")  # only the topic bumped


async def test_a_process_does_not_hear_its_own_bumps(opener: Open) -> None:
    mine, theirs = await opened(opener), await opened(opener)
    await mine.bump("changes")
    await mine.settle()
    await theirs.settle()
    assert not mine.changed("changes")
    assert theirs.changed("changes")


async def test_bumps_heard_before_settling_are_not_lost(opener: Open) -> None:
    mine, theirs = await opened(opener), await opened(opener)
    await theirs.bump("locks")
    await theirs.bump("changes")
    for _ in range(200):  # heard without asking, a moment later at most
        if mine.changed("locks"):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the bump was never heard")
    await mine.settle()
    assert mine.changed("changes")


async def test_a_bump_does_not_hide_one_it_crossed(opener: Open) -> None:
    """Another process bumped a topic and this one, before it asked, bumped it too: the
    other's bump is still heard (else a lock released there stays in the index here)."""
    mine, theirs = await opened(opener), await opened(opener)
    await theirs.bump("locks")
    await mine.bump("locks")
    await mine.settle()
    assert mine.changed("locks")
    assert not mine.changed("locks")  # told once
    await theirs.settle()
    assert theirs.changed("locks")


async def test_crossing_bumps_of_many_processes_are_each_heard(opener: Open) -> None:
    """Processes bumping one topic at once: each hears that the others did."""
    processes = [await opened(opener) for _ in range(4)]
    for _ in range(3):
        await asyncio.gather(*(p.bump("locks") for p in processes))
        for p in processes:
            await p.settle()
            assert p.changed("locks")


async def test_many_waiting_settles_all_return(opener: Open) -> None:
    mine, theirs = await opened(opener), await opened(opener)
    await theirs.bump("locks")
    await asyncio.gather(*(mine.settle() for _ in range(50)))
    assert mine.changed("locks")


# -- One host: the file ------------------------------------------------------------------


async def test_a_bump_waits_for_another_process_writing_the_file(tmp_path: Path) -> None:
    """A bump while another process holds the file's lock waits (off the event loop)
    for it, then writes; what it replaced is heard."""
    mine, theirs = (
        FileGenerations(tmp_path / "generations"),
        FileGenerations(tmp_path / "generations"),
    )
    await mine.open()
    await theirs.open()
    fd = os.open(tmp_path / "generations", os.O_RDWR)
    try:
        await theirs.bump("shares")
        fcntl.flock(fd, fcntl.LOCK_EX)  # theirs, writing its word this very moment
        bump = asyncio.create_task(mine.bump("shares"))
        await asyncio.sleep(0.1)
        assert not bump.done()
        fcntl.flock(fd, fcntl.LOCK_UN)
        await asyncio.wait_for(bump, 10)
        assert mine.changed("shares") and theirs.changed("shares")
        assert not mine.changed("shares")
    finally:
        os.close(fd)
        await mine.close()
        await theirs.close()


# -- PostgreSQL: the listening connection lost and found again ------------------------------


async def test_a_lost_listener_listens_again_and_counts_everything_changed(
    tmp_path: Path, pg_url: str
) -> None:
    db = PgDatabase(pg_url)
    generations = PgGenerations(db)
    killer = PgDatabase(pg_url).attach()
    try:
        await generations.open()
        for topic in TOPICS:
            generations.changed(topic)
        async with killer.connection() as conn:
            # What a restart of the database does to every session.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid != pg_backend_pid() AND datname = current_database()"
            )
        for _ in range(300):
            if all(generations.changed(t) for t in TOPICS):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the listener did not come back")
        theirs = PgGenerations(PgDatabase(pg_url))
        try:
            await theirs.open()
            await theirs.bump("locks")
        finally:
            await theirs.close()
        await generations.settle()
        assert generations.changed("locks")
    finally:
        await generations.close()
        await killer.close()


async def test_settle_says_unavailable_when_the_database_is_gone(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/nowhere?host={tmp_path}&port=1"
    generations = PgGenerations(PgDatabase(url))
    try:
        with pytest.raises(StateUnavailable):
            await generations.open()
        with pytest.raises(StateUnavailable):
            await generations.settle()
        with pytest.raises(StateUnavailable):
            await generations.bump("locks")
    finally:
        await generations.close()
