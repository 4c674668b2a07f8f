"""The requests of bench/caldav.py: a small keep-alive HTTP client (one connection per
thread, loopback only) and the bodies of the workloads (those of the team's reference
perf/bench.py)."""

from __future__ import annotations

import base64
import http.client
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urljoin, urlsplit

from caldav_gen import FLOATING_ZONE, VTZ, ical_utc

NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"}
CALENDAR_DATA = "{urn:ietf:params:xml:ns:caldav}calendar-data"
XML = "application/xml; charset=utf-8"
ICS = "text/calendar; charset=utf-8"
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
PROPFIND_CUP = (
    HEAD + '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'
)
PROPFIND_HOME = (
    HEAD + '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><C:calendar-home-set/></D:prop></D:propfind>"
)
PROPFIND_ETAG = HEAD + '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
MKCALENDAR = (
    HEAD + '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
    "<D:displayname>perf 10k</D:displayname><C:supported-calendar-component-set>"
    '<C:comp name="VEVENT"/></C:supported-calendar-component-set>'
    "<C:calendar-timezone>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//anchors//EN\r\n"
    + VTZ[FLOATING_ZONE].replace("\n", "\r\n")
    + "\r\nEND:VCALENDAR\r\n</C:calendar-timezone></D:prop></D:set></C:mkcalendar>"
)
"""The benchmark's calendar: events only, its floating times in FLOATING_ZONE."""


def calendar_query(start: datetime, end: datetime, *, expand: bool = False) -> str:
    """A VEVENT time-range query asking for getetag and calendar-data (expanded or not)."""
    rng = f'start="{ical_utc(start)}" end="{ical_utc(end)}"'
    data = (
        f"<C:calendar-data><C:expand {rng}/></C:calendar-data>" if expand else "<C:calendar-data/>"
    )
    return (
        HEAD + '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f'<D:prop><D:getetag/>{data}</D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="VEVENT"><C:time-range {rng}/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )


def multiget(hrefs: list[str]) -> str:
    """A calendar-multiget of ``hrefs`` asking for getetag and calendar-data."""
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        HEAD + '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{links}</C:calendar-multiget>"
    )


def sync_collection(token: str) -> str:
    """A sync-collection asking for getetag (the initial one when ``token`` is empty)."""
    tok = f"<D:sync-token>{token}</D:sync-token>" if token else "<D:sync-token/>"
    return (
        HEAD + f'<D:sync-collection xmlns:D="DAV:">{tok}<D:sync-level>1</D:sync-level>'
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


def new_event(uid: str, i: int) -> bytes:
    """An event far outside every window (2030), so that it changes no answer."""
    d = f"203001{1 + i % 28:02d}"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davserver//bench//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        f"DTSTART:{d}T100000Z\r\nDTEND:{d}T110000Z\r\nSUMMARY:bench put {i}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@dataclass
class Answer:
    """A response, read whole, and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


class Client:
    """Requests to one server over keep-alive connections (one per thread)."""

    def __init__(self, base: str, auth: tuple[str, str] | None, timeout: float = 300) -> None:
        parts = urlsplit(base)
        assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
        self.base = base
        self._host, self._port = parts.hostname, parts.port or 80
        self._timeout = timeout
        self._local = threading.local()
        self._auth = (
            {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}
            if auth
            else {}
        )

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def request(
        self, method: str, url: str, body: str | bytes | None = None, **headers: str
    ) -> Answer:
        """Send one request (retrying once on a connection the server closed)."""
        path = urlsplit(urljoin(self.base, url)).path
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Accept-Encoding": "identity", **self._auth}
        if data is not None and method != "PUT":
            hdrs["Content-Type"] = XML
        hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
        for attempt in (0, 1):
            conn = self._connection()
            try:
                t0 = time.perf_counter()
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
                elapsed = time.perf_counter() - t0
                return Answer(resp.status, dict(resp.getheaders()), payload, elapsed)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def responses(body: bytes) -> tuple[list[tuple[str, dict[str, ET.Element]]], str | None]:
    """(href, {property: element} of the 200 propstats) of a multistatus, and its sync-token."""
    root = ET.fromstring(body)
    out = []
    for r in root.findall("D:response", NS):
        link = unquote(r.findtext("D:href", default="", namespaces=NS))
        props: dict[str, ET.Element] = {}
        for ps in r.findall("D:propstat", NS):
            if " 200 " in ps.findtext("D:status", default="", namespaces=NS):
                for el in ps.find("D:prop", NS) or []:
                    props[el.tag] = el
        out.append((link, props))
    return out, root.findtext("D:sync-token", default=None, namespaces=NS)


def file_names(found: list[tuple[str, dict[str, ET.Element]]], calendar: str) -> list[str]:
    """The item names of the responses (the calendar's own response left out)."""
    own = urlsplit(calendar).path.rstrip("/")
    names = []
    for link, _ in found:
        path = urlsplit(link).path.rstrip("/")
        if path != own:
            names.append(path.rpartition("/")[2])
    return sorted(names)
