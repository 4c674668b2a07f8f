"""A state folder that cannot be used (issue #12 g): every request that needs it (locks,
the change log, the calendar index) gets 503 and a log line, never a 500 with a
traceback, and the server recovers without a restart once the folder is back.

How the folder is made unusable: it is moved aside and a plain file takes its place.
chmod would not do: the tests may run as root, which ignores permissions. With a file
where the folder was, no database in it can be opened or created (ENOTDIR, EEXIST)
whoever the process runs as; and since the connections already open still point at the
moved files, this also checks that the server notices that its database is no longer
the one at its path (a folder removed, or replaced) instead of writing on into a file
nobody will find again."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, NSDECL, event

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

LOCKINFO = (
    f'{HEAD}<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype></D:lockinfo>"
)
SYNC = (
    f"{HEAD}<D:sync-collection {NSDECL}><D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)
CTAG = f"{HEAD}<D:propfind {NSDECL}><D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>"
MOUNTS = {
    "/dav": ("webdav", "filesystem"),
    "/gdav": ("webdav", "git"),
    "/cal": ("caldav", "filesystem"),
    "/gcal": ("caldav", "git"),
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    mounts = []
    for prefix, (kind, backend) in MOUNTS.items():
        store = tmp_path / prefix.strip("/")
        if backend == "filesystem":
            store.mkdir()
            where: dict[str, Any] = {"root": store}
        else:
            where = {"repo": store}
        mounts.append(MountConfig(path=prefix, type=kind, backend=backend, **where))
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=tuple(mounts)
    )


class Broken:
    """Makes the state folder unusable, and usable again."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.aside = state.with_name("state.aside")

    def __enter__(self) -> Broken:
        self.state.rename(self.aside)
        self.state.write_bytes(b"not a folder")
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.unlink()
        self.aside.rename(self.state)


def requests_of(prefix: str, n: int) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """Requests that need the state folder on the mount at ``prefix`` (``n`` makes their
    names new)."""
    kind, _ = MOUNTS[prefix]
    if kind == "webdav":
        yield "PUT", f"{prefix}/f{n}.txt", f"body {n}", {}
        yield "LOCK", f"{prefix}/locked{n}.txt", LOCKINFO, {"Content-Type": "application/xml"}
        yield "DELETE", f"{prefix}/f{n}.txt", "", {}
        return
    calendar = f"{prefix}/calendars/user/calendar/"
    ics = {"Content-Type": "text/calendar"}
    yield "PUT", f"{calendar}e{n}.ics", event(f"e{n}").decode(), ics
    yield "PROPFIND", calendar, CTAG, {"Depth": "0"}
    yield "REPORT", calendar, SYNC, {"Content-Type": "application/xml"}
    yield "LOCK", f"{calendar}locked{n}.ics", LOCKINFO, {"Content-Type": "application/xml"}


async def send(client: TestClient, method: str, path: str, body: str, **headers: str) -> int:
    async with client.request(method, path, data=body.encode(), headers=headers) as resp:
        await resp.read()
        return resp.status


async def prepare(client: TestClient) -> None:
    """Open every database of the state folder: a write, a lock, a calendar read."""
    for prefix in MOUNTS:
        for method, path, body, headers in requests_of(prefix, 0):
            assert await send(client, method, path, body, **headers) < 300, (method, path)


@pytest.mark.parametrize("prefix", list(MOUNTS))
async def test_an_unusable_state_folder_is_503_then_recovers(
    config: Config, aiohttp_client: Any, tmp_path: Path, prefix: str, caplog: Any
) -> None:
    client = await aiohttp_client(create_app(config))
    await prepare(client)
    caplog.clear()
    with caplog.at_level(logging.INFO), Broken(tmp_path / "state"):
        for method, path, body, headers in requests_of(prefix, 1):
            status = await send(client, method, path, body, **headers)
            assert status == 503, (method, path, status)
        # What needs no state still works.
        assert await send(client, "GET", f"{prefix}/", "") == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    unusable = [r for r in caplog.records if "state folder cannot be used" in r.getMessage()]
    assert len(unusable) >= 3
    # Usable again: the same requests succeed, without a restart.
    for method, path, body, headers in requests_of(prefix, 2):
        status = await send(client, method, path, body, **headers)
        assert status < 300, (method, path, status)


async def test_a_removed_state_folder_is_made_again(
    config: Config, aiohttp_client: Any, tmp_path: Path
) -> None:
    """Removed (not replaced by a file): the databases are made afresh in a new folder
    rather than written on into files that are gone."""
    client = await aiohttp_client(create_app(config))
    await prepare(client)
    shutil.rmtree(tmp_path / "state")
    for prefix in MOUNTS:
        for method, path, body, headers in requests_of(prefix, 3):
            status = await send(client, method, path, body, **headers)
            assert status < 300, (method, path, status)
    assert {p.name for p in (tmp_path / "state").iterdir()} >= {
        "locks.sqlite3",
        "changes.sqlite3",
        "caldav_cal.sqlite3",
        "caldav_gcal.sqlite3",
    }


async def test_the_server_stops_cleanly_without_its_state_folder(
    config: Config, tmp_path: Path, caplog: Any
) -> None:
    from aiohttp.test_utils import TestServer

    server = TestServer(create_app(config))
    client = TestClient(server)
    await client.start_server()
    await prepare(client)
    with caplog.at_level(logging.INFO), Broken(tmp_path / "state"):
        await client.close()  # saves what it keeps in the state folder: cannot
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_locks_stay_as_they_were_while_the_state_folder_is_unusable(
    config: Config, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(config))
    assert await send(client, "PUT", "/dav/a.txt", "a") == 201
    resp = await client.request(
        "LOCK", "/dav/a.txt", data=LOCKINFO, headers={"Content-Type": "application/xml"}
    )
    assert resp.status == 200
    token = resp.headers["Lock-Token"]
    with Broken(tmp_path / "state"):
        assert await send(client, "UNLOCK", "/dav/a.txt", "", **{"Lock-Token": token}) == 503
        refresh = {"If": f"({token})", "Timeout": "Second-60"}
        assert await send(client, "LOCK", "/dav/a.txt", "", **refresh) == 503
        # Still locked: a write without the token is refused.
        assert await send(client, "PUT", "/dav/a.txt", "b") == 423
    assert await send(client, "PUT", "/dav/a.txt", "b") == 423
    assert await send(client, "UNLOCK", "/dav/a.txt", "", **{"Lock-Token": token}) == 204
    assert await send(client, "PUT", "/dav/a.txt", "b") == 204
