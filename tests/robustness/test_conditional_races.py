"""Conditional writes are atomic (issue #12 e): many clients racing with the same
condition against a real server process, on both backends. The condition is checked
inside the write, against what the write replaces, so exactly one wins, the others get
412 (or 404 once what they aimed at is gone), git gets one commit, and the store holds
the winner's bytes."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from caldav_data import NSDECL, event, parse_multistatus
from gitrepo import commits, files, messages
from helpers import ServerProcess, start_server

N = 50
CONFIG = """
[server]
state_dir = "state"
access_log = false

[[mounts]]
path = "/dav"
type = "webdav"
backend = "{backend}"
{dav}

[[mounts]]
path = "/caldav"
type = "caldav"
backend = "{backend}"
{cal}
"""


@dataclass
class Server:
    """A server process with a WebDAV mount /dav and a CalDAV mount /caldav."""

    process: ServerProcess
    folder: Path
    backend: str

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def dav(self) -> Path:
        return self.folder / ("dav.git" if self.backend == "git" else "dav")

    @property
    def cal(self) -> Path:
        return self.folder / ("cal.git" if self.backend == "git" else "cal")

    def stored(self, name: str) -> bytes | None:
        """The bytes of the file ``name`` of /dav (None when absent)."""
        if self.backend == "git":
            return files(self.dav).get(name) if commits(self.dav) else None
        path = self.dav / name
        return path.read_bytes() if path.exists() else None

    def commits(self, store: Path | None = None) -> int:
        return len(commits(store or self.dav)) if self.backend == "git" else 0


@pytest.fixture(scope="module", params=["filesystem", "git"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    backend = request.param
    folder = tmp_path_factory.mktemp(f"races-{backend}")
    if backend == "git":
        dav, cal = 'repo = "dav.git"', 'repo = "cal.git"'
    else:
        (folder / "dav").mkdir()
        (folder / "cal").mkdir()
        dav, cal = 'root = "dav"', 'root = "cal"'
    conf = folder / "conf.toml"
    conf.write_text(CONFIG.format(backend=backend, dav=dav, cal=cal))
    process = start_server(folder, "--config", str(conf))
    yield Server(process, folder, backend)
    assert process.stop() == 0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per racing request: they reach the server together.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def send(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes = b"", **headers: str
) -> tuple[int, str]:
    async with session.request(method, url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("ETag", "")


async def race(
    session: aiohttp.ClientSession, requests: list[tuple[str, str, bytes, dict[str, str]]]
) -> list[int]:
    """Send all the requests at once; their statuses, in order."""
    answers = await asyncio.gather(*(send(session, m, u, b, **h) for m, u, b, h in requests))
    return [status for status, _ in answers]


def one_winner(statuses: list[int], success: int, losers: set[int]) -> int:
    """The index of the one request that succeeded; every other one lost as it may."""
    counted = Counter(statuses)
    assert counted[success] == 1, counted
    assert set(counted) - {success} <= losers, counted
    return statuses.index(success)


def body(i: int) -> bytes:
    return f"version {i}\n".encode() * (i + 1)


async def test_puts_with_the_same_if_match(server: Server, session: aiohttp.ClientSession) -> None:
    url = f"{server.url}/dav/if-match.txt"
    _, etag = await send(session, "PUT", url, b"original")
    before = server.commits()
    statuses = await race(session, [("PUT", url, body(i), {"If-Match": etag}) for i in range(N)])
    winner = one_winner(statuses, 204, {412})
    assert server.stored("if-match.txt") == body(winner)
    if server.backend == "git":
        assert server.commits() == before + 1


async def test_creations_with_if_none_match_star(
    server: Server, session: aiohttp.ClientSession
) -> None:
    url = f"{server.url}/dav/create-only.txt"
    before = server.commits()
    statuses = await race(
        session, [("PUT", url, body(i), {"If-None-Match": "*"}) for i in range(N)]
    )
    winner = one_winner(statuses, 201, {412})
    assert server.stored("create-only.txt") == body(winner)
    if server.backend == "git":
        assert server.commits() == before + 1


async def test_deletes_with_the_same_if_match(
    server: Server, session: aiohttp.ClientSession
) -> None:
    url = f"{server.url}/dav/delete-me.txt"
    _, etag = await send(session, "PUT", url, b"doomed")
    before = server.commits()
    statuses = await race(session, [("DELETE", url, b"", {"If-Match": etag}) for _ in range(N)])
    one_winner(statuses, 204, {412, 404})
    assert server.stored("delete-me.txt") is None
    if server.backend == "git":
        assert server.commits() == before + 1


async def test_moves_with_the_same_if_match(server: Server, session: aiohttp.ClientSession) -> None:
    url = f"{server.url}/dav/move-me.txt"
    _, etag = await send(session, "PUT", url, b"moving")
    before = server.commits()
    requests = [
        ("MOVE", url, b"", {"If-Match": etag, "Destination": f"{server.url}/dav/moved-{i}.txt"})
        for i in range(N)
    ]
    winner = one_winner(await race(session, requests), 201, {412, 404})
    assert server.stored("move-me.txt") is None
    assert [server.stored(f"moved-{i}.txt") for i in range(N)] == [
        b"moving" if i == winner else None for i in range(N)
    ]
    if server.backend == "git":
        assert server.commits() == before + 1


async def sources(server: Server, session: aiohttp.ClientSession, name: str) -> list[str]:
    """N files to copy from, each with its own bytes."""
    urls = [f"{server.url}/dav/{name}-{i}.txt" for i in range(N)]
    for i, url in enumerate(urls):
        assert (await send(session, "PUT", url, body(i)))[0] == 201
    return urls


async def test_copies_onto_one_destination_with_overwrite_f(
    server: Server, session: aiohttp.ClientSession
) -> None:
    urls = await sources(server, session, "copy-f")
    dst = f"{server.url}/dav/copy-f-target.txt"
    before = server.commits()
    requests = [("COPY", u, b"", {"Destination": dst, "Overwrite": "F"}) for u in urls]
    winner = one_winner(await race(session, requests), 201, {412})
    assert server.stored("copy-f-target.txt") == body(winner)
    if server.backend == "git":
        assert server.commits() == before + 1


async def test_copies_onto_a_destination_named_by_a_tagged_if_list(
    server: Server, session: aiohttp.ClientSession
) -> None:
    urls = await sources(server, session, "copy-if")
    dst = f"{server.url}/dav/copy-if-target.txt"
    _, etag = await send(session, "PUT", dst, b"to be replaced once")
    before = server.commits()
    condition = {"Destination": dst, "If": f"<{dst}> ([{etag}])"}
    winner = one_winner(
        await race(session, [("COPY", u, b"", condition) for u in urls]), 204, {412}
    )
    assert server.stored("copy-if-target.txt") == body(winner)
    if server.backend == "git":
        assert server.commits() == before + 1


def proppatch(name: str, value: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:x="urn:x"><D:set><D:prop><x:{name}>{value}</x:{name}></D:prop></D:set>'
        "</D:propertyupdate>"
    ).encode()


async def dead_props(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """The urn:x properties of a resource."""
    async with session.request("PROPFIND", url, headers={"Depth": "0"}) as resp:
        found = parse_multistatus(await resp.read()).responses[0].props
    return {k[len("{urn:x}") :]: p.text for k, p in found.items() if k.startswith("{urn:x}")}


async def test_proppatches_of_different_properties_lose_none(
    server: Server, session: aiohttp.ClientSession
) -> None:
    url = f"{server.url}/dav/props.txt"
    await send(session, "PUT", url, b"with properties")
    statuses = await race(
        session, [("PROPPATCH", url, proppatch(f"p{i}", str(i)), {}) for i in range(N)]
    )
    assert statuses == [207] * N
    assert await dead_props(session, url) == {f"p{i}": str(i) for i in range(N)}


async def test_proppatches_with_if_match_racing_a_put(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A PROPPATCH's If-Match is checked inside its write: none that answers 412 has
    stored anything, and on git none is committed after the PUT that changed the ETag."""
    url = f"{server.url}/dav/props-put.txt"
    _, etag = await send(session, "PUT", url, b"first")
    requests = [
        ("PROPPATCH", url, proppatch(f"q{i}", str(i)), {"If-Match": etag}) for i in range(N)
    ]
    requests.insert(N // 2, ("PUT", url, b"second", {}))
    statuses = await race(session, requests)
    assert statuses[N // 2] == 204
    patched = {f"q{i if i < N // 2 else i - 1}" for i, s in enumerate(statuses) if s == 207}
    assert set(statuses) - {204} <= {207, 412}
    assert set(await dead_props(session, url)) == patched
    if server.backend == "git":
        log = messages(server.dav)
        last_put = max(i for i, m in enumerate(log) if m == "PUT /props-put.txt")
        assert not [m for m in log[last_put:] if m.startswith("PROPPATCH /props-put.txt")]


ITEM = "/caldav/calendars/user/calendar/race.ics"


async def test_calendar_puts_with_the_same_if_match(
    server: Server, session: aiohttp.ClientSession
) -> None:
    url = server.url + ITEM
    ics = {"Content-Type": "text/calendar; charset=utf-8"}
    _, etag = await send(session, "PUT", url, event("race", "first"), **ics)
    before = server.commits(server.cal)
    requests = [
        ("PUT", url, event("race", f"edit {i}"), {**ics, "If-Match": etag}) for i in range(N)
    ]
    winner = one_winner(await race(session, requests), 204, {412})
    async with session.get(url) as resp:
        assert await resp.read() == event("race", f"edit {winner}")
        new_etag = resp.headers["ETag"]
    if server.backend == "git":
        assert server.commits(server.cal) == before + 1
    # The calendar index took the winner in, not a loser.
    query = (
        f'<?xml version="1.0"?><C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    async with session.request(
        "REPORT",
        server.url + "/caldav/calendars/user/calendar/",
        data=query,
        headers={"Depth": "1"},
    ) as resp:
        found = parse_multistatus(await resp.read()).by_href()
    assert found[ITEM].value("{DAV:}getetag") == new_etag


async def test_calendar_creations_with_if_none_match_star(
    server: Server, session: aiohttp.ClientSession
) -> None:
    url = server.url + "/caldav/calendars/user/calendar/create-only.ics"
    ics = {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}
    requests = [("PUT", url, event("create-only", f"try {i}"), ics) for i in range(N)]
    winner = one_winner(await race(session, requests), 201, {412})
    async with session.get(url) as resp:
        assert await resp.read() == event("create-only", f"try {winner}")
    assert re.fullmatch(r'"[^"]+"', resp.headers["ETag"])
