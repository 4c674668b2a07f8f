"""Per-mount access rules and owner-only trees (issue 8): who may read, who may write, and
nobody in another user's tree, whichever way the request tries to get there."""

from __future__ import annotations

import base64
import re
import textwrap
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, C, D, event, parse_multistatus
from helpers import free_port, snapshot
from lxml import etree

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import (
    AccessConfig,
    AuthConfig,
    Config,
    ConfigError,
    MountConfig,
    ServerConfig,
    parse,
)

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw"}
# Cheap bcrypt hashes (4 rounds): the tests check who gets in, not the hashing.
HASHES = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in PASSWORDS.items()}
WRITES = ("PUT", "DELETE", "MKCOL", "PROPPATCH", "LOCK", "COPY", "MOVE")


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


PROPPATCH = (
    HEAD + '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
    '<x:p xmlns:x="urn:x">v</x:p></D:prop></D:set></D:propertyupdate>'
).encode()
LOCKINFO = (
    HEAD + '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype></D:lockinfo>"
).encode()


class Site:
    """A server with accounts ann and bob, and one mount of each access kind:
    ``/`` default (anonymous off), ``/pub`` read-only for all, ``/drop`` open to all,
    ``/home`` owner-only WebDAV, ``/caldav`` (owner-only by default) and ``/site`` static
    readable by all."""

    def __init__(self, client: TestClient, tmp_path: Path, backend: str) -> None:
        self.client = client
        self.tmp_path = tmp_path
        self.backend = backend

    async def request(
        self, method: str, path: str, user: str | None = None, body: bytes = b"", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        if user is not None:
            headers.update(basic(user))
        if "Destination" in headers and headers["Destination"].startswith("/"):
            headers["Destination"] = str(self.client.make_url(headers["Destination"]))
        async with self.client.request(method, path, data=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    def stored(self, name: str) -> Path:
        """Where a mount's data lives (a folder, or the git repository)."""
        return self.tmp_path / name

    def state(self) -> dict[str, Any]:
        """Everything on disk that a request could change (data, repositories, calendars)."""
        return {
            name: snapshot(self.stored(name))
            for name in ("data", "pub", "drop", "home", "calendars")
            if self.stored(name).exists()
        }


def site_config(tmp_path: Path, backend: str) -> Config:
    accounts = tmp_path / "users"
    htpasswd.write(accounts, HASHES)
    for name in ("data", "pub", "drop", "site"):
        (tmp_path / name).mkdir()
    (tmp_path / "pub" / "readme.txt").write_bytes(b"public")
    (tmp_path / "site" / "index.html").write_bytes(b"<p>hello</p>")
    store: dict[str, Any] = (
        {"backend": "git", "repo": tmp_path / "home"}
        if backend == "git"
        else {"root": tmp_path / "home"}
    )
    cal_store: dict[str, Any] = (
        {"backend": "git", "repo": tmp_path / "calendars"}
        if backend == "git"
        else {"root": tmp_path / "calendars"}
    )
    read_only = AccessConfig(anonymous="read-only", authenticated="read-only")
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(htpasswd=accounts),
        mounts=(
            MountConfig(path="/", type="webdav", root=tmp_path / "data"),
            MountConfig(path="/pub", type="webdav", root=tmp_path / "pub", access=read_only),
            MountConfig(
                path="/drop", type="webdav", root=tmp_path / "drop",
                access=AccessConfig(anonymous="read-write"),
            ),
            MountConfig(
                path="/home", type="webdav", depth_infinity=True,
                access=AccessConfig(owner_only=True), **store,
            ),
            MountConfig(path="/caldav", type="caldav", depth_infinity=True, **cal_store),
            MountConfig(
                path="/site", type="static", root=tmp_path / "site",
                access=AccessConfig(anonymous="read-only"),
            ),
        ),
    )  # fmt: skip


@pytest.fixture(params=["filesystem", "git"])
def config(request: Any, tmp_path: Path) -> Config:
    return site_config(tmp_path, request.param)  # outside the event loop: it writes files


@pytest.fixture
async def site(config: Config, aiohttp_client: Any, tmp_path: Path) -> Site:
    backend = config.mounts[3].backend
    return Site(await aiohttp_client(create_app(config)), tmp_path, backend)


# -- access levels -------------------------------------------------------------------------


async def test_anonymous_off_is_asked_to_log_in_and_changes_nothing(site: Site) -> None:
    before = site.state()
    for method in ("GET", "PROPFIND", *WRITES):
        status, headers, _ = await site.request(method, "/x.txt", body=b"data")
        assert status == 401, method
        assert headers["WWW-Authenticate"].startswith("Basic ")
    assert site.state() == before
    assert (await site.request("PUT", "/x.txt", "ann", b"data"))[0] == 201


async def test_options_needs_no_credentials(site: Site) -> None:
    for path in ("/", "/home/", "/caldav/", "/nowhere/"):
        assert (await site.request("OPTIONS", path))[0] == 200, path


async def test_read_only_mount_reads_for_all_and_writes_for_nobody(site: Site) -> None:
    for user in (None, "ann"):
        status, _, body = await site.request("GET", "/pub/readme.txt", user)
        assert (status, body) == (200, b"public")
        assert (await site.request("PROPFIND", "/pub/", user, Depth="1"))[0] == 207
    before = site.state()
    bodies = {"PROPPATCH": PROPPATCH, "LOCK": LOCKINFO}
    for method in WRITES:
        headers = {"Destination": "/pub/copy.txt"} if method in ("COPY", "MOVE") else {}
        target = "/pub/readme.txt" if method != "MKCOL" else "/pub/new/"
        body = bodies.get(method, b"new")
        anonymous = await site.request(method, target, None, body, **headers)
        assert anonymous[0] == 401, method  # could log in, but it would not help:
        assert (await site.request(method, target, "ann", body, **headers))[0] == 403, method
    assert site.state() == before


async def test_open_mount_takes_anonymous_writes(site: Site) -> None:
    assert (await site.request("PUT", "/drop/a.txt", body=b"hi"))[0] == 201
    assert (site.stored("drop") / "a.txt").read_bytes() == b"hi"


async def test_wrong_password_is_not_taken_as_anonymous(site: Site) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()}
    status, _, _ = await site.request("GET", "/pub/readme.txt", **headers)
    assert status == 401


async def test_static_mount_readable_by_anonymous(site: Site) -> None:
    status, _, body = await site.request("GET", "/site/")
    assert (status, body) == (200, b"<p>hello</p>")
    assert (await site.request("POST", "/site/", body=b"x"))[0] == 401


# -- owner-only WebDAV trees ---------------------------------------------------------------


async def homes(site: Site) -> None:
    """ann and bob each make their folder and a file in it."""
    for user in ("ann", "bob"):
        assert (await site.request("MKCOL", f"/home/{user}/", user))[0] == 201
        secret = f"{user}'s secret".encode()
        assert (await site.request("PUT", f"/home/{user}/a.txt", user, secret))[0] == 201


async def test_owners_work_in_their_own_tree(site: Site) -> None:
    await homes(site)
    status, _, body = await site.request("GET", "/home/ann/a.txt", "ann")
    assert (status, body) == (200, b"ann's secret")
    assert (await site.request("PROPPATCH", "/home/ann/a.txt", "ann", PROPPATCH))[0] == 207
    assert (await site.request("MOVE", "/home/ann/a.txt", "ann", Destination="/home/ann/b.txt"))[
        0
    ] == 201


async def test_another_users_tree_is_403_for_every_method(site: Site) -> None:
    await homes(site)
    before = site.state()
    bodies = {"PROPPATCH": PROPPATCH, "LOCK": LOCKINFO}
    for method in ("GET", "HEAD", "PROPFIND", *WRITES):
        headers = {"Destination": "/home/bob/c.txt"} if method in ("COPY", "MOVE") else {}
        target = "/home/ann/new/" if method == "MKCOL" else "/home/ann/a.txt"
        status, _, body = await site.request(
            method, target, "bob", bodies.get(method, b"x"), **headers
        )
        assert status == 403, method
        assert b"secret" not in body, method
    assert (await site.request("MKCOL", "/home/carl/", "bob"))[0] == 403
    assert site.state() == before


async def test_anonymous_is_asked_to_log_in_at_an_owner_only_tree(site: Site) -> None:
    await homes(site)
    # /home/ itself is not readable anonymously: the mount's anonymous level is off.
    assert (await site.request("GET", "/home/ann/a.txt"))[0] == 401


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_copy_or_move_into_another_users_tree_is_403(site: Site, method: str) -> None:
    await homes(site)
    before = site.state()
    for dst in ("/home/ann/stolen.txt", "/home/ann/a.txt", "/home/ann/", "/home/carl.txt"):
        status, _, _ = await site.request(
            method, "/home/bob/a.txt", "bob", Destination=dst, Overwrite="T"
        )
        assert status == 403, dst
    assert site.state() == before


async def test_shared_root_of_an_owner_only_tree_cannot_be_changed(site: Site) -> None:
    await homes(site)
    before = site.state()
    assert (await site.request("LOCK", "/home/", "bob", LOCKINFO, Depth="infinity"))[0] == 403
    assert (await site.request("PROPPATCH", "/home/", "bob", PROPPATCH))[0] == 403
    assert (await site.request("PUT", "/home/loose.txt", "bob", b"x"))[0] == 403
    assert (await site.request("DELETE", "/home/", "bob"))[0] == 403
    assert site.state() == before
    # ann can still write in her tree: no lock was taken on the root.
    assert (await site.request("PUT", "/home/ann/a.txt", "ann", b"again"))[0] == 204


@pytest.mark.parametrize("depth", ["1", "infinity"])
async def test_propfind_from_the_root_shows_only_the_users_tree(site: Site, depth: str) -> None:
    await homes(site)
    status, _, body = await site.request("PROPFIND", "/home/", "bob", Depth=depth)
    assert status == 207
    hrefs = {r.href for r in parse_multistatus(body).responses}
    expected = {"/home/", "/home/bob/"} | ({"/home/bob/a.txt"} if depth == "infinity" else set())
    assert hrefs == expected


async def test_html_listing_of_the_root_shows_only_the_users_tree(site: Site) -> None:
    await homes(site)
    status, _, body = await site.request("GET", "/home/", "bob")
    assert status == 200
    assert b"bob/" in body and b"ann/" not in body


# -- owner-only CalDAV trees ---------------------------------------------------------------

ANN_CAL = "/caldav/calendars/ann/calendar/"
BOB_CAL = "/caldav/calendars/bob/calendar/"
SECRET = "Ann's secret meeting"


async def calendars(site: Site) -> None:
    """ann and bob each store one event in their default calendar."""
    ann = await site.request("PUT", ANN_CAL + "a.ics", "ann", event("ann-1", SECRET))
    bob = await site.request("PUT", BOB_CAL + "b.ics", "bob", event("bob-1", "Bob's"))
    assert (ann[0], bob[0]) == (201, 201)


def query(filter_xml: str = '<C:comp-filter name="VCALENDAR"/>') -> bytes:
    return (
        f'{HEAD}<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter>{filter_xml}</C:filter>"
        "</C:calendar-query>"
    ).encode()


def multiget(*hrefs: str) -> bytes:
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        f'{HEAD}<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{links}</C:calendar-multiget>"
    ).encode()


SYNC = (
    f'{HEAD}<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
).encode()
FREEBUSY = (
    f'{HEAD}<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<C:time-range start="20260101T000000Z" end="20270101T000000Z"/></C:free-busy-query>'
).encode()


async def test_another_users_calendars_and_principal_are_403(site: Site) -> None:
    await calendars(site)
    before = site.state()
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("PROPFIND", "/caldav/principals/ann/", b"", {"Depth": "0"}),
        ("PROPFIND", "/caldav/calendars/ann/", b"", {"Depth": "1"}),
        ("PROPFIND", ANN_CAL, b"", {"Depth": "1"}),
        ("GET", ANN_CAL + "a.ics", b"", {}),
        ("REPORT", ANN_CAL, query(), {"Depth": "1"}),
        ("REPORT", ANN_CAL, SYNC, {}),
        ("REPORT", ANN_CAL, FREEBUSY, {"Depth": "1"}),
        ("REPORT", ANN_CAL, multiget(ANN_CAL + "a.ics"), {}),
        ("PUT", ANN_CAL + "x.ics", event("bob-2"), {}),
        ("PUT", ANN_CAL + "a.ics", event("ann-1", "overwritten"), {}),
        ("DELETE", ANN_CAL + "a.ics", b"", {}),
        ("PROPPATCH", ANN_CAL, PROPPATCH, {}),
        ("LOCK", ANN_CAL + "a.ics", LOCKINFO, {}),
        ("MKCALENDAR", "/caldav/calendars/ann/new/", b"", {}),
        ("MKCOL", "/caldav/calendars/ann/new/", b"", {}),
        ("MOVE", ANN_CAL + "a.ics", b"", {"Destination": BOB_CAL + "a.ics"}),
        ("COPY", ANN_CAL + "a.ics", b"", {"Destination": BOB_CAL + "a.ics"}),
    ]
    for method, path, body, headers in cases:
        status, _, answer = await site.request(method, path, "bob", body, **headers)
        assert status == 403, (method, path, status)
        assert SECRET.encode() not in answer and b"ann-1" not in answer, (method, path)
    assert site.state() == before


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_event_copied_or_moved_into_another_users_calendar_is_403(
    site: Site, method: str
) -> None:
    await calendars(site)
    before = site.state()
    for dst in (ANN_CAL + "b.ics", ANN_CAL + "a.ics", "/caldav/calendars/ann/stolen/"):
        src = BOB_CAL + "b.ics" if dst.endswith(".ics") else BOB_CAL
        status, _, _ = await site.request(method, src, "bob", Destination=dst, Overwrite="T")
        assert status == 403, dst
    assert site.state() == before


async def test_multiget_answers_403_for_hrefs_into_another_users_calendar(site: Site) -> None:
    await calendars(site)
    body = multiget(BOB_CAL + "b.ics", ANN_CAL + "a.ics", ANN_CAL + "none.ics")
    status, _, answer = await site.request("REPORT", BOB_CAL, "bob", body)
    assert status == 207
    by = parse_multistatus(answer).by_href()
    assert by[BOB_CAL + "b.ics"].props[f"{C}calendar-data"].status == 200
    assert by[ANN_CAL + "a.ics"].status == 403
    assert by[ANN_CAL + "none.ics"].status == 403  # no telling what exists there
    assert SECRET.encode() not in answer


@pytest.mark.parametrize(
    ("path", "depth"),
    [("/caldav/", "infinity"), ("/caldav/calendars/", "1"), ("/caldav/principals/", "1")],
)
async def test_propfind_from_a_parent_leaves_other_users_out(
    site: Site, path: str, depth: str
) -> None:
    await calendars(site)
    status, _, body = await site.request("PROPFIND", path, "bob", Depth=depth)
    assert status == 207
    hrefs = [r.href for r in parse_multistatus(body).responses]
    assert hrefs and not [h for h in hrefs if "/ann" in h]
    assert any("/bob/" in h for h in hrefs)
    assert SECRET.encode() not in body


async def test_each_user_discovers_their_own_principal(site: Site) -> None:
    body = (
        f'{HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop>'
        "</D:propfind>"
    ).encode()
    for user in ("ann", "bob"):
        status, _, answer = await site.request("PROPFIND", "/caldav/", user, body, Depth="0")
        assert status == 207
        principal = etree.fromstring(answer).find(f".//{D}current-user-principal/{D}href")
        assert principal is not None and principal.text == f"/caldav/principals/{user}/"


# -- configuration -------------------------------------------------------------------------


def parse_toml(tmp_path: Path, text: str) -> Config:
    import tomllib

    return parse(tomllib.loads(textwrap.dedent(text)), "conf.toml", tmp_path)


MOUNT = """
[[mounts]]
path = "/"
type = "{type}"
root = "."
{access}
"""


@pytest.mark.parametrize(
    ("access", "auth", "kind", "message"),
    [
        ('access = { anonymous = "maybe" }', True, "webdav", "access.anonymous: 'maybe'"),
        ('access = { authenticated = "all" }', True, "webdav", "access.authenticated: 'all'"),
        ('access = { anonymous = "off" }', False, "webdav", '"off" needs accounts'),
        ("access = { owner_only = true }", False, "webdav", "owner_only: needs accounts"),
        ("access = { owner_only = true }", True, "static", "owner_only: only webdav and caldav"),
        ('access = { owner_only = "yes" }', True, "webdav", "owner_only: must be of type bool"),
        ('access = { who = "me" }', True, "webdav", "access.who: unknown key"),
        ('access = "read-only"', True, "webdav", "access: must be a table"),
    ],
)
def test_bad_access_tables_are_refused(
    tmp_path: Path, access: str, auth: bool, kind: str, message: str
) -> None:
    text = ('[auth]\nhtpasswd = "users"\n' if auth else "") + MOUNT.format(type=kind, access=access)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_toml(tmp_path, text)


def test_defaults_depend_on_accounts_and_mount_type() -> None:
    unset = AccessConfig()
    assert unset.resolved("webdav", accounts=False) == AccessConfig(
        "read-write", "read-write", False
    )
    assert unset.resolved("webdav", accounts=True) == AccessConfig("off", "read-write", False)
    assert unset.resolved("caldav", accounts=True).owner_only is True
    assert AccessConfig(owner_only=False).resolved("caldav", True).owner_only is False


def test_access_table_from_a_config_file_is_enforced(tmp_path: Path, server_process: Any) -> None:
    """The TOML keys end to end: a real server, anonymous reads, authenticated writes."""
    import urllib.error
    import urllib.request

    htpasswd.write(tmp_path / "users", HASHES)
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "a.txt").write_bytes(b"A")
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[auth]\nhtpasswd = "users"\n[server]\nstate_dir = "state"\n'
        '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "pub"\n'
        'access = { anonymous = "read-only", authenticated = "read-write" }\n'
    )
    server = server_process("--config", str(conf), port=free_port())
    with urllib.request.urlopen(server.url + "/a.txt", timeout=10) as resp:
        assert resp.read() == b"A"
    put = urllib.request.Request(server.url + "/b.txt", data=b"B", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    assert refused.value.code == 401
    assert not (tmp_path / "pub" / "b.txt").exists()
    put.add_header("Authorization", basic("ann")["Authorization"])
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 201
    assert (tmp_path / "pub" / "b.txt").read_bytes() == b"B"
