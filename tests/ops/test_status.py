"""The status mount: its page and JSON show every worker and the requests under way (with
method, path, client and age), the health answer turns 503 while the server stops, and
none of it is public unless the configuration says so."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from helpers import ServerProcess
from opsite import basic, site

from davserver.config import ConfigError, load


async def _status(base: str) -> dict[str, object]:
    # A new connection each time: the kernel hands it to any of the workers.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
        s.get(f"{base}/server-status/json", headers=basic()) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        data: dict[str, object] = json.loads(await resp.read())
        return data


async def test_every_worker_and_every_request_under_way_is_shown(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--config", str(site(tmp_path, accounts)), "--workers", "2")
    base = server.url
    async with aiohttp.ClientSession() as s:
        slow = [asyncio.create_task(s.get(f"{base}/w/slow?s=3")) for _ in range(4)]
        await asyncio.sleep(1.0)
        seen_from: set[object] = set()
        for _ in range(10):
            state = await _status(base)
            workers = state["workers"]
            assert isinstance(workers, list) and len(workers) == 2
            pids = {w["pid"] for w in workers}
            busy = state["in_flight"]
            assert isinstance(busy, list)
            slow_ones = [r for r in busy if r["path"] == "/w/slow?s=3"]
            # Four slow requests, spread over the workers as the kernel chose, all shown.
            assert len(slow_ones) == 4
            for row in slow_ones:
                assert row["method"] == "GET"
                assert row["client"] == "127.0.0.1"
                assert row["worker"] in pids
                assert 0.5 < row["age_seconds"] < 3.5
                assert row["request_id"]
            # The status request itself is under way too, in the worker answering it.
            mine = [r for r in busy if r["path"] == "/server-status/json"]
            assert len(mine) == 1
            seen_from.add(mine[0]["worker"])
            assert state["version"] and state["uptime_seconds"] > 0
        assert len(seen_from) == 2  # both workers answered some, and agreed
        async with s.get(f"{base}/server-status/", headers=basic()) as resp:
            page = await resp.text()
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert page.count("/w/slow?s=3") == 4
            assert "<h2>Workers</h2>" in page
        for task in slow:
            async with await task as resp:
                assert await resp.read() == b"slow"
        state = await _status(base)
        assert [r["path"] for r in state["in_flight"]] == ["/server-status/json"]  # type: ignore[union-attr]
        assert state["requests"] >= 4 + 10  # type: ignore[operator]
        async with s.get(f"{base}/server-status/health", headers=basic()) as resp:
            assert resp.status == 200
            assert await resp.text() == "ok\n"


async def test_not_public_by_default(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--config", str(site(tmp_path, accounts)), "--workers", "1")
    async with aiohttp.ClientSession() as s:
        for path in ("/server-status", "/server-status/json", "/server-status/health"):
            async with s.get(server.url + path) as resp:
                assert resp.status == 401
                assert "/w/" not in await resp.text()
        async with s.post(f"{server.url}/server-status/", headers=basic()) as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "GET, HEAD"
        async with s.get(f"{server.url}/server-status/other", headers=basic()) as resp:
            assert resp.status == 404
    server.stop()
    assert '"GET /server-status/json HTTP/1.1" 401' in server.log()


def test_without_accounts_a_status_mount_must_be_opened_on_purpose(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[[mounts]]\npath = "/status"\ntype = "status"\n')
    with pytest.raises(ConfigError, match=r"mounts\[0\].access.anonymous: a status mount is not"):
        load(conf)
    conf.write_text('[[mounts]]\npath = "/m"\ntype = "metrics"\n')
    with pytest.raises(ConfigError, match="a metrics mount is not public by default"):
        load(conf)
    conf.write_text(
        '[[mounts]]\npath = "/status"\ntype = "status"\naccess = { anonymous = "read-only" }\n'
    )
    assert load(conf).mounts[0].access.anonymous == "read-only"


async def test_health_only_mount_for_a_load_balancer(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    extra = (
        '[[mounts]]\npath = "/health"\ntype = "status"\nhealth_only = true\n'
        'access = { anonymous = "read-only" }\n'
    )
    server = server_process("--config", str(site(tmp_path, accounts, extra)), "--workers", "1")
    async with aiohttp.ClientSession() as s:
        for path in ("/health", "/health/"):
            async with s.get(server.url + path) as resp:
                assert resp.status == 200
                assert await resp.text() == "ok\n"
        async with s.get(f"{server.url}/health/json") as resp:
            assert resp.status == 404  # nothing else is shown there
        async with s.put(f"{server.url}/health/", data=b"x") as resp:
            assert resp.status == 401  # read-only for anonymous
        async with s.get(f"{server.url}/server-status/json") as resp:
            assert resp.status == 401


async def test_health_says_stopping_once_the_server_stops(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--config", str(site(tmp_path, accounts)), "--workers", "1")
    async with aiohttp.ClientSession() as s, aiohttp.ClientSession() as other:
        async with s.get(f"{server.url}/server-status/health", headers=basic()) as resp:
            assert await resp.text() == "ok\n"  # the connection stays open
        slow = asyncio.create_task(other.get(f"{server.url}/w/slow?s=2"))
        await asyncio.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        async with s.get(f"{server.url}/server-status/health", headers=basic()) as resp:
            assert resp.status == 503
            assert await resp.text() == "stopping\n"
        async with await slow as resp:
            assert await resp.read() == b"slow"
