"""Request bodies in a Content-Encoding the server does not decode (issue #12 i): 415 on
DAV mounts, before the body is read, with a log line, and nothing stored. (aiohttp would
inflate a gzip body on the fly: a PUT stored other bytes than the client's, and a small
body could inflate to any size.)"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from caldav_data import HEAD, NSDECL, event
from gitrepo import commits
from helpers import ServerProcess, snapshot

PROPPATCH = (
    f'{HEAD}<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:p xmlns:x="urn:x">v</x:p>'
    "</D:prop></D:set></D:propertyupdate>"
)
LOCKINFO = (
    f'{HEAD}<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype></D:lockinfo>"
)
PROPFIND = f'{HEAD}<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
QUERY = (
    f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
    '<C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
)
CALENDAR = "/caldav/calendars/user/calendar/"
# (method, path, body): every way a body reaches a DAV tree.
REQUESTS = [
    ("PUT", "/dav/new.txt", "hello"),
    ("PUT", "/dav/old.txt", "replaced"),
    ("PROPPATCH", "/dav/old.txt", PROPPATCH),
    ("PROPFIND", "/dav/", PROPFIND),
    ("LOCK", "/dav/old.txt", LOCKINFO),
    ("LOCK", "/dav/unmapped.txt", LOCKINFO),
    ("MKCOL", "/dav/folder/", "<x/>"),
    ("REPORT", CALENDAR, QUERY),
    ("PUT", CALENDAR + "e.ics", event("e").decode()),
    ("MKCALENDAR", "/caldav/calendars/user/new/", ""),
    ("PROPPATCH", CALENDAR, PROPPATCH),
]
ENCODINGS = ["gzip", "deflate", "br", "gzip, identity", "x-anything"]


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

[[mounts]]
path = "/app"
type = "wsgi"
app = "{app}"
pythonpath = ["{apps}"]
"""
APPS = Path(__file__).parents[1] / "mounts" / "apps"


@pytest.fixture(params=["filesystem", "git"])
def server(
    request: Any, tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> ServerProcess:
    """A server process (its own connection handling, as deployed) with /dav, /caldav and
    a WSGI app at /app that reports the body it gets."""
    backend = request.param
    if backend == "git":
        dav, cal = 'repo = "dav.git"', 'repo = "cal.git"'
    else:
        (tmp_path / "dav").mkdir()
        (tmp_path / "cal").mkdir()
        dav, cal = 'root = "dav"', 'root = "cal"'
    conf = tmp_path / "conf.toml"
    conf.write_text(
        CONFIG.format(backend=backend, dav=dav, cal=cal, app="wsgiapps:echo", apps=APPS)
    )
    return server_process("--config", str(conf), cwd=tmp_path)


def stored(tmp_path: Path) -> dict[str, Any]:
    """Every store (folders, repositories and their commits) and the state folder."""
    out: dict[str, Any] = {}
    for p in sorted(tmp_path.iterdir()):
        if p.is_dir():
            out[p.name] = snapshot(p)
            if p.suffix == ".git":
                out[p.name + " commits"] = commits(p)
    return out


async def test_a_body_in_an_encoding_not_decoded_is_415_and_stores_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    base = server.url
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        assert (await s.put(base + "/dav/old.txt", data=b"old")).status == 201
        assert (await s.put(base + CALENDAR + "old.ics", data=event("old"))).status == 201
        before = stored(tmp_path)
        for method, path, body in REQUESTS:
            for coding in ENCODINGS:
                headers = {"Content-Encoding": coding, "Depth": "0"}
                data = gzip.compress(body.encode())
                async with s.request(method, base + path, data=data, headers=headers) as resp:
                    assert resp.status == 415, (method, path, coding, resp.status)
                    assert "Content-Encoding" in await resp.text()
        assert stored(tmp_path) == before
        # identity is no encoding at all.
        resp = await s.put(
            base + "/dav/plain.txt", data=b"plain", headers={"Content-Encoding": "identity"}
        )
        assert resp.status == 201
        assert await (await s.get(base + "/dav/plain.txt")).read() == b"plain"
        # A script mount gets the body as sent, with its Content-Encoding: never inflated.
        data = gzip.compress(b"x" * 1_000_000)
        async with s.post(
            base + "/app/?how=sized", data=data, headers={"Content-Encoding": "gzip"}
        ) as resp:
            assert (await resp.text()).split()[0] == str(len(data))
    assert server.stop() == 0
    log = server.log()
    refused = [line for line in log.splitlines() if "Content-Encoding" in line and "415" in line]
    assert len(refused) == len(REQUESTS) * len(ENCODINGS)
    assert "Traceback" not in log


async def test_the_415_comes_before_the_body_is_read(server: ServerProcess) -> None:
    """The head announces a megabyte and none of it is sent: the answer comes anyway."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"PUT /dav/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
        b"Content-Encoding: gzip\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.split()[1] == b"415"
