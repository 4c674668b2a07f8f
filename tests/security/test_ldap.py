"""LDAP logins against a real OpenLDAP server (tests/ldapserver.py): search, then bind as
the user; StartTLS and LDAPS; a directory that stops answers 503, then recovers; the
directory's groups."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot
from ldapserver import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd

from davserver.app import create_app
from davserver.auth.groups import Groups
from davserver.auth.ldap import Directory
from davserver.config import (
    AuthConfig,
    Config,
    ConfigError,
    LdapConfig,
    MountConfig,
    ServerConfig,
    parse,
)

PRINCIPAL = '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def directory(server: Slapd, **options: Any) -> LdapConfig:
    """The configuration of the test directory: StartTLS on the plain port, the server's
    own certificate trusted."""
    values: dict[str, Any] = {
        "url": server.url, "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD,
        "base": PEOPLE, "group_base": f"ou=groups,{SUFFIX}", "ca_file": server.ca_file,
        "timeout": 3.0,
    }  # fmt: skip
    values.update(options)
    return LdapConfig(**values)


def ldap_config(tmp_path: Path, root: Path, ldap: LdapConfig, **access: Any) -> Config:
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(path="/", type="webdav", root=root, **access),
            MountConfig(path="/caldav", type="caldav", root=tmp_path / "cal"),
        ),
        auth=AuthConfig(ldap=ldap),
    )


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd) -> TestClient:
    return await aiohttp_client(create_app(ldap_config(tmp_path, root, directory(slapd))))


async def principal(client: TestClient, headers: dict[str, str]) -> str:
    resp = await client.request(
        "PROPFIND", "/caldav/", data=PRINCIPAL, headers={"Depth": "0", **headers}
    )
    assert resp.status == 207
    return await resp.text()


async def test_a_directory_user_logs_in_as_its_entry(client: TestClient, root: Path) -> None:
    assert (await client.put("/x.txt", data=b"ann", headers=basic("ann", "ann-pw"))).status == 201
    assert (root / "x.txt").read_bytes() == b"ann"
    # The user is the entry's uid, whatever case the client typed (one principal, not two).
    assert "/caldav/principals/ann/" in await principal(client, basic("ANN", "ann-pw"))


@pytest.mark.parametrize(
    ("user", "password"),
    [("ann", "wrong"), ("ann", ""), ("nobody", "x"), ("carl", "carl-pw"), ("*", "ann-pw"),
     ("ann)(uid=*", "ann-pw")],
    ids=["wrong-password", "empty-password", "unknown", "locked-out", "wildcard", "injection"],
)  # fmt: skip
async def test_refused_logins_get_401_and_change_nothing(
    client: TestClient, root: Path, user: str, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(root)
    resp = await client.put("/x.txt", data=b"data", headers=basic(user, password))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert snapshot(root) == before
    assert f"failed login for {user!r}" in caplog.text


@pytest.mark.parametrize("security", ["starttls", "ldaps"])
async def test_tls_to_the_directory(
    aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd, security: str
) -> None:
    url = slapd.ldaps_url if security == "ldaps" else slapd.url
    config = ldap_config(tmp_path, root, directory(slapd, url=url, tls=security))
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/", headers=basic("bob", "bob-pw"))).status == 200
    assert (await client.get("/", headers=basic("bob", "nope"))).status == 401


async def test_a_certificate_not_trusted_is_503_not_401(
    aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    """Without its CA the directory's certificate is refused: no password is sent, and the
    request gets 503 (the server cannot tell whether the password is right)."""
    for ldap in (
        directory(slapd, ca_file=None),
        directory(slapd, url=slapd.ldaps_url, ca_file=None),
    ):
        client = await aiohttp_client(create_app(ldap_config(tmp_path, root, ldap)))
        resp = await client.get("/", headers=basic("bob", "bob-pw"))
        assert resp.status == 503
        assert "the directory cannot be asked" in caplog.text
        await client.close()


async def test_plain_ldap_when_configured(
    aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd
) -> None:
    config = ldap_config(tmp_path, root, directory(slapd, tls="off", ca_file=None))
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/", headers=basic("dora", "dora-pw"))).status == 200


async def test_a_refused_service_account_is_503(
    aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    ldap = directory(slapd, bind_password="not-the-password")
    client = await aiohttp_client(create_app(ldap_config(tmp_path, root, ldap)))
    assert (await client.get("/", headers=basic("ann", "ann-pw"))).status == 503
    assert "service account's bind was refused" in caplog.text


async def test_the_directory_stopping_is_503_then_recovery(
    aiohttp_client: Any, tmp_path: Path, root: Path, own_slapd: Slapd,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    config = ldap_config(tmp_path, root, directory(own_slapd))
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/", headers=basic("ann", "ann-pw"))).status == 200
    await asyncio.to_thread(own_slapd.stop)
    before = snapshot(root)
    with caplog.at_level(logging.WARNING, "davserver"):
        resp = await client.put("/x.txt", data=b"data", headers=basic("bob", "bob-pw"))
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert "PUT /x.txt: 503, the directory cannot be asked" in caplog.text
    assert "failed login" not in caplog.text  # not counted as a wrong password
    assert snapshot(root) == before
    # A login verified in the last minutes goes on working meanwhile.
    assert (await client.get("/", headers=basic("ann", "ann-pw"))).status == 200
    await asyncio.to_thread(own_slapd.start)
    resp = await client.put("/x.txt", data=b"data", headers=basic("bob", "bob-pw"))
    assert resp.status == 201
    assert (await client.get("/", headers=basic("dora", "dora-pw"))).status == 200


async def test_a_restarted_directory_is_used_again_at_once(
    aiohttp_client: Any, tmp_path: Path, root: Path, own_slapd: Slapd
) -> None:
    """Pooled connections that the restart closed are replaced, not answered 503."""
    client = await aiohttp_client(create_app(ldap_config(tmp_path, root, directory(own_slapd))))
    assert (await client.get("/", headers=basic("ann", "ann-pw"))).status == 200
    await asyncio.to_thread(own_slapd.stop)
    await asyncio.to_thread(own_slapd.start)
    assert (await client.get("/", headers=basic("bob", "bob-pw"))).status == 200


async def test_directory_groups_in_the_access_rules(
    aiohttp_client: Any, tmp_path: Path, root: Path, slapd: Slapd
) -> None:
    access = {"access": dataclasses.replace(
        MountConfig(path="/", type="webdav").access,
        authenticated="read-only", groups={"staff": "read-write", "family": "read-write"},
    )}  # fmt: skip
    config = ldap_config(tmp_path, root, directory(slapd), **access)
    client = await aiohttp_client(create_app(config))
    # ann is a member of staff (groupOfNames), bob of family (posixGroup's memberUid).
    assert (await client.put("/a.txt", data=b"a", headers=basic("ann", "ann-pw"))).status == 201
    assert (await client.put("/b.txt", data=b"b", headers=basic("bob", "bob-pw"))).status == 201
    before = snapshot(root)
    resp = await client.put("/d.txt", data=b"d", headers=basic("dora", "dora-pw"))
    assert resp.status == 403
    assert snapshot(root) == before
    assert (await client.get("/a.txt", headers=basic("dora", "dora-pw"))).status == 200


async def test_the_groups_interface(slapd: Slapd) -> None:
    """What sharing and the access rules ask: the groups of a user, the members of a
    group, from the configuration and the directory together."""
    ldap = Directory(directory(slapd))
    groups = Groups({"staff": ("bob",), "ops": ("dora",)}, ldap)
    try:
        assert await groups.of("ann") == {"staff"}
        assert await groups.of("bob") == {"staff", "family"}
        assert await groups.of("dora") == {"ops"}
        assert await groups.of("nobody") == frozenset()
        assert await groups.members("staff") == {"ann", "bob"}
        assert await groups.members("family") == {"bob"}
        assert await groups.members("none") == frozenset()
    finally:
        await asyncio.to_thread(ldap.close)


@pytest.mark.parametrize(
    ("ldap", "message"),
    [({"base": "dc=x"}, r"auth.ldap.url: '' must be ldap://HOST"),
     ({"url": "http://x", "base": "dc=x"}, "must be ldap://HOST"),
     ({"url": "ldap://x"}, r"auth.ldap.base: missing"),
     ({"url": "ldap://x", "base": "dc=x", "tls": "ldaps"}, "ldaps\" and an ldaps:// URL go together"),
     ({"url": "ldaps://x", "base": "dc=x", "tls": "starttls"}, "go together"),
     ({"url": "ldap://x", "base": "dc=x", "tls": "yes"}, "'yes' is not one of starttls, ldaps, off"),
     ({"url": "ldap://x", "base": "dc=x", "filter": "(uid=ann)"}, r"an LDAP filter with \{user\}"),
     ({"url": "ldap://x", "base": "dc=x", "filter": "uid={user}"}, r"an LDAP filter with \{user\}"),
     ({"url": "ldap://x", "base": "dc=x", "filter": "(&(uid={user})"}, r"an LDAP filter with \{user\}"),
     ({"url": "ldap://x", "base": "dc=x", "group_filter": "(member={dn}))"}, "is not an LDAP filter"),
     ({"url": "ldap://x", "base": "dc=x", "bind_dn": "cn=a"}, "bind_dn and bind_password go together"),
     ({"url": "ldap://x", "base": "dc=x", "timeout": 0}, "timeout: must be more than 0"),
     ({"url": "ldap://x", "base": "dc=x", "ca_file": "missing.pem"}, "is not a file"),
     ({"url": "ldap://x", "base": "dc=x", "user_attribute": "u id"}, "not an attribute name"),
     ({"url": "ldap://x", "base": "dc=x", "password": "x"}, r"auth.ldap.password: unknown key"),
     ("ldap://x", r"auth.ldap: must be a table")],
)  # fmt: skip
def test_bad_ldap_settings_are_refused_at_start(tmp_path: Path, ldap: Any, message: str) -> None:
    data = {"auth": {"ldap": ldap}, "mounts": [{"path": "/", "type": "webdav", "root": "d"}]}
    with pytest.raises(ConfigError, match=message):
        parse(data, "conf.toml", tmp_path)


def test_ldap_alone_closes_anonymous_access(tmp_path: Path) -> None:
    data = {"auth": {"ldap": {"url": "ldaps://ldap.example.org", "base": "dc=example,dc=org"}},
            "mounts": [{"path": "/", "type": "webdav", "root": "d"}]}  # fmt: skip
    config = parse(data, "conf.toml", tmp_path)
    assert config.auth.ldap is not None and config.auth.ldap.security == "ldaps"
    assert config.mounts[0].access.resolved("webdav", config.auth.accounts).anonymous == "off"


async def test_connections_are_pooled(
    aiohttp_client: Any, tmp_path: Path, root: Path, own_slapd: Slapd
) -> None:
    """Logins one after the other reuse one connection for searches and one for the
    users' binds, instead of a TCP and TLS handshake each."""
    client = await aiohttp_client(create_app(ldap_config(tmp_path, root, directory(own_slapd))))
    before = await asyncio.to_thread(own_slapd.connections)
    for name in ("ann", "bob", "dora", "ANN", "BOB", "DORA"):  # the upper case ones: not cached
        headers = basic(name, f"{name.lower()}-pw")
        assert (await client.get("/", headers=headers)).status == 200
    # The two pooled ones, and the one that asked the monitor.
    assert await asyncio.to_thread(own_slapd.connections) - before == 3


async def test_a_directory_that_stops_answering_is_503_within_the_timeout(
    aiohttp_client: Any, tmp_path: Path, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that accepts connections and never answers holds a request for the timeout
    (twice: once more on a new connection), not for ever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nobody ever reads them
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        ldap = LdapConfig(url=url, base=PEOPLE, tls="off", timeout=1.0)
        client = await aiohttp_client(create_app(ldap_config(tmp_path, root, ldap)))
        start = time.monotonic()
        resp = await client.get("/", headers=basic("ann", "ann-pw"))
        assert resp.status == 503
        assert time.monotonic() - start < 10
    assert "the directory cannot be asked" in caplog.text


async def test_sharing_and_delegating_to_a_directory_group(client: TestClient) -> None:
    """A calendar shared with a directory group, and a home delegated to one, through the
    protocol: its members reach them, others do not."""
    ann, bob, dora = basic("ann", "ann-pw"), basic("bob", "bob-pw"), basic("dora", "dora-pw")
    xml = {"Content-Type": "application/xml"}
    calendar = "/caldav/calendars/ann/calendar/"
    family = "/caldav/principals/.groups/family/"  # bob (a posixGroup)
    share = (
        '<D:share-resource xmlns:D="DAV:"><D:sharee>'
        f"<D:href>{family}</D:href><D:share-access><D:read/></D:share-access>"
        "</D:sharee></D:share-resource>"
    )
    assert (await client.post(calendar, data=share, headers={**xml, **ann})).status == 200
    for who, status in ((bob, 207), (dora, 403)):
        resp = await client.request("PROPFIND", calendar, headers={"Depth": "0", **who})
        assert resp.status == status
    delegates = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:group-member-set>'
        f"<D:href>{family}</D:href></D:group-member-set></D:prop></D:set></D:propertyupdate>"
    )
    readers = "/caldav/principals/ann/calendar-proxy-read/"
    resp = await client.request("PROPPATCH", readers, data=delegates, headers={**xml, **ann})
    assert resp.status == 207
    for who, status in ((bob, 207), (dora, 403)):
        resp = await client.request(
            "PROPFIND", "/caldav/calendars/ann/tasks/", headers={"Depth": "0", **who}
        )
        assert resp.status == status
    # A group the directory does not know is refused.
    unknown = share.replace(family, "/caldav/principals/.groups/nobody/")
    assert (await client.post(calendar, data=unknown, headers={**xml, **ann})).status == 400


async def test_a_group_principal_without_the_directory_is_503(
    aiohttp_client: Any, tmp_path: Path, root: Path, own_slapd: Slapd,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    client = await aiohttp_client(create_app(ldap_config(tmp_path, root, directory(own_slapd))))
    ann = basic("ann", "ann-pw")
    family = "/caldav/principals/.groups/family/"  # not asked yet: not remembered
    resp = await client.request(
        "PROPFIND", "/caldav/principals/ann/", headers={"Depth": "0", **ann}
    )
    assert resp.status == 207
    await asyncio.to_thread(own_slapd.stop)
    before = snapshot(tmp_path / "state")
    share = (
        '<D:share-resource xmlns:D="DAV:"><D:sharee>'
        f"<D:href>{family}</D:href><D:share-access><D:read/></D:share-access>"
        "</D:sharee></D:share-resource>"
    )
    with caplog.at_level(logging.WARNING, "davserver"):
        resp = await client.request("PROPFIND", family, headers={"Depth": "0", **ann})
        assert resp.status == 503 and resp.headers["Retry-After"]
        resp = await client.post(
            "/caldav/calendars/ann/calendar/", data=share,
            headers={"Content-Type": "application/xml", **ann},
        )  # fmt: skip
        assert resp.status == 503
    assert "503, the directory cannot be asked" in caplog.text
    assert snapshot(tmp_path / "state") == before
