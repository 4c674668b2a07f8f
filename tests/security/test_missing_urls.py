"""Every method on a URL that names nothing, and on one whose parent is missing, on every
mount type: a 4xx (or, for a method that creates what it names, its 201), never a 500.

A real client's suite found "REPORT on a calendar that does not exist answers 500"; this
sweep asks the same of every method and mount type, so the class stays closed."""

from __future__ import annotations

import itertools
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from caldav_data import HEAD, NSDECL, event

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

PROPPATCH = (
    f'{HEAD}<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:p xmlns:x="urn:x">v</x:p>'
    "</D:prop></D:set></D:propertyupdate>"
).encode()
LOCKINFO = (
    f'{HEAD}<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype></D:lockinfo>"
).encode()
QUERY = (
    f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
    '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
    'start="20260101T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter>'
    "</C:filter></C:calendar-query>"
).encode()
SYNC = (
    f"{HEAD}<D:sync-collection {NSDECL}><D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
).encode()
FREEBUSY = (
    f"{HEAD}<C:free-busy-query {NSDECL}>"
    '<C:time-range start="20260101T000000Z" end="20270101T000000Z"/></C:free-busy-query>'
).encode()
UNKNOWN_REPORT = f'{HEAD}<x:no-such-report xmlns:x="urn:x"/>'.encode()
MKCALENDAR = (
    f"{HEAD}<C:mkcalendar {NSDECL}><D:set><D:prop><D:displayname>x</D:displayname>"
    "</D:prop></D:set></C:mkcalendar>"
).encode()


def multiget(href: str) -> bytes:
    return (
        f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop><D:getetag/><C:calendar-data/>"
        f"</D:prop><D:href>{href}</D:href></C:calendar-multiget>"
    ).encode()


METHODS = (
    "OPTIONS", "GET", "HEAD", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPFIND",
    "PROPPATCH", "LOCK", "UNLOCK", "REPORT query", "REPORT sync", "REPORT multiget",
    "REPORT free-busy", "REPORT unknown", "MKCALENDAR", "SEARCH",
)  # fmt: skip
CREATING = {"PUT", "MKCOL", "LOCK", "MKCALENDAR"}
"""Methods that make what a missing URL names (201): everywhere else a 4xx."""
# (URL below the mount, whether its parent exists: a creating method may then succeed)
CALENDAR_TARGETS = (
    ("calendars/user/{n}/", True),  # a calendar that does not exist
    ("calendars/user/calendar/{n}.ics", True),  # an item missing from a default calendar
    ("calendars/user/{n}/item.ics", False),  # an item of a calendar that does not exist
    ("calendars/user/{n}/deeper/item.ics", False),
    ("calendars/{n}/calendar/", True),  # the default calendar of a home not made yet
    ("calendars/{n}/other/x.ics", False),
    ("principals/{n}/", False),
    ("principals/user/{n}", False),
    ("{n}/x.ics", False),  # outside the CalDAV layout
    ("calendars/user/calendar/{n}%0A.ics", False),  # a line break: nothing may create it
    ("calendars/user/calendar/item.ics/{n}", False),  # below an item
)
PLAIN_TARGETS = (
    ("{n}.txt", True),
    ("{n}%0D%0Aline.txt", False),  # a line break in the name: nothing may create it
    ("{n}/x.txt", False),
    ("{n}/deeper/x.txt", False),
    ("file.txt/{n}", False),  # below a file
)
MOUNTS = ("webdav-filesystem", "webdav-git", "caldav-filesystem", "caldav-git", "static", "cgi", "wsgi")  # fmt: skip
WSGI_APP = '''
def application(environ, start_response):
    """Nothing here but the root."""
    found = environ.get("PATH_INFO", "/") in ("", "/")
    start_response("200 OK" if found else "404 Not Found", [("Content-Type", "text/plain")])
    return [b"root" if found else b"nothing here"]
'''


def mount_config(kind: str, tmp_path: Path) -> MountConfig:
    """One mount of ``kind`` at /m over a fresh store."""
    store = tmp_path / "store"
    if kind in ("webdav-filesystem", "caldav-filesystem", "static", "cgi"):
        store.mkdir()
    if kind in ("static", "cgi"):
        (store / "file.txt").write_bytes(b"a file")
    if kind == "cgi":
        script = store / "hi.sh"
        script.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nhi\\n"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    if kind == "wsgi":
        module = f"missing_urls_{uuid.uuid4().hex}"
        (tmp_path / f"{module}.py").write_text(WSGI_APP)
        return MountConfig(path="/m", type="wsgi", app=module, pythonpath=(tmp_path,))
    if kind in ("static", "cgi"):
        return MountConfig(path="/m", type=kind, root=store)
    dav_type, backend = kind.split("-")
    where: dict[str, Any] = {"repo": store} if backend == "git" else {"root": store}
    return MountConfig(path="/m", type=dav_type, backend=backend, **where)


def request_of(method: str, path: str, serial: int) -> tuple[str, bytes, dict[str, str]]:
    """The HTTP method, body and headers of one probe of ``method`` at ``path``."""
    verb, _, report = method.partition(" ")
    headers: dict[str, str] = {}
    body = b""
    if verb == "PUT":
        body, headers = event(f"uid-{serial}"), {"Content-Type": "text/calendar"}
    elif verb == "PROPPATCH":
        body = PROPPATCH
    elif verb == "LOCK":
        body = LOCKINFO
    elif verb == "UNLOCK":
        headers = {"Lock-Token": "<urn:uuid:00000000-0000-0000-0000-000000000000>"}
    elif verb in ("COPY", "MOVE"):
        headers = {"Destination": f"/m/copy-{serial}.txt"}
    elif verb == "MKCALENDAR":
        body = MKCALENDAR
    elif verb == "REPORT":
        body = {
            "query": QUERY,
            "sync": SYNC,
            "multiget": multiget(path + "/x.ics"),
            "free-busy": FREEBUSY,
            "unknown": UNKNOWN_REPORT,
        }[report]
        headers = {"Depth": "1"} if report != "sync" else {}
    if body:
        headers.setdefault("Content-Type", "application/xml; charset=utf-8")
    return verb, body, headers


@pytest.mark.parametrize("kind", MOUNTS)
async def test_every_method_on_a_missing_url_is_a_4xx(
    kind: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    mount = mount_config(kind, tmp_path)
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False), mounts=(mount,)
    )
    client = await aiohttp_client(create_app(config))
    targets = CALENDAR_TARGETS if kind.startswith("caldav") else PLAIN_TARGETS
    wrong: list[tuple[str, str, int]] = []
    serial = itertools.count()
    for (target, parent_exists), method in itertools.product(targets, METHODS):
        n = next(serial)
        # The store stays fresh (a git repository not even made) until the probes below a
        # file need their file.
        if n == len(METHODS) * (len(targets) - 1):
            if kind.startswith("webdav"):
                assert (await client.put("/m/file.txt", data=b"a file")).status == 201
            if kind.startswith("caldav"):
                item = "/m/calendars/user/calendar/item.ics"
                assert (await client.put(item, data=event("item"))).status == 201
        path = "/m/" + target.format(n=f"missing-{n}")
        verb, body, headers = request_of(method, path, n)
        if "Destination" in headers:
            headers["Destination"] = str(client.make_url(headers["Destination"]))
        async with client.request(verb, path, data=body, headers=headers) as resp:
            await resp.read()
            status = resp.status
        may_succeed = verb == "OPTIONS" or (verb in CREATING and parent_exists)
        allowed = status < 500 and (status >= 400 or may_succeed)
        if not allowed:
            wrong.append((method, path, status))
    assert not wrong, "\n".join(map(str, wrong))
