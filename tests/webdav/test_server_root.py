"""The server root when no mount holds ``/``: OPTIONS and PROPFIND answer (Windows probes
the host root; calendar clients start discovery there), nothing else does."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import HEAD, D, parse_multistatus
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AuthConfig, Config, MountConfig, ServerConfig

DISCOVER = (
    f'{HEAD}<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<D:resourcetype/><D:current-user-principal/><C:calendar-home-set/></D:prop></D:propfind>"
).encode()


def config(tmp_path: Path, accounts: Path | None = None) -> Config:
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(path="/files/dav", type="webdav", root=tmp_path / "files"),
            MountConfig(path="/cal", type="caldav", root=tmp_path / "cal"),
        ),
        auth=AuthConfig(htpasswd=accounts),
    )


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(create_app(config(tmp_path)))


async def test_propfind_depth_0_discovers_the_calendars(client: TestClient) -> None:
    resp = await client.request("PROPFIND", "/", data=DISCOVER, headers={"Depth": "0"})
    assert resp.status == 207
    (root,) = parse_multistatus(await resp.read()).responses
    assert root.href == "/"
    assert root.ok(f"{D}resourcetype").find(f"{D}collection") is not None
    assert root.value(f"{D}current-user-principal") == "/cal/principals/user/"
    home = root.ok("{urn:ietf:params:xml:ns:caldav}calendar-home-set")
    assert "".join(home.itertext()) == "/cal/calendars/user/"


async def test_propfind_depth_1_lists_the_mounts(client: TestClient) -> None:
    resp = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    assert resp.status == 207
    responses = parse_multistatus(await resp.read()).responses
    assert [r.href for r in responses] == ["/", "/cal/", "/files/"]
    assert all(r.ok(f"{D}resourcetype").find(f"{D}collection") is not None for r in responses)


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Depth": "infinity"}, b"", 403),
        ({}, b"", 403),  # no Depth is infinity (RFC 4918 9.1)
        ({"Depth": "2"}, b"", 400),
        ({"Depth": "0"}, b"<D:propfind xmlns:D='DAV:'><D:prop>", 400),
        ({"Depth": "0"}, b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>', 400),
    ],
)
async def test_bad_propfinds_of_the_root_are_refused(
    client: TestClient, tmp_path: Path, headers: dict[str, str], body: bytes, status: int
) -> None:
    before = snapshot(tmp_path)
    resp = await client.request("PROPFIND", "/", data=body, headers=headers)
    assert resp.status == status
    assert snapshot(tmp_path) == before


async def test_options_answers_and_other_methods_find_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    resp = await client.options("/")
    assert resp.status == 200
    assert resp.headers["DAV"] == "1, 2" and resp.headers["Allow"] == "OPTIONS, PROPFIND"
    before = snapshot(tmp_path)
    for method in ("GET", "PUT", "MKCOL", "DELETE"):
        assert (await client.request(method, "/", data=b"x")).status == 404, method
    assert (await client.request("PROPFIND", "/other/", headers={"Depth": "0"})).status == 404
    assert snapshot(tmp_path) == before


async def test_with_accounts_the_root_needs_credentials(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    accounts = tmp_path / "users"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    await asyncio.to_thread(htpasswd.write, accounts, {"ann": hashed})
    client = await aiohttp_client(create_app(config(tmp_path, accounts)))
    resp = await client.request("PROPFIND", "/", data=DISCOVER, headers={"Depth": "0"})
    assert resp.status == 401
    token = base64.b64encode(b"ann:pw").decode()
    headers = {"Depth": "0", "Authorization": f"Basic {token}"}
    resp = await client.request("PROPFIND", "/", data=DISCOVER, headers=headers)
    assert resp.status == 207
    (root,) = parse_multistatus(await resp.read()).responses
    assert root.value(f"{D}current-user-principal") == "/cal/principals/ann/"
