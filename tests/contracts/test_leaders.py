"""The Leaders interface (davserver/state/leaders.py), as every implementation keeps it:
one process leads a job at a time, and another takes over when it lets go, closes or
dies. A new implementation is one more line in ``LEADERS``, a function that opens it at a
place (a folder, or a database: opening.py); two opened at one place act as two
processes (or hosts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opening import Opened, Place, in_database, place_for
from pgcluster import Cluster

from davserver.state.leaders import FileLeaders, Leaders
from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.leaders import PgLeaders

JOB = "push poll\0/dav"


def files(place: Place) -> Leaders:
    """Lock files of the state folder (the processes of a host)."""
    return FileLeaders(place.folder / "push")


@in_database
def postgres(place: Place) -> Leaders:
    """Advisory locks of the database (the processes of every host)."""
    return PgLeaders(PgDatabase(place.url))


LEADERS: list[Callable[[Place], Leaders]] = [files, postgres]

Open = Opened[Leaders]


@pytest.fixture(params=LEADERS, ids=["files", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the implementation at one place."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(place))
    yield opened
    await opened.close_all()


async def test_one_leads_and_goes_on_leading(opener: Open) -> None:
    one, two = opener(), opener()
    assert await one.take(JOB)
    assert not await two.take(JOB)
    assert await one.take(JOB)  # still the leader
    assert not await two.take(JOB)


async def test_jobs_of_other_names_have_their_own_leader(opener: Open) -> None:
    one, two = opener(), opener()
    assert await one.take(JOB)
    assert await two.take("push poll\0/caldav")
    assert await one.take("push poll\0/other")  # a leader may lead several
    assert not await two.take("push poll\0/other")
    assert not await one.take("push poll\0/caldav")


async def test_another_takes_over_once_the_leader_lets_go(opener: Open) -> None:
    one, two = opener(), opener()
    assert await one.take(JOB) and await one.take("push poll\0/caldav")
    await one.release(JOB)
    assert await two.take(JOB)
    assert not await one.take(JOB)
    assert not await two.take("push poll\0/caldav")  # the other job is still one's


async def test_another_takes_over_once_the_leader_closed(opener: Open) -> None:
    one, two = opener(), opener()
    assert await one.take(JOB)
    await opener.close(one)  # as a process that stops or dies
    assert await two.take(JOB)
    assert not await opener().take(JOB)


async def test_a_leader_whose_session_ended_knows_it_and_another_takes_over(
    postgres: Cluster, pg_url: str
) -> None:
    """PostgreSQL's own: the leader's connection ends (the database restarted, or the
    network cut it): the database let its lock go, it says it no longer leads, and
    another process (or itself, later) takes the job."""
    one, two = PgLeaders(PgDatabase(pg_url)), PgLeaders(PgDatabase(pg_url))
    try:
        assert await one.take(JOB)
        conn = one._conn
        assert conn is not None
        database = urlsplit(pg_url).path.lstrip("/")
        ended = f"SELECT pg_terminate_backend({conn.get_server_pid()})"
        await asyncio.to_thread(postgres.psql, ended, database)
        async with asyncio.timeout(5):  # the session ends a moment after it is told to
            while not await two.take(JOB):
                await asyncio.sleep(0.05)
        assert not await one.take(JOB)
        await two.release(JOB)
        assert await one.take(JOB)
    finally:
        await one.close()
        await two.close()
