"""A trusted reverse proxy names the user in a header: believed from the trusted
addresses only; from any other peer the request is refused (401, a log line).

The untrusted peer is a second loopback address: the client binds its socket to
127.0.0.2, the trusted one to 127.0.0.1 (or the other way round)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot

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

HEADER = "X-Remote-User"
PRINCIPAL = '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'


def proxied_config(tmp_path: Path, root: Path, trusted: tuple[str, ...]) -> Config:
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(path="/", type="webdav", root=root),
            MountConfig(path="/caldav", type="caldav", root=tmp_path / "cal"),
        ),
        auth=AuthConfig(proxy_header=HEADER, trusted_proxies=trusted),
    )


@pytest.fixture
def make(aiohttp_client: Any, tmp_path: Path, root: Path) -> Any:
    async def start(trusted: tuple[str, ...], source: str) -> TestClient:
        """A client whose requests come from ``source``."""
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        app = create_app(proxied_config(tmp_path, root, trusted))
        return await aiohttp_client(app, connector=connector)

    return start


@pytest.mark.parametrize(
    "trusted", [("127.0.0.2",), ("10.0.0.0/8", "127.0.0.0/30"), ("::1", "127.0.0.2/32")]
)
async def test_the_header_from_a_trusted_proxy_is_the_user(
    make: Any, root: Path, trusted: tuple[str, ...]
) -> None:
    client = await make(trusted, "127.0.0.2")
    resp = await client.put("/x.txt", data=b"ann", headers={HEADER: "ann"})
    assert resp.status == 201
    assert (root / "x.txt").read_bytes() == b"ann"
    resp = await client.request(
        "PROPFIND", "/caldav/", data=PRINCIPAL, headers={"Depth": "0", HEADER: "bob"}
    )
    assert "/caldav/principals/bob/" in await resp.text()
    # Without the header the request is anonymous, and anonymous access is off.
    assert (await client.get("/x.txt")).status == 401
    # An empty header (nginx's $remote_user of a request the proxy did not log in) too.
    assert (await client.get("/x.txt", headers={HEADER: ""})).status == 401


async def test_the_header_from_any_other_peer_is_refused(
    make: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make(("127.0.0.2",), "127.0.0.1")
    (root / "x.txt").write_bytes(b"old")
    before = snapshot(root)
    for method in ("PUT", "GET", "DELETE", "PROPFIND"):
        resp = await client.request(method, "/x.txt", data=b"new", headers={HEADER: "ann"})
        assert resp.status == 401, method
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert snapshot(root) == before
    assert "X-Remote-User header from 127.0.0.1, which is not a trusted proxy" in caplog.text


async def test_the_header_is_refused_even_where_anonymous_may_write(
    aiohttp_client: Any, tmp_path: Path, root: Path
) -> None:
    """The header never falls back to an anonymous request: it is a claim to be someone."""
    config = proxied_config(tmp_path, root, ("127.0.0.2",))
    access = AccessConfig(anonymous="read-write")
    open_mount = MountConfig(path="/", type="webdav", root=root, access=access)
    config = Config(server=config.server, mounts=(open_mount,), auth=config.auth)
    client = await aiohttp_client(create_app(config))  # from 127.0.0.1: not trusted
    assert (await client.put("/a.txt", data=b"a")).status == 201
    before = snapshot(root)
    assert (await client.put("/b.txt", data=b"b", headers={HEADER: "ann"})).status == 401
    assert snapshot(root) == before


@pytest.mark.parametrize("value", ["ann/..", "a b", ".hidden", "x" * 65])
async def test_a_trusted_header_naming_no_usable_user_is_refused(
    make: Any, root: Path, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make(("127.0.0.2",), "127.0.0.2")
    before = snapshot(root)
    assert (await client.put("/x.txt", data=b"x", headers={HEADER: value})).status == 401
    assert snapshot(root) == before
    assert "names no usable user" in caplog.text


async def test_basic_credentials_still_work_beside_the_proxy(
    aiohttp_client: Any, tmp_path: Path, root: Path
) -> None:
    accounts = tmp_path / "users"
    hashed = await asyncio.to_thread(htpasswd.hash_password, "carl-pw")
    await asyncio.to_thread(htpasswd.write, accounts, {"carl": hashed})
    config = proxied_config(tmp_path, root, ("127.0.0.2",))
    auth = AuthConfig(htpasswd=accounts, proxy_header=HEADER, trusted_proxies=("127.0.0.2",))
    client = await aiohttp_client(
        create_app(Config(server=config.server, mounts=config.mounts, auth=auth))
    )
    token = aiohttp.encode_basic_auth("carl", "carl-pw")
    resp = await client.get("/", headers={"Authorization": token})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("auth", "message"),
    [({"proxy_header": HEADER}, "proxy_header and trusted_proxies go together"),
     ({"trusted_proxies": ["127.0.0.1"]}, "proxy_header and trusted_proxies go together"),
     ({"proxy_header": HEADER, "trusted_proxies": ["10.0.0.1/8"]}, "has host bits set"),
     ({"proxy_header": HEADER, "trusted_proxies": ["localhost"]}, "does not appear to be"),
     ({"proxy_header": "Authorization", "trusted_proxies": ["::1"]}, "cannot carry a user"),
     ({"proxy_header": "X User", "trusted_proxies": ["::1"]}, "is not a header name")],
)  # fmt: skip
def test_bad_proxy_settings_are_refused_at_start(
    tmp_path: Path, auth: dict[str, Any], message: str
) -> None:
    data = {"auth": auth, "mounts": [{"path": "/", "type": "webdav", "root": "d"}]}
    with pytest.raises(ConfigError, match=message):
        parse(data, "conf.toml", tmp_path)
