"""Hostile PROPFIND and REPORT bodies (issue #12 f): a property named many times is
answered once, more than ``max_propfind_props`` distinct properties is 413 with the
reason, and a large answer is rendered in slices that let other requests run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, NSDECL, caldav_config, event, parse_multistatus

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig
from davserver.dav import multistatus


def propfind(names: Iterator[str] | list[str]) -> bytes:
    """A PROPFIND body naming ``names`` (local names in the urn:x namespace)."""
    props = "".join(f"<x:{n}/>" for n in names)
    return f'{HEAD}<D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop>{props}</D:prop></D:propfind>'.encode()


async def test_a_property_named_100000_times_is_answered_once_per_resource(
    make_client: Any, root: Path
) -> None:
    for i in range(3):
        (root / f"f{i}.txt").write_bytes(b"x")
    client: TestClient = await make_client()
    body = propfind(["a"] * 100_000)
    assert len(body) > 600_000
    resp = await client.request("PROPFIND", "/", data=body, headers={"Depth": "1"})
    assert resp.status == 207
    answer = await resp.read()
    responses = parse_multistatus(answer).responses
    assert len(responses) == 4
    assert all(list(r.props) == ["{urn:x}a"] for r in responses)
    assert answer.count(b"urn:x") <= 8  # once per response (the parser asserts no twice)


@pytest.mark.parametrize(("count", "status"), [(1000, 207), (1001, 413)])
async def test_at_most_max_propfind_props_distinct_properties(
    make_client: Any, count: int, status: int
) -> None:
    client: TestClient = await make_client()
    resp = await client.request(
        "PROPFIND", "/", data=propfind(f"p{i}" for i in range(count)), headers={"Depth": "0"}
    )
    assert resp.status == status
    if status == 413:
        assert "1001 properties asked for; at most 1000" in await resp.text()


async def test_the_limit_is_the_servers_max_propfind_props(
    aiohttp_client: Any, tmp_path: Path, root: Path
) -> None:
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False, max_propfind_props=10),
        mounts=(MountConfig(path="/", type="webdav", root=root),),
    )
    client = await aiohttp_client(create_app(config))
    depth = {"Depth": "0"}
    ten = await client.request(
        "PROPFIND", "/", data=propfind(f"p{i}" for i in range(10)), headers=depth
    )
    eleven = await client.request(
        "PROPFIND", "/", data=propfind(f"p{i}" for i in range(11)), headers=depth
    )
    assert (ten.status, eleven.status) == (207, 413)
    # A repeated name counts once.
    repeated = await client.request("PROPFIND", "/", data=propfind(["p0"] * 50), headers=depth)
    assert repeated.status == 207


@pytest.fixture
def cal_config(tmp_path: Path) -> Config:
    return caldav_config(tmp_path)


@pytest.mark.parametrize("report", ["calendar-multiget", "calendar-query", "sync-collection"])
async def test_reports_name_at_most_max_propfind_props(
    cal_config: Config, aiohttp_client: Any, report: str
) -> None:
    client = await aiohttp_client(create_app(cal_config))
    calendar = "/caldav/calendars/user/calendar/"
    assert (await client.put(calendar + "a.ics", data=event("a"))).status == 201
    inner = {
        "calendar-multiget": f"<D:href>{calendar}a.ics</D:href>",
        "calendar-query": '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter>',
        "sync-collection": "<D:sync-token/><D:sync-level>1</D:sync-level>",
    }[report]
    prefix = "D" if report == "sync-collection" else "C"
    for names, status in ((["a"] * 5000, 207), ([f"p{i}" for i in range(1001)], 413)):
        props = "".join(f"<x:{n}/>" for n in names)
        body = (
            f'{HEAD}<{prefix}:{report} {NSDECL} xmlns:x="urn:x"><D:prop>{props}</D:prop>'
            f"{inner}</{prefix}:{report}>"
        )
        resp = await client.request("REPORT", calendar, data=body, headers={"Depth": "1"})
        assert resp.status == status, (report, len(names), await resp.text())


async def test_a_large_answer_is_rendered_in_slices_that_let_others_run() -> None:
    """Each item takes 1 ms of CPU to render; the loop is let go every few ms, so another
    task gets its turns during the rendering, not only after it."""
    turns = 0
    done = False

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    def render(i: int) -> str:
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:
            pass
        return f"<r>{i}</r>"

    ticker = asyncio.create_task(other())
    await asyncio.sleep(0)
    start = turns
    pieces = [p async for p in multistatus.render_in_slices(render, range(100))]
    during = turns - start
    done = True
    await ticker
    assert "".join(pieces) == "".join(f"<r>{i}</r>" for i in range(100))
    assert len(pieces) >= 5 and during >= len(pieces) - 1


async def test_a_fast_rendering_is_handed_over_in_pieces_of_about_flush_at() -> None:
    """Rendering that never uses up a slice still comes in pieces of about
    ``FLUSH_AT`` characters (a larger piece would be a fresh mapping, page faults and
    all, for each copy on its way to the socket), nothing lost or reordered."""
    item = "x" * 700
    pieces = [p async for p in multistatus.render_in_slices(lambda i: f"{i}{item}", range(1000))]
    assert "".join(pieces) == "".join(f"{i}{item}" for i in range(1000))
    assert len(pieces) > 1
    assert all(len(p) < multistatus.FLUSH_AT + 710 for p in pieces)
