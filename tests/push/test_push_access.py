"""Who may subscribe, and to what: registering is a write under the mount's access rules,
a registration is its owner's, and on an owner-only tree nobody hears of another user's
changes, not even how many there were."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import bcrypt
import pytest
from helpers import snapshot
from pushservice import PushService
from pushtools import MakeServer, register, stored, subscribe

from davserver.auth import htpasswd
from davserver.config import AccessConfig


@pytest.fixture
def users(tmp_path: Path) -> Path:
    """An htpasswd file with ann and bob (passwords ann-pw, bob-pw); cheap hashes: who
    gets in is tested, not the hashing. Written before the test's event loop runs."""
    path = tmp_path / "users"
    htpasswd.write(
        path,
        {u: bcrypt.hashpw(f"{u}-pw".encode(), bcrypt.gensalt(4)).decode() for u in ("ann", "bob")},
    )
    return path


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_each_user_subscribes_to_their_own_collections_only(
    make_server: MakeServer, service: PushService, tmp_path: Path, users: Path
) -> None:
    http = await make_server(htpasswd=users, access=AccessConfig(owner_only=True))
    for user in ("ann", "bob"):
        assert (await http.request("MKCOL", f"/dav/{user}/", headers=basic(user))).status == 201
    ann = await subscribe(http, "/dav/ann/", service.client("ann"), headers=basic("ann"))
    before = snapshot(tmp_path / "dav")
    for path, headers, status in (
        ("/dav/ann/", basic("bob"), 403),
        ("/dav/", basic("bob"), 403),  # the shared root would tell of everyone's changes
        ("/cal/calendars/ann/calendar/", basic("bob"), 403),
        ("/dav/ann/", {}, 401),
    ):
        got, _, _ = await register(http, path, service.client("bob"), headers=headers)
        assert got == status, (path, headers)
    # Only its owner ends a registration.
    assert (await http.delete(ann[ann.index("/dav") :], headers=basic("bob"))).status == 403
    assert len(stored(tmp_path)) == 1 and snapshot(tmp_path / "dav") == before
    # ann hears of her changes, without the mount's change number; not of bob's.
    assert (await http.put("/dav/ann/a.txt", data=b"a", headers=basic("ann"))).status == 201
    got = await service.await_messages("ann", 1, timeout=5)
    assert got[0].content and got[0].token is None
    for i in range(3):
        resp = await http.put(f"/dav/bob/{i}.txt", data=b"b", headers=basic("bob"))
        assert resp.status == 201
    await asyncio.sleep(0.5)
    assert len(service.messages("ann")) == 1
    assert service.hits == 1


async def test_read_only_users_cannot_subscribe(
    make_server: MakeServer, service: PushService, tmp_path: Path, users: Path
) -> None:
    http = await make_server(htpasswd=users, access=AccessConfig(authenticated="read-only"))
    status, _, _ = await register(http, "/dav/", service.client("a"), headers=basic("ann"))
    assert status == 403
    assert stored(tmp_path) == []


async def test_on_a_shared_tree_a_registration_is_still_its_owners(
    make_server: MakeServer, service: PushService, tmp_path: Path, users: Path
) -> None:
    http = await make_server(htpasswd=users)
    location = await subscribe(http, "/dav/", service.client("a"), headers=basic("ann"))
    url = location[location.index("/dav") :]
    assert (await http.delete(url, headers=basic("bob"))).status == 404
    assert len(stored(tmp_path)) == 1
    assert (await http.delete(url, headers=basic("ann"))).status == 204
    assert stored(tmp_path) == []


async def until_stored(tmp_path: Path, owners: set[str], timeout: float = 6.0) -> None:
    """Wait until the owners of the stored subscriptions are ``owners``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while {row[3] for row in stored(tmp_path)} != owners:
        assert asyncio.get_running_loop().time() < deadline, stored(tmp_path)
        await asyncio.sleep(0.1)


async def test_a_removed_account_loses_its_subscriptions(
    make_server: MakeServer,
    service: PushService,
    tmp_path: Path,
    users: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("davserver.push.feature.PURGE_EVERY", 0.2)
    http = await make_server(htpasswd=users)
    await subscribe(http, "/dav/", service.client("ann"), headers=basic("ann"))
    await subscribe(http, "/dav/", service.client("bob"), headers=basic("bob"))
    await asyncio.sleep(0.5)
    assert {row[3] for row in stored(tmp_path)} == {"ann", "bob"}  # both still accounts
    bob = (await asyncio.to_thread(htpasswd.read, users))["bob"]
    await asyncio.to_thread(htpasswd.write, users, {"bob": bob})
    await until_stored(tmp_path, {"bob"})
    assert (await http.put("/dav/a.txt", data=b"a", headers=basic("bob"))).status == 201
    await service.await_messages("bob", 1)
    await asyncio.sleep(0.3)
    assert service.messages("ann") == []


async def test_rules_made_stricter_drop_the_subscriptions_they_refuse(
    make_server: MakeServer,
    service: PushService,
    tmp_path: Path,
    users: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked at the start too: a configuration changed by a restart (or SIGHUP)."""
    monkeypatch.setattr("davserver.push.feature.PURGE_EVERY", 0.2)
    first = await make_server()  # no accounts: anonymous requests may write
    await subscribe(first, "/dav/", service.client("anonymous"))
    await first.close()
    second = await make_server(htpasswd=users)  # accounts close the door to anonymous
    await subscribe(second, "/dav/", service.client("ann"), headers=basic("ann"))
    await until_stored(tmp_path, {"ann"})
    await second.close()
    await make_server(htpasswd=users, access=AccessConfig(authenticated="read-only"))
    await until_stored(tmp_path, set())
