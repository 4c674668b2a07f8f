"""The Secrets interface (davserver/state/secrets.py), as every store of the secrets made
once keeps it (the WebDAV-Push keys): a new store is one more line in ``STORES``, a
function that opens it at a place (a folder, or a database: opening.py). Two stores
opened at one place act as two processes (or hosts) sharing it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from opening import Opened, Place, in_database, place_for

from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.secrets import PgSecrets
from davserver.state.secrets import FileSecrets, Secrets


def files(place: Place) -> Secrets:
    """Files of the state folder."""
    return FileSecrets(place.folder / "push")


@in_database
def postgres(place: Place) -> Secrets:
    """The database several hosts share."""
    return PgSecrets(PgDatabase(place.url))


STORES: list[Callable[[Place], Secrets]] = [files, postgres]

Open = Opened[Secrets]


@pytest.fixture(params=STORES, ids=["files", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Opens the store at one place."""
    place = place_for(request, tmp_path)
    opened = Opened(lambda: request.param(place))
    yield opened
    await opened.close_all()


def never() -> bytes:
    raise AssertionError("made again")


async def test_a_secret_is_made_once_and_read_by_the_others(opener: Open) -> None:
    one, two = opener(), opener()
    made = bytes(range(256))  # any bytes
    assert await one.get("vapid.pem", lambda: made) == made
    assert await two.get("vapid.pem", never) == made
    assert await one.get("vapid.pem", never) == made


async def test_secrets_of_other_names_are_apart(opener: Open) -> None:
    store = opener()
    assert await store.get("vapid.pem", lambda: b"key") == b"key"
    assert await store.get("topic.key", lambda: b"topic") == b"topic"
    assert await store.get("vapid.pem", never) == b"key"


async def test_processes_making_one_at_once_all_get_the_first_ones(opener: Open) -> None:
    stores = [opener() for _ in range(6)]
    got = await asyncio.gather(
        *(
            store.get("topic.key", lambda n=n: f"candidate {n}".encode())
            for n, store in enumerate(stores)
        )
    )
    assert len(set(got)) == 1 and got[0].startswith(b"candidate ")


async def test_secrets_outlive_a_close(opener: Open) -> None:
    first = opener()
    assert await first.get("topic.key", lambda: b"\x00kept\xff") == b"\x00kept\xff"
    await opener.close(first)
    assert await opener().get("topic.key", never) == b"\x00kept\xff"
