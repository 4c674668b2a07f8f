"""Hostile XML request bodies over HTTP, for every method that reads one (PROPFIND,
PROPPATCH, LOCK; REPORT, MKCALENDAR and extended MKCOL on CalDAV), on the filesystem and
git backends: DOCTYPEs and entities (internal, the billion laughs, external ones naming a
local file, parameter entities, an external DTD), nesting deeper than allowed, encodings
that lie, bodies that are not XML or not the method's, bodies over the size limit.

Each is refused (400, 413 when too large), with a log line, nothing changed in the store,
and nothing of a local file in the answer. A body correctly encoded in UTF-16 is accepted
(RFC 4918 §8.2) and means what its UTF-8 twin means."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from caldav_data import EVENTS, HOME, NSDECL, Cal, MakeCal, error_condition
from helpers import snapshot
from lxml import etree

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig
from davserver.dav.xml import MAX_DEPTH

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

SECRET = "TOP-SECRET-5b1e0d"
MAX_XML_SIZE = 1 << 20  # the default of [server] max_xml_size
Z = 'xmlns:Z="urn:z"'


@dataclass(frozen=True)
class Method:
    """A method that reads an XML body, the URL it is sent to and a body it accepts."""

    name: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The test id: method and root element."""
        return f"{self.name}-{self.body.split(b' ', 1)[0].lstrip(b'<').decode()}"


WEBDAV = (
    Method(
        "PROPFIND", "/",
        f'<D:propfind xmlns:D="DAV:" {Z}><D:prop><D:getetag/><Z:x/></D:prop></D:propfind>'.encode(),
        {"Depth": "0"},
    ),
    Method(
        "PROPPATCH", "/f.txt",
        f'<D:propertyupdate xmlns:D="DAV:" {Z}><D:set><D:prop><Z:x>v</Z:x></D:prop></D:set>'
        "</D:propertyupdate>".encode(),
    ),
    # An unmapped URL: a LOCK that got through would create an empty file there.
    Method(
        "LOCK", "/new.txt",
        b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>",
    ),
)  # fmt: skip
CALDAV = (
    Method(
        "REPORT", EVENTS,
        f"<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'.encode(),
        {"Depth": "1"},
    ),
    Method(
        "REPORT", EVENTS,
        f"<D:sync-collection {NSDECL}><D:sync-token/><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>".encode(),
    ),
    Method(
        "MKCALENDAR", f"{HOME}new/",
        f"<C:mkcalendar {NSDECL}><D:set><D:prop><D:displayname>New</D:displayname>"
        "</D:prop></D:set></C:mkcalendar>".encode(),
    ),
    Method(
        "MKCOL", f"{HOME}new/",
        f"<D:mkcol {NSDECL}><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/>"
        "</D:resourcetype></D:prop></D:set></D:mkcol>".encode(),
    ),
    Method(
        "PROPPATCH", EVENTS,
        f"<D:propertyupdate {NSDECL} {Z}><D:set><D:prop><Z:x>v</Z:x></D:prop></D:set>"
        "</D:propertyupdate>".encode(),
    ),
)  # fmt: skip


def entity_bomb(levels: int = 9) -> bytes:
    """The internal subset of the billion laughs: ``&lol<levels>;`` expands to 10^levels lols."""
    decls = [b'<!ENTITY lol0 "lol">']
    for i in range(1, levels + 1):
        decls.append(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10))
    return b"".join(decls)


def hostile_bodies(body: bytes, secret: Path) -> dict[str, bytes]:
    """Refusable variants of a body the method accepts, by name."""
    start = body.index(b">") + 1  # just inside the root element

    def inside(text: bytes) -> bytes:
        return body[:start] + text + body[start:]

    def doctype(subset: bytes) -> bytes:
        return b'<?xml version="1.0"?><!DOCTYPE x [' + subset + b"]>"

    url = secret.as_uri().encode()
    declared = b'<?xml version="1.0" encoding="%s"?>'
    text = body.decode()
    return {
        "internal-entity": doctype(b'<!ENTITY e "expanded">') + inside(b"&e;"),
        "billion-laughs": doctype(entity_bomb()) + inside(b"&lol9;"),
        "external-entity": doctype(b'<!ENTITY x SYSTEM "' + url + b'">') + inside(b"&x;"),
        "etc-passwd": doctype(b'<!ENTITY x SYSTEM "file:///etc/passwd">') + inside(b"&x;"),
        "parameter-entity": doctype(b'<!ENTITY % p SYSTEM "' + url + b'"> %p;') + body,
        "external-dtd": b'<!DOCTYPE x SYSTEM "' + url + b'">' + body,
        "too-deep": inside(b"<Z:n xmlns:Z='urn:z'>" * MAX_DEPTH + b"</Z:n>" * MAX_DEPTH),
        "utf8-declared-utf16": declared % b"utf-16" + body,
        "unknown-encoding": declared % b"x-klingon" + body,
        "invalid-utf8": inside(b"\xff\xfe\xc3"),
        "utf8-bom-declared-utf16": b"\xef\xbb\xbf" + declared % b"utf-16" + body,
        "utf16-declared-utf8": ('<?xml version="1.0" encoding="utf-8"?>' + text).encode("utf-16"),
        "truncated-utf16": ('<?xml version="1.0" encoding="utf-16"?>' + text).encode("utf-16")[:-1],
        "not-xml": b"not xml at all",
        "unclosed": body[:-2],
        "foreign-root": b'<Z:unknown xmlns:Z="urn:z"><Z:x/></Z:unknown>',
    }


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A local file no answer may show."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


def leaks(answer: bytes) -> bool:
    """Whether an answer shows the secret or /etc/passwd."""
    passwd = Path("/etc/passwd")
    first = passwd.read_bytes().splitlines()[0] if passwd.exists() else b"root:x:0:0"
    return SECRET.encode() in answer or first in answer or b"root:x:" in answer


Body = bytes | AsyncIterator[bytes]
Send = Callable[[str, str, Body, dict[str, str]], Awaitable[tuple[int, bytes]]]
"""Send (method, path, body, headers) to a test server: the status and body of the answer."""


async def refuse_all(
    send: Send, store: Path, method: Method, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Send every hostile variant of the method's body: each refused with 400 (a REPORT of
    a foreign root with 403 supported-report), logged, with no trace of a local file, and
    the store left as it was."""
    caplog.set_level(logging.INFO, logger="davserver.dav")
    before = snapshot(store)
    for name, body in hostile_bodies(method.body, secret).items():
        caplog.clear()
        status, answer = await send(method.name, method.path, body, method.headers)
        if method.name == "REPORT" and name == "foreign-root":
            assert (status, error_condition(answer)) == (403, ["{DAV:}supported-report"])
        else:
            assert status == 400, (name, status, answer)
        assert not leaks(answer), name
        assert any(
            f"{method.name} " in r.getMessage() and f"refused: {status}" in r.getMessage()
            for r in caplog.records
        ), (name, caplog.text)
        assert snapshot(store) == before, name


def client_sender(client: TestClient) -> Send:
    """Send with an aiohttp test client."""

    async def send(
        method: str, path: str, body: Body, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        resp = await client.request(method, path, data=body, headers=headers)
        return resp.status, await resp.read()

    return send


def cal_sender(cal: Cal) -> Send:
    """Send with a CalDAV test client."""

    async def send(
        method: str, path: str, body: Body, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        status, _, answer = await cal.request(method, path, body, **headers)  # type: ignore[arg-type]
        return status, answer

    return send


@pytest.fixture(params=["filesystem", "git"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of the store under test."""
    return str(request.param)


@pytest.fixture
async def mount(
    request: pytest.FixtureRequest, backend: str, make_client: Any, make_cal: MakeCal,
    make_git_client: Any, repo: Path, root: Path,
) -> tuple[Send, Path]:  # fmt: skip
    """The mount the test names (indirect parameter): "webdav", at / and holding /f.txt, or
    "caldav", with the user's home made. How to send to it, and its store."""
    if request.param == "caldav":
        cal = await make_cal(backend=backend)
        await cal.request("OPTIONS", "/caldav/")  # the home is made on the first request
        return cal_sender(cal), cal.store
    if backend == "git":
        client = await make_git_client()
        assert (await client.put("/f.txt", data=b"data")).status == 201
        return client_sender(client), repo
    (root / "f.txt").write_bytes(b"data")
    return client_sender(await make_client()), root


@pytest.mark.parametrize(
    ("mount", "method"),
    [pytest.param("webdav", m, id=f"webdav-{m.id}") for m in WEBDAV]
    + [pytest.param("caldav", m, id=f"caldav-{m.id}") for m in CALDAV],
    indirect=["mount"],
)
async def test_hostile_bodies_are_refused(
    mount: tuple[Send, Path], method: Method, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await refuse_all(*mount, method, secret, caplog)


CHUNK = 64 << 10


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def padded(body: bytes, size: int) -> bytes:
    """The body grown to ``size`` bytes with white space inside its root element."""
    start = body.index(b">") + 1
    return body[:start] + b" " * (size - len(body)) + body[start:]


@pytest.mark.parametrize(
    ("mount", "methods"), [("webdav", WEBDAV), ("caldav", CALDAV)], indirect=["mount"]
)
async def test_bodies_over_the_limit_are_413(
    mount: tuple[Send, Path], methods: tuple[Method, ...], caplog: pytest.LogCaptureFixture
) -> None:
    """Refused as soon as the limit is passed, announced (Content-Length) or not (chunks);
    logged; the store unchanged."""
    send, store = mount
    caplog.set_level(logging.INFO, logger="davserver.dav")
    before = snapshot(store)
    for method in methods:
        big = padded(method.body, MAX_XML_SIZE + 1)
        for body in (big, _chunks(big)):
            caplog.clear()
            status, _ = await send(method.name, method.path, body, method.headers)
            assert status == 413, (method.id, status)
            assert "refused: 413" in caplog.text, method.id
    assert snapshot(store) == before


async def test_a_chunked_body_over_the_limit_that_came_whole_is_413(
    aiohttp_client: Any, tmp_path: Path, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunked body is not announced: one that arrived whole with its head, in one write,
    is measured at once (the handler takes it without waiting) and refused all the same."""
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False, max_xml_size=256),
        mounts=(MountConfig(path="/", type="webdav", root=root),),
    )
    client = await aiohttp_client(create_app(config))
    (root / "f.txt").write_bytes(b"data")
    caplog.set_level(logging.INFO, logger="davserver.dav")
    before = snapshot(root)
    body = padded(WEBDAV[1].body, 300)
    head = "PROPPATCH /f.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head.encode() + chunked)  # head and body in one segment
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"
    assert "PROPPATCH /f.txt refused: 413 body exceeds the limit of 256 bytes" in caplog.text
    assert snapshot(root) == before


async def test_a_body_just_under_the_limit_is_read(client: TestClient, root: Path) -> None:
    (root / "f.txt").write_bytes(b"data")
    body = padded(WEBDAV[1].body, MAX_XML_SIZE)
    assert (await client.request("PROPPATCH", "/f.txt", data=body)).status == 207


@pytest.mark.parametrize(
    ("mount", "method"),
    [pytest.param("webdav", WEBDAV[1], id="PROPPATCH"), pytest.param("webdav", WEBDAV[2], id="LOCK"),
     pytest.param("caldav", CALDAV[0], id="REPORT")],
    indirect=["mount"],
)  # fmt: skip
async def test_an_empty_body_where_one_is_needed_is_400(
    mount: tuple[Send, Path], method: Method
) -> None:
    """A PROPPATCH and a REPORT need a body; a LOCK without one refreshes the lock its If
    header names, so without that header it is a bad request."""
    send, store = mount
    before = snapshot(store)
    for body in (b"", b" \r\n "):
        status, _ = await send(method.name, method.path, body, method.headers)
        assert status == 400, (method.id, body)
    assert snapshot(store) == before


# -- UTF-16 is XML too -----------------------------------------------------------------------


def utf16(body: str) -> bytes:
    """A body as a client writing UTF-16 sends it: byte order mark and declaration."""
    return ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16")


async def test_utf16_bodies_are_accepted_and_mean_what_they_say(
    client: TestClient, root: Path
) -> None:
    (root / "f.txt").write_bytes(b"data")
    value = "Grüße, 東京 😀"
    set_body = (
        f'<D:propertyupdate xmlns:D="DAV:" {Z}><D:set><D:prop><Z:note>{value}</Z:note>'
        "</D:prop></D:set></D:propertyupdate>"
    )
    assert (await client.request("PROPPATCH", "/f.txt", data=utf16(set_body))).status == 207
    ask = f'<D:propfind xmlns:D="DAV:" {Z}><D:prop><Z:note/></D:prop></D:propfind>'
    resp = await client.request("PROPFIND", "/f.txt", data=utf16(ask), headers={"Depth": "0"})
    assert resp.status == 207
    answer = etree.fromstring(await resp.read())
    assert answer.findtext(".//{urn:z}note") == value

    owner = f"<D:owner>{value}</D:owner>"
    lockinfo = (
        '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        f"<D:locktype><D:write/></D:locktype>{owner}</D:lockinfo>"
    )
    resp = await client.request("LOCK", "/f.txt", data=utf16(lockinfo))
    assert resp.status == 200
    answer = etree.fromstring(await resp.read())
    assert answer.findtext(".//{DAV:}activelock/{DAV:}owner") == value


async def test_utf16_report_and_mkcalendar_are_accepted(cal: Cal) -> None:
    await cal.request("OPTIONS", "/caldav/")
    body = (
        f"<C:mkcalendar {NSDECL}><D:set><D:prop><D:displayname>Büro</D:displayname>"
        "</D:prop></D:set></C:mkcalendar>"
    )
    status, _, _ = await cal.request("MKCALENDAR", f"{HOME}work/", utf16(body))
    assert status == 201
    assert (await cal.prop(f"{HOME}work/", "{DAV:}displayname")).text == "Büro"
    query = CALDAV[0].body.decode()
    ms = await cal.report(f"{HOME}work/", utf16(query))
    assert ms.responses == []
