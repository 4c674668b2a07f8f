"""The metrics mount: Prometheus's text format, added up over every worker (a count is
the same whichever worker answers the scrape, and survives a worker's death), with the
locks held, git commits and repack runs, calendar index sizes, requests under way and
connections."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from davserver.backends.git import GitStorage
from helpers import ServerProcess
from opsite import basic, site
from prometheus_client.parser import text_string_to_metric_families

from davserver.app import ROUTER_KEY
from davserver.mounts.dav import DavMount
from davserver.runtime import metrics

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:m1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nDURATION:PT1H\r\n"
    "SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
LOCK = (
    '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)
EXTRA = """
[[mounts]]
path = "/git"
type = "webdav"
backend = "git"
repo = "store.git"
access = { anonymous = "read-write" }

[[mounts]]
path = "/cal"
type = "caldav"
root = "calendars"
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(base: str) -> Samples:
    """Every sample of one scrape, on a new connection (any worker may answer)."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
        s.get(f"{base}/metrics", headers=basic()) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counts_add_up_over_the_workers_storage_faults_included(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process(
        "--config", str(site(tmp_path, accounts, EXTRA)), "--workers", "2", cwd=tmp_path
    )
    base = server.url
    body = b"x" * 1000
    # One connection per request: the kernel spreads them over both workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for i in range(40):
            async with s.put(f"{base}/files/f{i}.txt", data=body) as resp:
                assert resp.status == 201
        for i in range(3):
            async with s.put(f"{base}/git/g{i}.txt", data=b"g") as resp:
                assert resp.status == 201
        async with s.request("SEARCH", f"{base}/files/f0.txt") as resp:
            assert resp.status == 405
        async with s.request(
            "LOCK", f"{base}/files/f1.txt", data=LOCK, headers={"Timeout": "Second-600"}
        ) as resp:
            assert resp.status == 200
        async with s.put(
            f"{base}/cal/calendars/ops/calendar/m1.ics",
            data=EVENT,
            headers={**basic(), "Content-Type": "text/calendar"},
        ) as resp:
            assert resp.status == 201
        # A git process holds the branch's lock: the write fails with 503, a storage fault.
        lock = tmp_path / "store.git" / "refs" / "heads" / "main.lock"
        lock.write_text("held by a test")
        async with s.put(f"{base}/git/refused.txt", data=b"r") as resp:
            assert resp.status == 503
        lock.unlink()
    answers = set()
    for _ in range(6):
        samples = await scrape(base)
        puts = value(
            samples, "davserver_requests_total", mount="/files", method="PUT", status="2xx"
        )
        answers.add(puts)
        assert value(samples, "davserver_workers") == 2
        assert value(samples, "davserver_git_commits_total") == 3
        assert (
            value(samples, "davserver_storage_faults_total", mount="/git", kind="BranchBusy") == 1
        )
        assert value(samples, "davserver_locks_held") == 1
        assert value(samples, "davserver_calendar_index_items", mount="/cal") == 1
        # A method nobody knows is counted, without a label value of its own.
        assert (
            value(samples, "davserver_requests_total", mount="/files", method="OTHER", status="4xx")
            == 1
        )
        assert (
            value(samples, "davserver_request_duration_seconds_count", mount="/files", method="PUT")
            == 40
        )
        assert value(samples, "davserver_request_body_bytes_total", mount="/files") >= 40_000
        assert value(samples, "davserver_response_body_bytes_total", mount="/files") > 0
        assert value(samples, "davserver_connections_open") >= 1  # the scrape's own
        assert value(samples, "davserver_requests_in_flight") >= 1
    assert answers == {40}

    # A worker that dies is replaced; what it counted stays counted.
    workers = psutil.Process(server.proc.pid).children()
    os.kill(workers[0].pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(psutil.Process(server.proc.pid).children()) == 2 and workers[0].pid not in {
            p.pid for p in psutil.Process(server.proc.pid).children()
        }:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    samples = await scrape(base)
    assert (
        value(samples, "davserver_requests_total", mount="/files", method="PUT", status="2xx") == 40
    )
    assert value(samples, "davserver_workers") == 2
    assert value(samples, "davserver_connections_open") < 10


async def test_not_public_by_default(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--config", str(site(tmp_path, accounts)), "--workers", "1")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/metrics") as resp:
            assert resp.status == 401
            assert "davserver_" not in await resp.text()
        async with s.delete(f"{server.url}/metrics", headers=basic()) as resp:
            assert resp.status == 405
    server.stop()
    assert '"GET /metrics HTTP/1.1" 401' in server.log()


async def test_a_restart_starts_from_zero(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = str(site(tmp_path, accounts))
    server = server_process("--config", conf, "--workers", "1")
    async with aiohttp.ClientSession() as s, s.put(f"{server.url}/files/a", data=b"a") as resp:
        assert resp.status == 201
    samples = await scrape(server.url)
    assert (
        value(samples, "davserver_requests_total", mount="/files", method="PUT", status="2xx") == 1
    )
    server.stop()
    server = server_process("--config", conf, "--workers", "1")
    samples = await scrape(server.url)
    assert (
        value(samples, "davserver_requests_total", mount="/files", method="PUT", status="2xx") == 0
    )


async def test_repack_runs_are_counted(
    make_git_client: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    # In-process, the counters keep their values in memory (no multiprocess folder).
    counted = metrics.Metrics(tmp_path / "metrics")
    monkeypatch.setattr(metrics, "active", counted)

    def repacks() -> float:
        (family,) = counted.git_repacks.collect()
        (sample,) = [s for s in family.samples if s.name == "davserver_git_repacks_total"]
        return sample.value

    client = await make_git_client(gc_interval=0)
    (mount,) = client.app[ROUTER_KEY].mounts
    assert isinstance(mount, DavMount) and isinstance(mount.storage, GitStorage)
    for i in range(3):
        assert (await client.put(f"/f{i}.txt", data=b"%d" % i)).status == 201
    assert repacks() == 0
    done = await mount.storage.pack()
    assert done is not None and done.objects >= 9  # a blob, a tree and a commit each
    assert repacks() == 1
    assert (await client.get("/f2.txt")).status == 200
