"""CalDAV homes are virtual until the first write (issue #12 b): no read, and no request
the access rules refuse, creates anything: not a folder, not a git repository or commit,
not a file in the state folder."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import (
    EVENTS,
    HEAD,
    HOME,
    NSDECL,
    PRINCIPAL,
    TASKS,
    caldav_config,
    event,
    parse_multistatus,
)
from gitrepo import commits
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AuthConfig, Config

QUERY = (
    f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/><C:calendar-data/></D:prop>"
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
    'start="20260101T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter>'
    "</C:filter></C:calendar-query>"
)
SYNC = (
    f"{HEAD}<D:sync-collection {NSDECL}><D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)
MULTIGET = (
    f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop><D:getetag/><C:calendar-data/></D:prop>"
    f"<D:href>{EVENTS}a.ics</D:href><D:href>{TASKS}b.ics</D:href></C:calendar-multiget>"
)
FREEBUSY = (
    f"{HEAD}<C:free-busy-query {NSDECL}>"
    '<C:time-range start="20260101T000000Z" end="20270101T000000Z"/></C:free-busy-query>'
)
PROPS = (
    f"{HEAD}<D:propfind {NSDECL}><D:prop><D:resourcetype/><D:displayname/><D:getetag/>"
    "<CS:getctag/><D:sync-token/><C:calendar-home-set/><D:current-user-principal/>"
    "<C:supported-calendar-component-set/><D:quota-available-bytes/></D:prop></D:propfind>"
)
XML = {"Content-Type": "application/xml; charset=utf-8"}
# Every read a client makes on its way from the bare URL to its events, on nothing but
# virtual places: the mount root, the principal, the home and its default calendars.
READS: list[tuple[str, str, str, dict[str, str]]] = [
    ("OPTIONS", "/caldav/", "", {}),
    ("PROPFIND", "/caldav/", PROPS, {"Depth": "0"}),
    ("PROPFIND", "/caldav/", PROPS, {"Depth": "1"}),
    ("PROPFIND", "/caldav/", "", {"Depth": "infinity"}),
    ("PROPFIND", PRINCIPAL, PROPS, {"Depth": "0"}),
    ("PROPFIND", "/caldav/principals/", "", {"Depth": "1"}),
    ("PROPFIND", HOME, PROPS, {"Depth": "1"}),
    ("PROPFIND", EVENTS, PROPS, {"Depth": "1"}),
    ("PROPFIND", TASKS, "", {"Depth": "0"}),
    ("GET", HOME, "", {}),
    ("GET", EVENTS, "", {}),
    ("HEAD", EVENTS, "", {}),
    ("GET", EVENTS + "a.ics", "", {}),
    ("GET", EVENTS + "?history", "", {}),
    ("REPORT", EVENTS, QUERY, {"Depth": "1"}),
    ("REPORT", EVENTS, SYNC, {}),
    ("REPORT", TASKS, SYNC, {}),
    ("REPORT", EVENTS, MULTIGET, {}),
    ("REPORT", HOME, MULTIGET, {}),
    ("REPORT", EVENTS, FREEBUSY, {"Depth": "1"}),
    ("PROPFIND", "/.well-known/caldav", "", {"Depth": "0"}),
]


def store_of(tmp_path: Path, backend: str) -> Path:
    return tmp_path / ("calendars.git" if backend == "git" else "calendars")


def everything(tmp_path: Path, backend: str) -> dict[str, Any]:
    """What a request could create: the store (folder or repository) and the state."""
    store = store_of(tmp_path, backend)
    return {
        "store": snapshot(store) if store.exists() else None,
        "commits": commits(store),
        "state": snapshot(tmp_path / "state") if (tmp_path / "state").exists() else None,
    }


async def send(client: TestClient, method: str, path: str, body: str, **headers: str) -> int:
    if body:
        headers.update(XML)
    async with client.request(
        method, path, data=body.encode(), headers=headers, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp.status


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_reads_of_a_fresh_caldav_mount_create_nothing(
    backend: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(caldav_config(tmp_path, backend=backend)))
    before = everything(tmp_path, backend)
    assert before["commits"] == []
    for method, path, body, headers in READS:
        status = await send(client, method, path, body, **headers)
        assert status < 500, (method, path, status)
    resp = await client.request("REPORT", EVENTS, data=SYNC.encode(), headers=XML)
    token = parse_multistatus(await resp.read()).sync_token
    assert everything(tmp_path, backend) == before
    # The first write makes the home, its default calendars and the item in one change.
    assert (await client.put(EVENTS + "a.ics", data=event("a"))).status == 201
    assert len(commits(store_of(tmp_path, backend))) == (1 if backend == "git" else 0)
    assert everything(tmp_path, backend)["store"] != before["store"]
    # A sync token handed out before anything existed still counts once the index does.
    since = SYNC.replace("<D:sync-token/>", f"<D:sync-token>{token}</D:sync-token>")
    resp = await client.request("REPORT", EVENTS, data=since.encode(), headers=XML)
    assert resp.status == 207
    assert [r.href for r in parse_multistatus(await resp.read()).responses] == [EVENTS + "a.ics"]


def with_accounts(tmp_path: Path, backend: str) -> Config:
    users = tmp_path / "users"
    htpasswd.write(users, {"ann": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()})
    config = caldav_config(tmp_path, backend=backend)
    return Config(server=config.server, mounts=config.mounts, auth=AuthConfig(htpasswd=users))


@pytest.fixture(params=["filesystem", "git"])
def accounts_config(request: Any, tmp_path: Path) -> Config:
    return with_accounts(tmp_path, request.param)


async def test_refused_requests_and_reads_of_an_account_create_nothing(
    accounts_config: Config, tmp_path: Path, aiohttp_client: Any
) -> None:
    backend = accounts_config.mounts[1].backend
    client = await aiohttp_client(create_app(accounts_config))
    before = everything(tmp_path, backend)
    ann = {"Authorization": "Basic " + base64.b64encode(b"ann:pw").decode()}
    ann_reads = [
        (method, path.replace("/user/", "/ann/"), body.replace("/user/", "/ann/"), headers)
        for method, path, body, headers in READS
    ]
    for method, path, body, headers in READS + ann_reads:
        # Anonymous: refused (a fixed answer to OPTIONS), whatever the method.
        status = await send(client, method, path, body, **headers)
        assert status in (200, 301, 401), (method, path, status)
    for method in ("PUT", "MKCALENDAR", "PROPPATCH", "DELETE", "LOCK", "MKCOL"):
        assert await send(client, method, EVENTS + "x.ics", "") == 401
    for method, path, body, headers in ann_reads:
        status = await send(client, method, path, body, **headers, **ann)
        assert status < 500, (method, path, status)
    assert everything(tmp_path, backend) == before
