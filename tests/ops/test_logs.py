"""``[log]``: JSON or text lines, in files that SIGUSR1 reopens after logrotate moved them,
the access log in the combined format or JSON, one request id on every line of a request."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from helpers import ServerProcess
from opsite import basic, site

from davserver.config import ConfigError, load

COMBINED = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /w/hello HTTP/1\.1" '
    r'200 \d+ "-" "[^"]+" mount=/w auth=-$'
)


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def wait_for(check: Callable[[], bool]) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not written in time")  # pragma: no cover


async def test_json_lines_share_the_request_id_and_survive_rotation(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    (tmp_path / "logs").mkdir()
    conf = site(tmp_path, accounts)
    conf.write_text('[log]\nformat = "json"\nfile = "logs/server.log"\n' + conf.read_text())
    server = server_process("--config", str(conf), "--workers", "2")
    log = tmp_path / "logs" / "server.log"
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            async with s.get(f"{server.url}/w/errors") as resp:
                assert await resp.text() == "logged"
        given_id = {"X-Request-Id": "lb-1234", **basic()}
        async with s.get(f"{server.url}/w/hello", headers=given_id) as resp:
            assert await resp.text() == "Hello, World!"
    await wait_for(lambda: log.exists() and log.read_text().count('"status": 200') == 3)
    lines = json_lines(log)
    problems = [line for line in lines if "problem" in str(line.get("message"))]
    assert len(problems) == 4  # two lines per request, written by the app's thread
    ids = {line["request_id"] for line in problems}
    assert len(ids) == 2 and "-" not in ids
    access = [line for line in lines if line["logger"] == "davserver.access"]
    for rid in ids:
        (mine,) = [line for line in access if line["request_id"] == rid]
        assert mine["path"] == "/w/errors" and mine["status"] == 200
        assert mine["method"] == "GET" and mine["mount"] == "/w" and mine["client"] == "127.0.0.1"
        assert mine["bytes"] > 6 and mine["user"] == "-" and isinstance(mine["duration"], float)
        assert mine["auth"] == "-"
        assert [line["message"] for line in problems if line["request_id"] == rid] == [
            "wsgi wsgiapps:validated: first problem",
            "wsgi wsgiapps:validated: second problem",
        ]
    (given,) = [line for line in access if line["path"] == "/w/hello"]
    assert given["request_id"] == "lb-1234"  # a proxy's plain id is kept
    assert given["user"] == "ops" and given["auth"] == "htpasswd"

    # logrotate moves the file away and sends SIGUSR1 to the master.
    log.rename(tmp_path / "logs" / "server.log.1")
    server.proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(6):  # new connections: both workers answer some
            async with s.get(f"{server.url}/w/hello") as resp:
                assert await resp.text() == "Hello, World!"
    await wait_for(lambda: log.exists() and log.read_text().count('"/w/hello"') == 6)
    assert len({line["pid"] for line in json_lines(log)}) == 2  # each worker reopened
    rotated = (tmp_path / "logs" / "server.log.1").read_text()
    assert rotated.count('"/w/hello"') == 1  # only the line from before the rotation
    assert server.proc.poll() is None


async def test_text_access_log_in_the_combined_format_in_its_own_file(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = site(tmp_path, accounts)
    conf.write_text('[log]\naccess_file = "access.log"\n' + conf.read_text())
    server = server_process("--config", str(conf), "--workers", "1")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/w/hello") as resp:
            assert await resp.text() == "Hello, World!"
        async with s.get(f"{server.url}/w/errors", headers=basic()) as resp:
            assert await resp.text() == "logged"
    access = tmp_path / "access.log"
    await wait_for(lambda: access.exists() and access.read_text().count("\n") == 2)
    first, second = access.read_text().splitlines()
    assert COMBINED.match(first), first
    assert re.match(
        r'^127\.0\.0\.1 - ops \[.*"GET /w/errors HTTP/1\.1" 200 .* mount=/w auth=htpasswd$', second
    )
    server.stop()
    # The other lines stay on stderr, with the request id in brackets.
    (line,) = [x for x in server.log().splitlines() if "first problem" in x]
    assert re.search(r" WARNING davserver\.wsgi: \[[0-9a-f]+-[0-9a-f]{6}-\d+\] wsgi ", line)
    assert "davserver.access" not in server.log()


async def test_a_report_of_the_root_is_logged_with_the_tree_that_answered_it(
    tmp_path: Path, accounts: Path, server_process: Callable[..., ServerProcess]
) -> None:
    # No mount holds "/": a REPORT there goes to the CalDAV tree's root.
    conf = site(tmp_path, accounts, '[[mounts]]\npath = "/cal"\ntype = "caldav"\nroot = "cal"\n')
    conf.write_text('[log]\naccess_file = "access.log"\n' + conf.read_text())
    server = server_process("--config", str(conf), "--workers", "1")
    body = '<?xml version="1.0"?><D:principal-search-property-set xmlns:D="DAV:"/>'
    headers = {"Depth": "0", "Content-Type": "application/xml", **basic()}
    async with (
        aiohttp.ClientSession() as s,
        s.request("REPORT", f"{server.url}/", data=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        assert b"principal-search-property-set" in await resp.read()
    access = tmp_path / "access.log"
    await wait_for(lambda: access.exists() and "REPORT" in access.read_text())
    (line,) = access.read_text().splitlines()
    assert re.match(
        r'^127\.0\.0\.1 - ops \[.*"REPORT / HTTP/1\.1" 200 .* mount=/cal auth=htpasswd$', line
    )


def test_bad_log_options_are_refused(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[log]\nformat = "xml"\n[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "d"\n')
    with pytest.raises(ConfigError, match=r"log\.format: 'xml' is not one of text, json"):
        load(conf)
    conf.write_text('[log]\nfiles = "x"\n[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "d"\n')
    with pytest.raises(ConfigError, match=r"log.files: unknown key"):
        load(conf)
