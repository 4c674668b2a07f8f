"""The server on a PostgreSQL state ([state] url), in process: the schema made and
versioned, CalDAV mounts apart in one database, calendar writes that hold named locks
(nested ones too: a home made during a write) never starving the pool, address books
indexed there too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig, StateConfig
from davserver.state.errors import SchemaTooNew
from davserver.state.postgres.database import PgDatabase
from davserver.state.postgres.schema import VERSION

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
    "SUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def start(aiohttp_client: Any, tmp_path: Path, url: str, pool_size: int = 4) -> TestClient:
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        state=StateConfig(url=url, pool_size=pool_size),
        mounts=(
            MountConfig(path="/cal", type="caldav", root=tmp_path / "cal"),
            MountConfig(path="/other", type="caldav", root=tmp_path / "other"),
        ),
    )
    client: TestClient = await aiohttp_client(create_app(config))
    return client


async def put_event(client: TestClient, mount: str, calendar: str, uid: str) -> int:
    r = await client.put(
        f"{mount}/calendars/user/{calendar}/{uid}.ics",
        data=EVENT.format(uid=uid),
        headers={"Content-Type": "text/calendar"},
    )
    return r.status


async def test_the_schema_is_made_once_and_a_newer_one_refused(pg_url: str) -> None:
    first, second = PgDatabase(pg_url).attach(), PgDatabase(pg_url).attach()
    try:
        await asyncio.gather(first.open(), second.open())  # two hosts starting at once
        async with first.connection() as conn:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM davserver_schema")]
            assert versions == list(range(1, VERSION + 1))
            await conn.execute("INSERT INTO davserver_schema (version) VALUES ($1)", VERSION + 1)
    finally:
        await first.close()
        await second.close()
    newer = PgDatabase(pg_url).attach()
    try:
        with pytest.raises(SchemaTooNew, match=f"version {VERSION + 1}, newer than"):
            await newer.open()
    finally:
        await newer.close()


async def test_calendar_writes_into_many_calendars_at_once_all_finish(
    aiohttp_client: Any, tmp_path: Path, pg_url: str
) -> None:
    # Each write holds its calendar's named lock (a connection) while it writes (more
    # connections): with the smallest pool, twelve at once must still all get through.
    client = await start(aiohttp_client, tmp_path, pg_url, pool_size=2)
    assert await put_event(client, "/cal", "calendar", "first") == 201  # the home
    for n in range(12):
        r = await client.request("MKCALENDAR", f"/cal/calendars/user/c{n}/")
        assert r.status == 201
    statuses = await asyncio.wait_for(
        asyncio.gather(*(put_event(client, "/cal", f"c{n}", f"e{n}") for n in range(12))), 60
    )
    assert statuses == [201] * 12


async def test_two_caldav_mounts_keep_their_indexes_apart(
    aiohttp_client: Any, tmp_path: Path, pg_url: str
) -> None:
    client = await start(aiohttp_client, tmp_path, pg_url)
    assert await put_event(client, "/cal", "calendar", "only-in-cal") == 201
    sync = (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    here = await (await client.request("REPORT", "/cal/calendars/user/calendar/", data=sync)).text()
    there = await (
        await client.request("REPORT", "/other/calendars/user/calendar/", data=sync)
    ).text()
    assert "only-in-cal.ics" in here
    assert "only-in-cal.ics" not in there


async def test_address_books_are_indexed_in_the_database_too(
    aiohttp_client: Any, tmp_path: Path, pg_url: str
) -> None:
    client = await start(aiohttp_client, tmp_path, pg_url)
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\nEMAIL:ann@example.org\r\nEND:VCARD\r\n"
    r = await client.put(
        "/cal/addressbooks/user/contacts/ann.vcf", data=card, headers={"Content-Type": "text/vcard"}
    )
    assert r.status == 201
    query = (
        '<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:prop-filter name="EMAIL">'
        '<C:text-match collation="i;unicode-casemap" match-type="contains">ann@</C:text-match>'
        "</C:prop-filter></C:filter></C:addressbook-query>"
    )
    found = await client.request(
        "REPORT", "/cal/addressbooks/user/contacts/", data=query, headers={"Depth": "1"}
    )
    assert found.status == 207 and "ann.vcf" in await found.text()
    db = PgDatabase(pg_url).attach()
    try:
        async with db.connection() as conn:
            row = await conn.fetchrow("SELECT uid, card FROM calendar_items WHERE name = 'ann.vcf'")
    finally:
        await db.close()
    assert row is not None and row["uid"] == "ann" and "ann@example.org" in row["card"]
