"""Shared helpers of the CalDAV tests (tests/caldav/test_caldav_*.py): a server with a CalDAV
mount, iCalendar objects to store, and PROPFIND/REPORT answers parsed with lxml.

A server here is the layout of the embedded default: WebDAV of ``data`` at ``/`` and
CalDAV at ``/caldav/``, its calendars in ``calendars`` (filesystem backend) or in the
bare repository ``calendars.git`` (git backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp.test_utils import TestClient
from lxml import etree

from davserver.config import Config, MountConfig, ServerConfig

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
A = "{http://apple.com/ns/ical/}"
NSDECL = (
    'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CS="http://calendarserver.org/ns/" xmlns:A="http://apple.com/ns/ical/"'
)
HEAD = '<?xml version="1.0" encoding="utf-8"?>'
USER = "user"
PREFIX = "/caldav"
HOME = f"{PREFIX}/calendars/{USER}/"
EVENTS = f"{HOME}calendar/"
TASKS = f"{HOME}tasks/"
PRINCIPAL = f"{PREFIX}/principals/{USER}/"
ICS = "text/calendar; charset=utf-8"
DISCOVERY_PROPS = (
    f"{D}current-user-principal",
    f"{D}principal-URL",
    f"{C}calendar-home-set",
    f"{C}calendar-user-address-set",
    f"{D}displayname",
    f"{D}owner",
    f"{D}supported-report-set",
    f"{D}resourcetype",
)


# -- iCalendar objects ---------------------------------------------------------------------


def ical(*lines: str) -> bytes:
    """A VCALENDAR wrapping ``lines``, with CRLF line ends."""
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//davserver tests//EN", *lines]
    return ("\r\n".join([*body, "END:VCALENDAR"]) + "\r\n").encode()


def vevent(
    uid: str,
    summary: str = "Meeting",
    start: str = "20260105T100000Z",
    end: str = "20260105T110000Z",
    *extra: str,
) -> list[str]:
    """The lines of one VEVENT."""
    return [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        f"SUMMARY:{summary}",
        *extra,
        "END:VEVENT",
    ]


def event(uid: str, summary: str = "Meeting", *extra: str, **times: str) -> bytes:
    """A calendar object holding one VEVENT."""
    return ical(*vevent(uid, summary, *_times(times), *extra))


def _times(times: dict[str, str]) -> tuple[str, str]:
    return times.get("start", "20260105T100000Z"), times.get("end", "20260105T110000Z")


def todo(uid: str, summary: str = "Task", *extra: str) -> bytes:
    """A calendar object holding one VTODO."""
    return ical(
        "BEGIN:VTODO",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"SUMMARY:{summary}",
        *extra,
        "END:VTODO",
    )


# A weekly meeting on Mondays 10:00-11:00 UTC from 5 Jan 2026, five times; the third (19 Jan)
# is cancelled by EXDATE and the fourth (26 Jan) moved to 14:00 by an override.
RECURRING = ical(
    *vevent(
        "weekly@example.com", "Weekly", "20260105T100000Z", "20260105T110000Z",
        "RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE:20260119T100000Z",
    ),
    *vevent(
        "weekly@example.com", "Weekly (moved)", "20260126T140000Z", "20260126T150000Z",
        "RECURRENCE-ID:20260126T100000Z",
    ),
)  # fmt: skip


# -- the server ----------------------------------------------------------------------------


def caldav_config(
    tmp_path: Path, *, backend: str = "filesystem", path: str = "/caldav", **options: Any
) -> Config:
    """WebDAV of ``tmp_path/data`` at / and CalDAV at ``path`` over ``backend``."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    store: dict[str, Any] = (
        {"repo": tmp_path / "calendars.git"}
        if backend == "git"
        else {"root": tmp_path / "calendars"}
    )
    if backend == "filesystem":
        (tmp_path / "calendars").mkdir(exist_ok=True)
    mounts = [MountConfig(path=path, type="caldav", backend=backend, **store, **options)]
    if path != "/":
        mounts.insert(0, MountConfig(path="/", type="webdav", root=data))
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=tuple(mounts)
    )


@dataclass(frozen=True)
class Prop:
    """A property in a response: its element and the status of its propstat."""

    status: int
    element: etree._Element

    @property
    def text(self) -> str:
        """The element's text content (all of it)."""
        return "".join(self.element.itertext())

    @property
    def hrefs(self) -> list[str]:
        """The ``D:href`` children of the element."""
        return [h.text or "" for h in self.element.iter(f"{D}href")]


@dataclass
class Response:
    """One ``D:response`` of a multistatus."""

    href: str
    status: int | None = None
    props: dict[str, Prop] = field(default_factory=dict)
    error: etree._Element | None = None

    def ok(self, name: str) -> etree._Element:
        """The element of ``name``, which must have been found (200)."""
        prop = self.props.get(name)
        assert prop is not None, f"{name} not in the response of {self.href}"
        assert prop.status == 200, f"{name} of {self.href}: {prop.status}"
        return prop.element

    def value(self, name: str) -> str:
        """The text of a found property."""
        return "".join(self.ok(name).itertext())


def status_of(line: str | None) -> int:
    """The code in an ``HTTP/1.1 200 OK`` status line."""
    assert line, "no status"
    return int(line.split()[1])


@dataclass
class Multistatus:
    """A parsed 207 answer."""

    responses: list[Response]
    sync_token: str | None
    root: etree._Element

    def by_href(self) -> dict[str, Response]:
        """The responses by (percent-decoded) href; an href appears once."""
        out: dict[str, Response] = {}
        for r in self.responses:
            key = unquote(r.href)
            assert key not in out, f"{key} twice in one multistatus"
            out[key] = r
        return out

    def __getitem__(self, href: str) -> Response:
        return self.by_href()[href]


def parse_multistatus(data: bytes) -> Multistatus:
    """Parse a multistatus body, checking its shape."""
    root = etree.fromstring(data)
    assert root.tag == f"{D}multistatus", data[:200]
    responses = []
    for el in root.iterchildren(f"{D}response"):
        hrefs = el.findall(f"{D}href")
        assert len(hrefs) == 1, etree.tostring(el)
        r = Response(href=hrefs[0].text or "")
        if el.find(f"{D}status") is not None:
            r.status = status_of(el.findtext(f"{D}status"))
            assert el.find(f"{D}propstat") is None, "a response with status and propstats"
        r.error = el.find(f"{D}error")
        for ps in el.iterchildren(f"{D}propstat"):
            code = status_of(ps.findtext(f"{D}status"))
            for prop in ps.find(f"{D}prop"):
                if isinstance(prop.tag, str):
                    assert prop.tag not in r.props, f"{prop.tag} twice in {r.href}"
                    r.props[prop.tag] = Prop(code, prop)
        responses.append(r)
    return Multistatus(responses, root.findtext(f"{D}sync-token"), root)


def propfind_body(*names: str) -> bytes:
    """A PROPFIND asking for ``names`` (Clark names)."""
    root = etree.Element(f"{D}propfind", nsmap={"D": "DAV:"})
    prop = etree.SubElement(root, f"{D}prop")
    for name in names:
        etree.SubElement(prop, name)
    return HEAD.encode() + etree.tostring(root)


def error_condition(data: bytes) -> list[str]:
    """The precondition elements of a ``D:error`` body."""
    root = etree.fromstring(data)
    assert root.tag == f"{D}error", data
    return [child.tag for child in root if isinstance(child.tag, str)]


class Cal:
    """A test client of a server with a CalDAV mount, with CalDAV-shaped helpers."""

    def __init__(self, client: TestClient, tmp_path: Path, backend: str) -> None:
        self.client = client
        self.tmp_path = tmp_path
        self.backend = backend

    @property
    def url(self) -> str:
        """The server's base URL (for the caldav library and vdirsyncer)."""
        return str(self.client.make_url("/"))

    def folder(self, calendar: str = "calendar", user: str = USER) -> Path:
        """Where a calendar's items lie on disk (filesystem backend)."""
        return self.tmp_path / "calendars" / user / calendar

    @property
    def store(self) -> Path:
        """The calendars folder or repository."""
        name = "calendars.git" if self.backend == "git" else "calendars"
        return self.tmp_path / name

    async def request(
        self, method: str, path: str, body: bytes | str | None = None, **headers: str
    ) -> tuple[int, Any, bytes]:
        """Send a request; the status, headers and body of the answer."""
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"
        resp = await self.client.request(
            method, path, data=body, headers=hdrs, allow_redirects=False
        )
        return resp.status, resp.headers, await resp.read()

    async def propfind(
        self, path: str, *names: str, depth: str = "0", **headers: str
    ) -> Multistatus:
        """A PROPFIND for ``names`` that must answer 207."""
        status, _, data = await self.request(
            "PROPFIND", path, propfind_body(*names), Depth=depth, **headers
        )
        assert status == 207, (status, data)
        return parse_multistatus(data)

    async def prop(self, path: str, name: str) -> Prop:
        """One property of one resource (Depth 0)."""
        return (await self.propfind(path, name)).responses[0].props[name]

    async def ctag(self, path: str = EVENTS) -> tuple[str, str]:
        """A calendar's getctag and sync-token."""
        ms = await self.propfind(path, f"{CS}getctag", f"{D}sync-token")
        r = ms.responses[0]
        return r.value(f"{CS}getctag"), r.value(f"{D}sync-token")

    async def report(
        self, path: str, body: str | bytes, depth: str | None = "1", **headers: str
    ) -> Multistatus:
        """A REPORT that must answer 207."""
        if depth is not None:
            headers["Depth"] = depth
        status, _, data = await self.request("REPORT", path, body, **headers)
        assert status == 207, (status, data)
        return parse_multistatus(data)

    async def put(self, path: str, data: bytes, content_type: str = ICS, **headers: str):
        """PUT an iCalendar object; the status, headers and body of the answer."""
        return await self.request("PUT", path, data, Content_Type=content_type, **headers)

    async def put_ok(self, path: str, data: bytes, **headers: str) -> str:
        """PUT that must succeed (201 or 204); the ETag it answers."""
        status, hdrs, body = await self.put(path, data, **headers)
        assert status in (201, 204), (status, body)
        return hdrs["ETag"]

    async def sync(
        self, path: str = EVENTS, token: str = "", *, limit: int | None = None, **headers: str
    ) -> Multistatus:
        """A sync-collection REPORT asking for getetag."""
        return await self.report(path, sync_body(token, limit), depth=None, **headers)

    async def multiget(self, path: str, hrefs: list[str], prop: str = "") -> Multistatus:
        """A calendar-multiget of ``hrefs`` asking for getetag and ``prop`` (XML)."""
        links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
        body = (
            f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop><D:getetag/>{prop or '<C:calendar-data/>'}"
            f"</D:prop>{links}</C:calendar-multiget>"
        )
        return await self.report(path, body)


def sync_body(token: str = "", limit: int | None = None, prop: str = "<D:getetag/>") -> str:
    """A sync-collection body (an empty ``D:sync-token`` when ``token`` is empty)."""
    tok = f"<D:sync-token>{token}</D:sync-token>" if token else "<D:sync-token/>"
    lim = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit is not None else ""
    return (
        f"{HEAD}<D:sync-collection {NSDECL}>{tok}<D:sync-level>1</D:sync-level>"
        f"{lim}<D:prop>{prop}</D:prop></D:sync-collection>"
    )


MakeCal = Callable[..., Awaitable[Cal]]
