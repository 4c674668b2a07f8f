"""Shared helpers of the scheduling tests: a server with accounts ann, bob and cat on a
caldav mount (filesystem or git), meetings to PUT, and what the users' calendars and
inboxes hold afterwards."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
from aiohttp.test_utils import TestClient
from caldav_data import parse_multistatus, propfind_body

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AuthConfig, Config, MountConfig, ServerConfig, SmtpConfig

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw", "cat": "cat-pw"}
MAIL = {u: f"mailto:{u}@example.org" for u in ("ann", "bob", "cat", "dan", "eve")}
PREFIX = "/caldav"
ICS = "text/calendar; charset=utf-8"
C = "{urn:ietf:params:xml:ns:caldav}"
D = "{DAV:}"


def home(user: str) -> str:
    return f"{PREFIX}/calendars/{user}/"


def calendar(user: str) -> str:
    return f"{PREFIX}/calendars/{user}/calendar/"


def inbox(user: str) -> str:
    return f"{PREFIX}/calendars/{user}/inbox/"


def outbox(user: str) -> str:
    return f"{PREFIX}/calendars/{user}/outbox/"


def meeting(
    uid: str,
    organizer: str = "ann",
    attendees: tuple[str, ...] = ("bob",),
    *,
    summary: str = "Meeting",
    start: str = "20260105T100000Z",
    end: str = "20260105T110000Z",
    partstat: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    sequence: int = 0,
    components: tuple[tuple[str, ...], ...] = (),
) -> bytes:
    """A meeting of ``organizer`` (a user or an address) with ``attendees``."""
    states = partstat or {}
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//davserver tests//EN", "BEGIN:VEVENT",
        f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"DTSTART:{start}", f"DTEND:{end}",
        f"SUMMARY:{summary}", f"SEQUENCE:{sequence}",
        f"ORGANIZER;CN={name_of(organizer)}:{address(organizer)}",
    ]  # fmt: skip
    lines.append(f"ATTENDEE;PARTSTAT=ACCEPTED:{address(organizer)}")
    for who in attendees:
        lines.append(
            f"ATTENDEE;CN={name_of(who)};PARTSTAT={states.get(who, 'NEEDS-ACTION')};RSVP=TRUE:"
            f"{address(who)}"
        )
    lines += [*extra, "END:VEVENT"]
    for component in components:
        lines += ["BEGIN:VEVENT", *component, "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def name_of(who: str) -> str:
    """A display name for a user or an address (its local part)."""
    return who.rstrip("/").rpartition("/")[2].rpartition(":")[2].partition("@")[0]


def address(who: str) -> str:
    """A user's address, or ``who`` itself when it is one (a URI or a path)."""
    return MAIL.get(who, who if ":" in who or who.startswith("/") else f"mailto:{who}")


def unfolded(data: bytes) -> list[str]:
    """The content lines of an iCalendar text, unfolded."""
    text = re.sub(r"\r?\n[ \t]", "", data.decode())
    return [line for line in text.splitlines() if line]


def lines_of(data: bytes, name: str) -> list[str]:
    """The unfolded lines of property ``name``."""
    return [line for line in unfolded(data) if re.match(rf"{name}[;:]", line, re.I)]


def attendee_line(data: bytes, who: str) -> str:
    found = [line for line in lines_of(data, "ATTENDEE") if line.lower().endswith(address(who))]
    assert found, (who, data)
    return found[0]


def param(line: str, name: str) -> str | None:
    m = re.search(rf";{name}=([^;:]*)", line, re.I)
    return m.group(1) if m else None


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes


@dataclass
class Site:
    """A server with accounts ann, bob and cat (the test's client of it)."""

    client: TestClient
    tmp_path: Path
    backend: str
    mails: list[Any] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return self.tmp_path / ("store.git" if self.backend == "git" else "store")

    async def request(
        self, method: str, path: str, user: str | None = "ann", body: bytes | str = b"",
        **headers: str,
    ) -> Answer:  # fmt: skip
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if user is not None:
            token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
            hdrs["Authorization"] = f"Basic {token}"
        if "Destination" in hdrs:
            hdrs["Destination"] = str(self.client.make_url(hdrs["Destination"]))
        data = body.encode() if isinstance(body, str) else body
        async with self.client.request(
            method, path, data=data, headers=hdrs, allow_redirects=False
        ) as resp:
            return Answer(resp.status, resp.headers, await resp.read())

    async def put(self, user: str, path: str, data: bytes, **headers: str) -> Answer:
        return await self.request("PUT", path, user, data, Content_Type=ICS, **headers)

    async def get(self, user: str, path: str) -> bytes:
        ans = await self.request("GET", path, user)
        assert ans.status == 200, (path, ans.status, ans.body)
        return ans.body

    async def members(self, user: str, collection: str) -> dict[str, bytes]:
        """The items of a collection (name → bytes), read through the server."""
        ans = await self.request(
            "PROPFIND", collection, user, propfind_body(f"{D}getetag"), Depth="1"
        )
        assert ans.status == 207, (collection, ans.status, ans.body)
        out = {}
        for r in parse_multistatus(ans.body).responses:
            if r.href.rstrip("/") == collection.rstrip("/"):
                continue
            name = r.href.rstrip("/").rpartition("/")[2]
            out[name] = await self.get(user, r.href)
        return out

    async def inbox(self, user: str) -> list[bytes]:
        return list((await self.members(user, inbox(user))).values())

    async def events(self, user: str, uid: str) -> list[tuple[str, bytes]]:
        """``user``'s items of UID ``uid`` in their default calendar."""
        found = await self.members(user, calendar(user))
        return [(n, d) for n, d in found.items() if f"UID:{uid}".encode() in d]


def site_config(
    tmp_path: Path, backend: str, smtp: SmtpConfig | None = None, **mount: Any
) -> Config:
    accounts = tmp_path / "users"
    hashes = {
        u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in PASSWORDS.items()
    }
    htpasswd.write(accounts, hashes)
    store: dict[str, Any] = (
        {"backend": "git", "repo": tmp_path / "store.git"} if backend == "git"
        else {"root": tmp_path / "store"}
    )  # fmt: skip
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(
            htpasswd=accounts,
            domain="example.org",
            addresses={
                "ann": ("ann@example.org",),
                "bob": ("bob@example.org", "robert@example.org"),
            },
        ),
        smtp=smtp or SmtpConfig(),
        mounts=(MountConfig(path=PREFIX, type="caldav", depth_infinity=True, **store, **mount),),
    )


async def start_site(aiohttp_client: Any, config: Config, tmp_path: Path) -> Site:
    """The in-process server of a configuration made by :func:`site_config`."""
    backend = config.mounts[0].backend
    return Site(await aiohttp_client(create_app(config)), tmp_path, backend)
