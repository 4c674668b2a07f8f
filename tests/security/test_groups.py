"""Groups in the access rules: the ``[groups]`` table, ``access = { groups = {...} }``,
and the checks that refuse a bad table at start."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.auth.groups import Groups
from davserver.config import ConfigError, parse

USERS = ("ann", "bob", "carl")


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    htpasswd.write(path, {u: htpasswd.hash_password(f"{u}-pw") for u in USERS})
    return path


def config_data(accounts: Path, root: Path, access: dict[str, Any], **extra: Any) -> dict[str, Any]:
    mount = {"path": "/", "type": "webdav", "root": str(root), "access": access}
    return {"auth": {"htpasswd": str(accounts)}, "mounts": [mount], **extra}


async def start(aiohttp_client: Any, tmp_path: Path, data: dict[str, Any]) -> TestClient:
    data = {**data, "server": {"state_dir": str(tmp_path / "state"), "access_log": False}}
    config = await asyncio.to_thread(parse, data, "test.toml", tmp_path)
    return await aiohttp_client(create_app(config))


async def test_a_group_may_write_where_others_may_read(
    aiohttp_client: Any, tmp_path: Path, root: Path, accounts: Path
) -> None:
    access = {"authenticated": "read-only", "groups": {"staff": "read-write"}}
    data = config_data(accounts, root, access, groups={"staff": ["ann"]})
    client = await start(aiohttp_client, tmp_path, data)
    assert (await client.put("/a.txt", data=b"a", headers=basic("ann"))).status == 201
    before = snapshot(root)
    for method in ("PUT", "DELETE", "MKCOL", "PROPPATCH", "LOCK"):
        resp = await client.request(method, "/a.txt", data=b"b", headers=basic("bob"))
        assert resp.status == 403, method
    assert snapshot(root) == before
    assert (await client.get("/a.txt", headers=basic("bob"))).status == 200


async def test_with_groups_only_their_members_get_in(
    aiohttp_client: Any, tmp_path: Path, root: Path, accounts: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, "davserver")
    access = {"groups": {"staff": "read-write", "Family and friends": "read-only"}}
    groups = {"staff": ["ann"], "Family and friends": ["bob", "ann"]}
    client = await start(
        aiohttp_client, tmp_path, config_data(accounts, root, access, groups=groups)
    )
    assert (await client.put("/a.txt", data=b"a", headers=basic("ann"))).status == 201
    before = snapshot(root)
    assert (await client.put("/b.txt", data=b"b", headers=basic("bob"))).status == 403
    assert (await client.get("/a.txt", headers=basic("bob"))).status == 200
    # carl is in no group: authenticated access is off when groups are given.
    assert (await client.get("/a.txt", headers=basic("carl"))).status == 403
    assert (await client.put("/c.txt", data=b"c", headers=basic("carl"))).status == 403
    assert (await client.get("/a.txt")).status == 401
    assert snapshot(root) == before
    assert "PUT /c.txt refused: 403, 'carl''s access is off" in caplog.text


async def test_groups_of_the_configuration() -> None:
    groups = Groups({"staff": ("ann", "bob"), "ops": ("bob",)})
    assert await groups.of("bob") == {"staff", "ops"}
    assert await groups.of("ann") == {"staff"}
    assert await groups.of("zed") == frozenset()
    assert await groups.members("staff") == {"ann", "bob"}
    assert await groups.members("none") == frozenset()


@pytest.mark.parametrize(
    ("access", "groups", "message"),
    [({"groups": {"staff": "read-write"}}, {}, "mounts[0].access.groups.staff: no such group"),
     ({"groups": {"staff": "write"}}, {"staff": ["ann"]}, "'write' is not one of"),
     ({"groups": {"staff": "read-only"}}, {"staff": ["ann"]}, None),
     ({"authenticated": "read-write", "groups": {"staff": "read-write"}}, {"staff": ["ann"]},
      "gives nothing more than authenticated = 'read-write'"),
     ({"authenticated": "read-only", "groups": {"staff": "read-only"}}, {"staff": ["ann"]},
      "gives nothing more than authenticated = 'read-only'"),
     ({"groups": ["staff"]}, {"staff": ["ann"]}, "access.groups: must be a table of strings"),
     ({}, {"staff": "ann"}, "groups.staff: must be a list of user names"),
     ({}, {"staff": ["a/b"]}, "groups.staff: 'a/b' is not a usable user name"),
     ({}, {"bad\nname": ["ann"]}, "not a usable group name")],
)  # fmt: skip
def test_bad_group_rules_are_refused_at_start(
    tmp_path: Path, access: dict[str, Any], groups: dict[str, Any], message: str | None
) -> None:
    data = config_data(tmp_path / "users", tmp_path / "d", access, groups=groups)
    if message is None:  # the good one among them
        parse(data, "conf.toml", tmp_path)
        return
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(data, "conf.toml", tmp_path)


def test_group_rules_need_accounts(tmp_path: Path) -> None:
    data = {
        "groups": {"staff": ["ann"]},
        "mounts": [{"path": "/", "type": "webdav", "root": "d",
                    "access": {"anonymous": "read-only", "groups": {"staff": "read-write"}}}],
    }  # fmt: skip
    with pytest.raises(ConfigError, match="needs accounts"):
        parse(data, "conf.toml", tmp_path)


def test_groups_is_a_table_of_its_own(tmp_path: Path) -> None:
    data = {"groups": ["staff"], "mounts": [{"path": "/", "type": "webdav", "root": "d"}]}
    with pytest.raises(ConfigError, match="groups: must be a table"):
        parse(data, "conf.toml", tmp_path)
