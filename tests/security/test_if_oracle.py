"""No oracle into another user's tree (issue #12 c): a resource the requester may not read
is never looked up, whichever way a request names it: a tagged list of the If header, a
COPY/MOVE Destination, a calendar-multiget href, the target of a report. The answer is
the same whether the resource exists and whether a guessed ETag matches; that nothing
was consulted (so the timing cannot tell either) is checked on the storage itself.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, NSDECL, event, parse_multistatus
from helpers import snapshot
from multidict import CIMultiDict

from davserver.app import ROUTER_KEY, create_app
from davserver.auth import htpasswd
from davserver.config import AccessConfig, AuthConfig, Config, MountConfig, ServerConfig

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw"}
HASHES = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in PASSWORDS.items()}
PIN = b"1234\n"
WRONG = '"0000000000000000000000000000000000000000"'
ANN_CAL = "/caldav/calendars/ann/calendar/"
USER_CAL = "/caldav/calendars/user/calendar/"


def auth(user: str | None) -> dict[str, str]:
    if user is None:
        return {}
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def blob_id(data: bytes) -> str:
    """The git blob id of ``data``: the ETag a git mount gives a file holding it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Spy:
    """Records the storage calls whose arguments name a path with the segment ``name``,
    made while ``site`` handles a request of anyone but ``owner``."""

    def __init__(self, site: Site, name: str, owner: str) -> None:
        self.site = site
        self.name = name
        self.owner = owner
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def watch(self, obj: Any, *names: str) -> None:
        for name in names:
            setattr(obj, name, self._wrap(name, getattr(obj, name)))

    def _wrap(self, name: str, original: Any) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            named = any(isinstance(a, str) and self.name in a.split("/") for a in args)
            if named and self.site.acting != self.owner:
                self.seen.append((name, args))
            return original(*args, **kwargs)

        return called


class Site:
    """ann and bob; /home owner-only WebDAV, /other a plain WebDAV mount, /caldav with
    anonymous requests read-only (they act as the default user, "user")."""

    def __init__(self, client: TestClient, tmp_path: Path, backend: str) -> None:
        self.client = client
        self.tmp_path = tmp_path
        self.backend = backend
        self.acting: str | None = None
        """Who sent the request under way (the tests send one at a time)."""

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def request(
        self, method: str, path: str, user: str | None = None, body: bytes = b"", **headers: str
    ) -> tuple[int, CIMultiDict[str], bytes]:
        headers.update(auth(user))
        if "Destination" in headers:
            headers["Destination"] = self.url(headers["Destination"])
        self.acting = user
        try:
            async with self.client.request(method, path, data=body, headers=headers) as resp:
                return resp.status, resp.headers.copy(), await resp.read()
        finally:
            self.acting = None

    async def ok(self, method: str, path: str, user: str | None, body: bytes = b"") -> str:
        status, headers, answer = await self.request(method, path, user, body)
        assert status in (201, 204), (method, path, status, answer)
        return headers.get("ETag", "")

    def spy(self, name: str = "ann", owner: str = "ann") -> Spy:
        """Watch every storage of the server for calls naming a path with the segment
        ``name`` in the requests of anyone but ``owner``."""
        spy = Spy(self, name, owner)
        for mount in self.client.app[ROUTER_KEY].mounts:
            storage = mount.storage
            spy.watch(storage, "stat", "read", "children")
            if hasattr(storage, "inner"):  # the calendar store and what it lays out
                spy.watch(storage, "item_body", "refresh")
                spy.watch(storage.inner, "stat", "read", "children")
        return spy

    def state(self) -> dict[str, Any]:
        return {p.name: snapshot(p) for p in self.tmp_path.iterdir() if p.is_dir()}


def site_config(tmp_path: Path, backend: str) -> Config:
    accounts = tmp_path / "users"
    htpasswd.write(accounts, HASHES)
    (tmp_path / "other").mkdir()

    def store(name: str) -> dict[str, Any]:
        if backend == "git":
            return {"backend": "git", "repo": tmp_path / f"{name}.git"}
        (tmp_path / name).mkdir()
        return {"root": tmp_path / name}

    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(htpasswd=accounts),
        mounts=(
            MountConfig(
                path="/home", type="webdav", access=AccessConfig(owner_only=True), **store("home")
            ),
            MountConfig(path="/other", type="webdav", root=tmp_path / "other"),
            MountConfig(
                path="/caldav", type="caldav", access=AccessConfig(anonymous="read-only"),
                **store("calendars"),
            ),
        ),
    )  # fmt: skip


@pytest.fixture(params=["filesystem", "git"])
def config(request: Any, tmp_path: Path) -> Config:
    return site_config(tmp_path, request.param)


@pytest.fixture
async def site(config: Config, aiohttp_client: Any, tmp_path: Path) -> Site:
    site = Site(await aiohttp_client(create_app(config)), tmp_path, config.mounts[0].backend)
    for user in ("ann", "bob"):
        await site.ok("MKCOL", f"/home/{user}/", user)
    await site.ok("PUT", "/home/bob/b.txt", "bob", b"bob's")
    return site


def conditions(etag: str) -> Iterator[tuple[str, str]]:
    """The lists a client could try about a resource whose ETag may be ``etag``."""
    yield "matching", f'(["{etag.strip(chr(34))}"])'
    yield "wrong", f"([{WRONG}])"
    yield "not matching", f'(Not ["{etag.strip(chr(34))}"])'
    yield "not wrong", f"(Not [{WRONG}])"
    yield "a lock token", "(<urn:uuid:00000000-0000-0000-0000-000000000000>)"


async def probe(site: Site, method: str, path: str, user: str | None, tag: str, etag: str):
    """The status of ``method`` on ``path`` under each If list about ``tag``."""
    out = {}
    for name, lst in conditions(etag):
        body = b"bob's" if method == "PUT" else b""
        status, _, _ = await site.request(method, path, user, body, If=f"<{tag}> {lst}")
        out[name] = status
    return out


@pytest.mark.parametrize("method", ["PUT", "PROPFIND", "DELETE"])
async def test_if_lists_about_another_users_file_tell_nothing(site: Site, method: str) -> None:
    secret = site.url("/home/ann/secret.txt")
    etag = await site.ok("PUT", "/home/ann/secret.txt", "ann", PIN)
    spy = site.spy()
    # DELETE would remove bob's file at the first list that holds: aim it at a missing one.
    target = "/home/bob/b.txt" if method != "DELETE" else "/home/bob/none.txt"
    exists = await probe(site, method, target, "bob", secret, etag)
    await site.ok("DELETE", "/home/ann/secret.txt", "ann")
    gone = await probe(site, method, target, "bob", secret, etag)
    assert exists == gone
    assert len(set(exists.values())) == 1, exists  # a list about ann's file never holds
    assert spy.seen == []
    # Were it looked up, the answer would tell: the same lists about bob's own file differ.
    mine = site.url("/home/bob/b.txt")
    own = await probe(site, "PROPFIND", "/home/bob/b.txt", "bob", mine, etag)
    assert own["wrong"] != own["not wrong"]


@pytest.mark.parametrize("config", ["git"], indirect=True)
async def test_a_guessed_pin_makes_no_difference_on_git(site: Site) -> None:
    etag = await site.ok("PUT", "/home/ann/pin.txt", "ann", PIN)
    assert etag == f'"{blob_id(PIN)}"'  # what a guess would aim at
    spy = site.spy()
    before = site.state()
    pin = site.url("/home/ann/pin.txt")
    right = await probe(site, "PROPFIND", "/home/bob/b.txt", "bob", pin, f'"{blob_id(PIN)}"')
    wrong = await probe(site, "PROPFIND", "/home/bob/b.txt", "bob", pin, f'"{blob_id(b"0000")}"')
    assert right == wrong and len(set(right.values())) == 1
    assert spy.seen == [] and site.state() == before


async def test_if_lists_about_another_mount_are_not_looked_up(site: Site) -> None:
    etag = await site.ok("PUT", "/other/ann.txt", "ann", PIN)
    spy = site.spy("ann.txt")
    elsewhere = site.url("/other/ann.txt")
    there = await probe(site, "PROPFIND", "/home/bob/b.txt", "bob", elsewhere, etag)
    await site.ok("DELETE", "/other/ann.txt", "ann")
    gone = await probe(site, "PROPFIND", "/home/bob/b.txt", "bob", elsewhere, etag)
    assert there == gone and len(set(there.values())) == 1
    assert spy.seen == []


async def test_anonymous_if_lists_about_another_users_calendar_tell_nothing(site: Site) -> None:
    etag = await site.ok("PUT", ANN_CAL + "a.ics", "ann", event("a"))
    spy = site.spy()
    item = site.url(ANN_CAL + "a.ics")
    exists = await probe(site, "PROPFIND", USER_CAL, None, item, etag)
    await site.ok("DELETE", ANN_CAL + "a.ics", "ann")
    gone = await probe(site, "PROPFIND", USER_CAL, None, item, etag)
    assert exists == gone and len(set(exists.values())) == 1
    assert spy.seen == []


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_a_destination_in_another_users_tree_is_refused_before_looking(
    site: Site, method: str
) -> None:
    await site.ok("PUT", "/home/ann/secret.txt", "ann", PIN)
    spy = site.spy()
    before = site.state()
    for dst in ("/home/ann/secret.txt", "/home/ann/none.txt", "/home/ann/", "/home/ann/x/y"):
        for overwrite in ("T", "F"):
            status, _, _ = await site.request(
                method, "/home/bob/b.txt", "bob", Destination=dst, Overwrite=overwrite
            )
            assert status == 403, (dst, overwrite)
    assert spy.seen == [] and site.state() == before


def multiget(*hrefs: str) -> bytes:
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        f"{HEAD}<C:calendar-multiget {NSDECL}><D:prop><D:getetag/><C:calendar-data/>"
        f"</D:prop>{links}</C:calendar-multiget>"
    ).encode()


SYNC = (
    f"{HEAD}<D:sync-collection {NSDECL}><D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
).encode()
QUERY = (
    f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
    '<C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
).encode()


async def test_reports_naming_another_users_calendar_read_nothing_of_it(site: Site) -> None:
    await site.ok("PUT", ANN_CAL + "a.ics", "ann", event("a", "Ann's secret"))
    await site.ok("PUT", "/caldav/calendars/bob/calendar/b.ics", "bob", event("b"))
    spy = site.spy()
    before = site.state()
    bob_cal = "/caldav/calendars/bob/calendar/"
    status, _, body = await site.request(
        "REPORT", bob_cal, "bob", multiget(bob_cal + "b.ics", ANN_CAL + "a.ics", ANN_CAL + "x.ics")
    )
    assert status == 207
    by = parse_multistatus(body).by_href()
    assert by[ANN_CAL + "a.ics"].status == by[ANN_CAL + "x.ics"].status == 403
    assert b"secret" not in body
    for report, depth in ((SYNC, {}), (QUERY, {"Depth": "1"}), (multiget(ANN_CAL + "a.ics"), {})):
        for user in ("bob", None):  # anonymous acts as the default user here
            status, _, body = await site.request("REPORT", ANN_CAL, user, report, **depth)
            assert status == 403 and b"secret" not in body
    assert spy.seen == [] and site.state() == before
