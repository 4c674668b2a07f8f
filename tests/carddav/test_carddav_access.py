"""Address books are owner-only, like calendars: with accounts, each user's address-book home
and cards are theirs alone, whichever way a request tries to reach another user's; no
answer tells what exists there (multiget, sync, query, expand-property, the If header);
and user names may not take the reserved folder's name."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, D, parse_multistatus
from carddav_data import CR, NS, multiget_body, query_body, vcard
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AuthConfig, Config, ConfigError, MountConfig, ServerConfig, parse

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw"}
ANN = "/caldav/addressbooks/ann/contacts/"
BOB = "/caldav/addressbooks/bob/contacts/"
SECRET = "Secret Lover"


class Site:
    """A server with accounts ann and bob and one caldav mount."""

    def __init__(self, client: TestClient, store: Path) -> None:
        self.client = client
        self.store = store

    async def request(
        self, method: str, path: str, user: str | None, body: bytes | str = b"", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        if user is not None:
            token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if "Destination" in headers:
            headers["Destination"] = str(self.client.make_url(headers["Destination"]))
        data = body.encode() if isinstance(body, str) else body
        async with self.client.request(method, path, data=data, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def site_config(tmp_path: Path, backend: str) -> Config:
    accounts = tmp_path / "users"
    hashes = {
        u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in PASSWORDS.items()
    }
    htpasswd.write(accounts, hashes)
    store: dict[str, Any] = (
        {"backend": "git", "repo": tmp_path / "store"} if backend == "git"
        else {"root": tmp_path / "store"}
    )  # fmt: skip
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(htpasswd=accounts),
        mounts=(MountConfig(path="/caldav", type="caldav", depth_infinity=True, **store),),
    )


@pytest.fixture(params=["filesystem", "git"])
def config(request: Any, tmp_path: Path) -> Config:
    return site_config(tmp_path, request.param)


@pytest.fixture
async def site(config: Config, aiohttp_client: Any, tmp_path: Path) -> Site:
    site = Site(await aiohttp_client(create_app(config)), tmp_path / "store")
    for user, path, uid, name in (("ann", ANN, "ann-1", SECRET), ("bob", BOB, "bob-1", "Bob")):
        status, _, _ = await site.request(
            "PUT", path + f"{uid}.vcf", user, vcard(uid, name), Content_Type="text/vcard"
        )
        assert status == 201
    return site


SYNC = (
    f"{HEAD}<D:sync-collection {NS}><D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/><CR:address-data/></D:prop></D:sync-collection>"
)
EXPAND = (
    f'{HEAD}<D:expand-property xmlns:D="DAV:"><D:property name="current-user-principal">'
    '<D:property name="displayname"/></D:property></D:expand-property>'
)
MKCOL = (
    f"<D:mkcol {NS}><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/>"
    "</D:resourcetype></D:prop></D:set></D:mkcol>"
)


async def test_another_users_address_books_are_403_for_every_method(site: Site) -> None:
    before = snapshot(site.store)
    cases: list[tuple[str, str, bytes | str, dict[str, str]]] = [
        ("PROPFIND", "/caldav/addressbooks/ann/", b"", {"Depth": "1"}),
        ("PROPFIND", ANN, b"", {"Depth": "1"}),
        ("GET", ANN + "ann-1.vcf", b"", {"Accept": "text/vcard; version=4.0"}),
        ("REPORT", ANN, SYNC, {}),
        ("REPORT", ANN, query_body(""), {"Depth": "1"}),
        ("REPORT", ANN, multiget_body([ANN + "ann-1.vcf"]), {}),
        ("REPORT", "/caldav/principals/ann/", EXPAND, {}),
        ("PUT", ANN + "x.vcf", vcard("bob-2"), {"Content-Type": "text/vcard"}),
        ("PUT", ANN + "ann-1.vcf", vcard("ann-1", "changed"), {"Content-Type": "text/vcard"}),
        ("DELETE", ANN + "ann-1.vcf", b"", {}),
        ("MKCOL", "/caldav/addressbooks/ann/new/", MKCOL, {}),
        ("MOVE", ANN + "ann-1.vcf", b"", {"Destination": BOB + "stolen.vcf"}),
        ("COPY", BOB + "bob-1.vcf", b"", {"Destination": ANN + "planted.vcf"}),
        ("COPY", BOB, b"", {"Destination": "/caldav/addressbooks/ann/planted/"}),
    ]
    for method, path, body, headers in cases:
        status, _, answer = await site.request(method, path, "bob", body, **headers)
        assert status == 403, (method, path, status)
        assert SECRET.encode() not in answer, (method, path)
        if "ann-1" not in path:
            assert b"ann-1" not in answer, (method, path)
    assert snapshot(site.store) == before


async def test_no_oracle_through_hrefs(site: Site) -> None:
    """A multiget that names another user's cards gets 403 for each, whether it exists or
    not, and nothing of them is read."""
    hrefs = [BOB + "bob-1.vcf", ANN + "ann-1.vcf", ANN + "none.vcf", "/elsewhere/x.vcf"]
    status, _, answer = await site.request("REPORT", BOB, "bob", multiget_body(hrefs))
    assert status == 207
    by = parse_multistatus(answer).by_href()
    assert by[BOB + "bob-1.vcf"].props[f"{CR}address-data"].status == 200
    assert by[ANN + "ann-1.vcf"].status == by[ANN + "none.vcf"].status == 403
    assert SECRET.encode() not in answer


async def test_listings_leave_other_users_out(site: Site) -> None:
    for path, depth in (("/caldav/addressbooks/", "1"), ("/caldav/", "infinity")):
        status, _, body = await site.request("PROPFIND", path, "bob", Depth=depth)
        assert status == 207
        hrefs = [r.href for r in parse_multistatus(body).responses]
        assert not [h for h in hrefs if "/ann" in h], hrefs
        assert any(h.startswith("/caldav/addressbooks/bob/") for h in hrefs)
        assert SECRET.encode() not in body


async def test_each_user_discovers_their_own_address_book_home(site: Site) -> None:
    for user in ("ann", "bob"):
        body = f"{HEAD}<D:propfind {NS}><D:prop><CR:addressbook-home-set/></D:prop></D:propfind>"
        status, _, answer = await site.request("PROPFIND", "/caldav/", user, body, Depth="0")
        assert status == 207
        home = parse_multistatus(answer).responses[0].ok(f"{CR}addressbook-home-set")
        assert home.findtext(f"{D}href") == f"/caldav/addressbooks/{user}/"


def test_the_reserved_folder_cannot_be_a_user(tmp_path: Path) -> None:
    assert not htpasswd.valid_user_name(".addressbooks")
    assert not htpasswd.valid_user_name(".hidden")
    assert htpasswd.valid_user_name("ann.lee")
    (tmp_path / "users").write_text(".addressbooks:$2b$04$abcdefghijklmnopqrstuv\n")
    with pytest.raises(htpasswd.HtpasswdError):
        htpasswd.read(tmp_path / "users")
    table = {
        "mounts": [{"path": "/c", "type": "caldav", "root": "c", "default_user": ".addressbooks"}]
    }
    with pytest.raises(ConfigError, match="default_user"):
        parse(table, "test.toml", tmp_path)
