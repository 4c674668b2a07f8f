"""Changes made behind the server's back reach the subscribers too: a file edited on disk,
a ``git push`` to the served branch, a calendar item written into its folder; each once,
and the server's own changes are not taken for outside ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from gitrepo import git
from pushservice import PushService
from pushtools import MakeServer, seq, subscribe

from davserver.app import SharedState

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:out1\r\n"
    b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
    b"SUMMARY:outside\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def quiet(service: PushService, name: str, count: int, wait: float = 0.6) -> None:
    """Nothing more than ``count`` messages arrives for ``name`` within ``wait`` seconds."""
    await asyncio.sleep(wait)
    assert len(service.messages(name)) == count, service.messages(name)


async def test_a_file_edited_on_disk(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    folder = tmp_path / "dav" / "docs"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a")
    await subscribe(http, "/dav/docs/", service.client("a"))
    await asyncio.sleep(0.3)  # the watcher has taken in what is there
    (folder / "a.txt").write_bytes(b"edited")
    got = await service.await_messages("a", 1, timeout=5)
    assert got[0].content
    await quiet(service, "a", 1)
    (folder / "b.txt").write_bytes(b"new")
    await service.await_messages("a", 2, timeout=5)
    (folder / "a.txt").unlink()
    got = await service.await_messages("a", 3, timeout=5)
    assert seq(got[0].token) < seq(got[1].token) < seq(got[2].token)
    # The server's own writes are one message each, never also an outside one.
    for i in range(3):
        assert (await http.put(f"/dav/docs/own{i}.txt", data=b"x")).status == 201
        await service.await_messages("a", 4 + i, timeout=5)
    await quiet(service, "a", 6)


async def test_a_folder_made_on_disk_below_an_infinite_subscription(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    await subscribe(http, "/dav/", service.client("a"), content="infinite")
    await asyncio.sleep(0.3)
    (tmp_path / "dav" / "new").mkdir()
    await service.await_messages("a", 1, timeout=5)
    await asyncio.sleep(0.3)
    (tmp_path / "dav" / "new" / "inside.txt").write_bytes(b"x")
    await service.await_messages("a", 2, timeout=5)
    await quiet(service, "a", 2)


async def test_a_git_push(make_server: MakeServer, service: PushService, tmp_path: Path) -> None:
    http = await make_server(backend="git")
    assert (await http.request("MKCOL", "/dav/docs/")).status == 201
    assert (await http.put("/dav/docs/a.txt", data=b"a")).status == 201
    await asyncio.sleep(0.3)
    await subscribe(http, "/dav/docs/", service.client("a"))
    await asyncio.sleep(0.3)
    work = tmp_path / "work"
    await asyncio.to_thread(
        git, tmp_path, "clone", "-q", "-b", "main", str(tmp_path / "dav.git"), str(work)
    )
    (work / "docs" / "a.txt").write_bytes(b"pushed")
    (work / "docs" / "b.txt").write_bytes(b"new")
    await asyncio.to_thread(git, work, "add", "-A")
    await asyncio.to_thread(git, work, "commit", "-qm", "from elsewhere")
    await asyncio.to_thread(git, work, "push", "-q", "origin", "main")
    got = await service.await_messages("a", 1, timeout=5)
    assert got[0].content
    await quiet(service, "a", 1)
    # A push elsewhere in the tree is not this collection's.
    (work / "elsewhere.txt").write_bytes(b"x")
    await asyncio.to_thread(git, work, "add", "-A")
    await asyncio.to_thread(git, work, "commit", "-qm", "elsewhere")
    await asyncio.to_thread(git, work, "push", "-q", "origin", "main")
    await quiet(service, "a", 1)
    assert (await http.put("/dav/docs/c.txt", data=b"c")).status == 201
    await service.await_messages("a", 2, timeout=5)
    await quiet(service, "a", 2)


async def test_a_calendar_item_written_into_its_folder(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    cal = "/cal/calendars/user/calendar/"
    assert (await http.request("PROPFIND", cal, headers={"Depth": "1"})).status == 207
    headers = {"Content-Type": "text/calendar"}
    own = EVENT.replace(b"out1", b"own1")
    assert (await http.put(cal + "own1.ics", data=own, headers=headers)).status == 201
    await asyncio.sleep(0.3)
    await subscribe(http, cal, service.client("a"))
    await asyncio.sleep(0.3)
    (tmp_path / "cal" / "user" / "calendar" / "out1.ics").write_bytes(EVENT)
    got = await service.await_messages("a", 1, timeout=5)
    resp = await http.request(
        "PROPFIND",
        cal,
        data=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>',
        headers={"Depth": "0"},
    )
    assert got[0].token is not None and got[0].token.encode() in await resp.read()
    await quiet(service, "a", 1)


async def test_many_files_changed_at_once(
    http: TestClient, service: PushService, tmp_path: Path
) -> None:
    """More changed files in a folder than the watcher looks at one by one (it lists the
    folder instead): each is one change, outside or the server's own."""
    folder = tmp_path / "dav" / "many"
    folder.mkdir()
    await subscribe(http, "/dav/many/", service.client("a"))
    assert (await http.put("/dav/many/first.txt", data=b"x")).status == 201
    first = seq((await service.await_messages("a", 1, timeout=5))[0].token)
    await asyncio.sleep(0.3)
    for i in range(40):
        (folder / f"disk{i}.txt").write_bytes(b"x")

    async def reached(number: int) -> int:
        for _ in range(100):
            got = service.messages("a")
            if got and seq(got[-1].token) >= number:
                await quiet(service, "a", len(got))
                return seq(service.messages("a")[-1].token)
            await asyncio.sleep(0.1)
        raise AssertionError(f"change {number} not heard of: {got}")

    assert await reached(first + 40) == first + 40
    puts = [http.put(f"/dav/many/own{i}.txt", data=b"x") for i in range(40)]
    assert {r.status for r in await asyncio.gather(*puts)} == {201}
    assert await reached(first + 80) == first + 80


class Turns:
    """Leaders whose answer the test decides: this process polls while ``leading``."""

    def __init__(self) -> None:
        self.leading = True

    async def take(self, name: str) -> bool:
        return self.leading

    async def release(self, name: str) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_process_that_polls_again_takes_in_the_folders_anew(
    make_server: MakeServer, service: PushService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = Turns()
    monkeypatch.setattr(SharedState, "leaders", lambda _state: turns)
    http = await make_server()
    folder = tmp_path / "dav"
    await subscribe(http, "/dav/", service.client("a"))
    await asyncio.sleep(0.3)
    (folder / "one.txt").write_bytes(b"1")
    await service.await_messages("a", 1, timeout=5)
    turns.leading = False  # another process (or host) polls now
    await asyncio.sleep(0.3)
    (folder / "two.txt").write_bytes(b"2")  # the other one reports it
    await asyncio.sleep(0.3)
    turns.leading = True
    await quiet(service, "a", 1)  # not again here
    (folder / "three.txt").write_bytes(b"3")
    await service.await_messages("a", 2, timeout=5)
    await quiet(service, "a", 2)
