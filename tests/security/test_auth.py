"""Basic authentication: with [auth] htpasswd set, nobody gets in without an account."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import free_port, snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AuthConfig, Config, MountConfig, ServerConfig


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    htpasswd.write(path, {"ann": htpasswd.hash_password("ann-pw")})
    return path


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, root: Path, accounts: Path) -> TestClient:
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(path="/", type="webdav", root=root),
            MountConfig(path="/caldav", type="caldav", root=tmp_path / "cal"),
        ),
        auth=AuthConfig(htpasswd=accounts),
    )
    return await aiohttp_client(create_app(config))


async def test_no_credentials_get_a_basic_challenge(client: TestClient, root: Path) -> None:
    before = snapshot(root)
    for method in ("GET", "PUT", "PROPFIND", "DELETE", "MKCOL", "LOCK"):
        resp = await client.request(method, "/x.txt", data=b"data")
        assert resp.status == 401, method
        assert resp.headers["WWW-Authenticate"].startswith('Basic realm="davserver"')
    assert snapshot(root) == before


async def test_wrong_passwords_are_refused_ever_slower(
    client: TestClient, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(root)
    times = []
    for credentials in (basic("ann", "nope"), basic("ann", "nope2"), basic("zed", "x"),
                        {"Authorization": "Basic !!!notbase64"}):  # fmt: skip
        start = time.monotonic()
        resp = await client.put("/x.txt", data=b"data", headers=credentials)
        times.append(time.monotonic() - start)
        assert resp.status == 401
    # Each failure in a row waits twice as long before its 401: 0.1, 0.2, 0.4, 0.8 s (what
    # a password check costs comes on top, and varies with the machine's load).
    assert times[-1] >= 0.8
    assert snapshot(root) == before
    assert "failed login for 'ann'" in caplog.text
    assert "(4 in a row)" in caplog.text


async def test_an_account_gets_in_and_is_the_calendar_user(client: TestClient, root: Path) -> None:
    auth = basic("ann", "ann-pw")
    assert (await client.put("/x.txt", data=b"data", headers=auth)).status == 201
    assert (root / "x.txt").read_bytes() == b"data"
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'
    resp = await client.request("PROPFIND", "/caldav/", data=body, headers={"Depth": "0", **auth})
    assert "/caldav/principals/ann/" in await resp.text()


async def test_options_needs_no_credentials(client: TestClient) -> None:
    resp = await client.options("/")
    assert resp.status == 200
    assert resp.headers["DAV"].startswith("1, 2")


async def test_accounts_added_while_running_are_seen(client: TestClient, accounts: Path) -> None:
    users = await asyncio.to_thread(htpasswd.read, accounts)
    users["bob"] = htpasswd.hash_password("bob-pw")
    await asyncio.to_thread(htpasswd.write, accounts, users)
    await asyncio.sleep(2.1)  # the file is checked for changes every 2 seconds
    assert (await client.get("/", headers=basic("bob", "bob-pw"))).status == 200


def test_a_broken_accounts_file_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "users").write_text("md5user:$apr1$weak$hash\n")
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[auth]\nhtpasswd = "users"\n[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "d"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "davserver", "serve", "--config", str(conf), "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{tmp_path / 'users'}:1" in done.stderr


async def test_a_percent_encoded_at_sign_in_the_user_name_is_the_account(
    aiohttp_client: Any, tmp_path: Path, root: Path
) -> None:
    """iOS 18.4 sends "ann%40example.org" for "ann@example.org" (CLIENTS.md #17)."""
    accounts = tmp_path / "mail-users"
    hashed = await asyncio.to_thread(htpasswd.hash_password, "pw")
    await asyncio.to_thread(htpasswd.write, accounts, {"ann@example.org": hashed})
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(MountConfig(path="/", type="webdav", root=root),),
        auth=AuthConfig(htpasswd=accounts),
    )
    client = await aiohttp_client(create_app(config))
    for name in ("ann@example.org", "ann%40example.org"):
        resp = await client.put("/x.txt", data=name.encode(), headers=basic(name, "pw"))
        assert resp.status in (201, 204), name
    assert (await client.get("/", headers=basic("ann%2540example.org", "pw"))).status == 401
