"""Class 2 locking: LOCK, UNLOCK, the If header, conflicts, expiry, and every write
refused without the token."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot
from lxml import etree

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

D = "{DAV:}"
OWNER = "<D:owner><D:href>mailto:ann@example.com</D:href></D:owner>"


def lockinfo(scope: str = "exclusive", owner: str = OWNER) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
        f"<D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype>"
        f"{owner}</D:lockinfo>"
    )


async def lock(
    client: TestClient,
    path: str,
    *,
    scope: str = "exclusive",
    depth: str = "0",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str | None, bytes]:
    """LOCK a path; returns (status, token without brackets, body)."""
    resp = await client.request(
        "LOCK",
        path,
        data=lockinfo(scope) if body is None else body,
        headers={"Depth": depth, "Content-Type": "application/xml", **(headers or {})},
    )
    token = resp.headers.get("Lock-Token")
    return resp.status, token[1:-1] if token else None, await resp.read()


def if_token(token: str | None) -> dict[str, str]:
    return {"If": f"(<{token}>)"}


async def put(client: TestClient, path: str, data: bytes = b"x", **headers: str) -> int:
    return (await client.put(path, data=data, headers=headers)).status


async def lockdiscovery(client: TestClient, path: str) -> list[etree._Element]:
    body = (
        '<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:supportedlock/></D:prop>'
        "</D:propfind>"
    )
    resp = await client.request("PROPFIND", path, data=body, headers={"Depth": "0"})
    assert resp.status == 207
    root = etree.fromstring(await resp.read())
    return root.findall(f".//{D}lockdiscovery/{D}activelock")


@pytest.fixture
async def file(client: TestClient, root: Path) -> str:
    (root / "doc.txt").write_bytes(b"original")
    return "/doc.txt"


async def test_options_says_class_2(client: TestClient) -> None:
    resp = await client.options("/")
    assert resp.headers["DAV"] == "1, 2, sabredav-partialupdate"
    assert "LOCK" in resp.headers["Allow"] and "UNLOCK" in resp.headers["Allow"]


async def test_exclusive_lock_answers_token_and_lockdiscovery(
    client: TestClient, file: str
) -> None:
    status, token, body = await lock(client, file, headers={"Timeout": "Second-600"})
    assert status == 200
    assert token and token.startswith("urn:uuid:")
    active = etree.fromstring(body).find(f"{D}lockdiscovery/{D}activelock")
    assert active is not None
    assert active.find(f"{D}lockscope/{D}exclusive") is not None
    assert active.find(f"{D}locktype/{D}write") is not None
    assert active.findtext(f"{D}depth") == "0"
    assert active.findtext(f"{D}locktoken/{D}href") == token
    assert active.findtext(f"{D}lockroot/{D}href") == file
    assert active.findtext(f"{D}owner/{D}href") == "mailto:ann@example.com"
    assert re.fullmatch(r"Second-(59\d|600)", active.findtext(f"{D}timeout") or "")


async def test_owner_is_kept_byte_for_byte(client: TestClient, file: str) -> None:
    owner = "<a:owner>  <x:who   y='1'>Ann &amp; Bob <b/></x:who>\n</a:owner>"
    body = (
        '<a:lockinfo xmlns:a="DAV:" xmlns:x="urn:x"><a:lockscope><a:exclusive/></a:lockscope>'
        f"<a:locktype><a:write/></a:locktype>{owner}</a:lockinfo>"
    )
    status, _token, answer = await lock(client, file, body=body)
    assert status == 200
    kept = '<a:owner xmlns:a="DAV:" xmlns:x="urn:x">  <x:who   y=\'1\'>Ann &amp; Bob <b/></x:who>\n</a:owner>'
    assert kept.encode() in answer
    (active,) = await lockdiscovery(client, file)
    assert active.find(f"{D}owner/{{urn:x}}who").get("y") == "1"
    resp = await client.request("PROPFIND", file, headers={"Depth": "0"})
    assert kept.encode() in await resp.read()


@pytest.mark.parametrize("owner", ["<D:owner/>", "<D:owner a='x/>' />"])
async def test_an_empty_owner_is_kept_whole(client: TestClient, file: str, owner: str) -> None:
    """An empty-element tag, not the rest of the body after it (which broke every answer
    with the lock in it)."""
    status, _token, answer = await lock(client, file, body=lockinfo(owner=owner))
    assert status == 200
    assert etree.fromstring(answer).find(f".//{D}activelock/{D}owner") is not None
    (active,) = await lockdiscovery(client, file)
    assert active.find(f"{D}owner") is not None


async def test_supportedlock_lists_exclusive_and_shared(client: TestClient, file: str) -> None:
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:supportedlock/></D:prop></D:propfind>'
    resp = await client.request("PROPFIND", file, data=body, headers={"Depth": "0"})
    root = etree.fromstring(await resp.read())
    scopes = {etree.QName(e).localname for e in root.iterfind(f".//{D}lockentry/{D}lockscope/*")}
    assert scopes == {"exclusive", "shared"}


# The conflict matrix: (first lock: where, scope, depth), (second lock: where, scope, depth),
# and whether the second one is granted.
CONFLICTS = [
    (("/c/f", "exclusive", "0"), ("/c/f", "exclusive", "0"), False),
    (("/c/f", "exclusive", "0"), ("/c/f", "shared", "0"), False),
    (("/c/f", "shared", "0"), ("/c/f", "exclusive", "0"), False),
    (("/c/f", "shared", "0"), ("/c/f", "shared", "0"), True),
    (("/c/", "exclusive", "infinity"), ("/c/f", "exclusive", "0"), False),
    (("/c/", "exclusive", "infinity"), ("/c/f", "shared", "0"), False),
    (("/c/", "shared", "infinity"), ("/c/f", "shared", "0"), True),
    (("/c/", "shared", "infinity"), ("/c/f", "exclusive", "0"), False),
    (("/c/", "exclusive", "0"), ("/c/f", "exclusive", "0"), True),
    (("/c/f", "exclusive", "0"), ("/c/", "exclusive", "infinity"), False),
    (("/c/f", "shared", "0"), ("/c/", "shared", "infinity"), True),
    (("/c/f", "shared", "0"), ("/c/", "exclusive", "infinity"), False),
    (("/c/f", "exclusive", "0"), ("/c/", "exclusive", "0"), True),
    (("/c/", "exclusive", "infinity"), ("/c/", "shared", "0"), False),
]


@pytest.mark.parametrize(("first", "second", "granted"), CONFLICTS)
async def test_conflict_matrix(
    client: TestClient, root: Path, first: tuple[str, str, str], second: tuple[str, str, str],
    granted: bool,
) -> None:  # fmt: skip
    (root / "c").mkdir()
    (root / "c" / "f").write_bytes(b"f")
    status, _, _ = await lock(client, first[0], scope=first[1], depth=first[2])
    assert status == 200
    status, token, body = await lock(client, second[0], scope=second[1], depth=second[2])
    if granted:
        assert status == 200 and token
    else:
        assert status == 423
        error = etree.fromstring(body)
        assert error.tag == f"{D}error"
        assert error.findtext(f"{D}no-conflicting-lock/{D}href") == first[0]


async def test_lock_expires(client: TestClient, file: str) -> None:
    status, token, _ = await lock(client, file, headers={"Timeout": "Second-1"})
    assert status == 200
    assert await put(client, file) == 423
    await asyncio.sleep(1.2)
    assert await lockdiscovery(client, file) == []
    assert await put(client, file) == 204
    resp = await client.request("UNLOCK", file, headers={"Lock-Token": f"<{token}>"})
    assert resp.status == 409


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("Infinite", 86400), ("Second-999999999", 86400), ("Second-60", 60),
     ("Infinite, Second-4100000000", 86400), ("bogus", 3600), (None, 3600)],
)  # fmt: skip
async def test_timeout_is_capped(
    client: TestClient, file: str, timeout: str | None, expected: int
) -> None:
    headers = {"Timeout": timeout} if timeout else {}
    status, _, body = await lock(client, file, headers=headers)
    assert status == 200
    got = int((etree.fromstring(body).findtext(f".//{D}timeout") or "")[len("Second-") :])
    assert expected - 2 <= got <= expected


async def test_lock_timeout_max_is_configurable(aiohttp_client: Any, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "f").write_bytes(b"")
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "s", access_log=False, lock_timeout_max=120),
        mounts=(MountConfig(path="/", type="webdav", root=tmp_path / "r"),),
    )
    client = await aiohttp_client(create_app(config))
    _, _, body = await lock(client, "/f", headers={"Timeout": "Infinite"})
    assert etree.fromstring(body).findtext(f".//{D}timeout") in ("Second-120", "Second-119")


async def test_refresh_through_if_header(client: TestClient, file: str) -> None:
    _, token, _ = await lock(client, file, headers={"Timeout": "Second-100"})
    resp = await client.request("LOCK", file, headers={"Timeout": "Second-5000", **if_token(token)})
    assert resp.status == 200
    active = etree.fromstring(await resp.read()).find(f".//{D}activelock")
    assert active.findtext(f"{D}locktoken/{D}href") == token
    assert active.findtext(f"{D}timeout") in ("Second-5000", "Second-4999")


async def test_refresh_refusals(client: TestClient, file: str) -> None:
    await lock(client, file)
    assert (await client.request("LOCK", file)).status == 400
    resp = await client.request("LOCK", file, headers=if_token("urn:uuid:unknown"))
    assert resp.status == 412


async def test_indirect_refresh_through_a_member(client: TestClient, root: Path) -> None:
    (root / "c").mkdir()
    (root / "c" / "f").write_bytes(b"")
    _, token, _ = await lock(client, "/c/", depth="infinity")
    resp = await client.request("LOCK", "/c/f", headers=if_token(token))
    assert resp.status == 200
    root_href = etree.fromstring(await resp.read()).findtext(f".//{D}lockroot/{D}href")
    assert root_href == "/c/"


async def test_lock_survives_a_restart(tmp_path: Path, server_process: Any) -> None:
    import urllib.request

    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[server]\nstate_dir = "st"\n[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "d"\n'
    )
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_bytes(b"v1")

    def call(url: str, method: str, data: bytes | None = None, **headers: str) -> tuple[int, Any]:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers
        except urllib.error.HTTPError as err:
            return err.code, err.headers

    server = server_process("--config", str(conf))
    status, headers = call(f"{server.url}/f.txt", "LOCK", lockinfo().encode(), Depth="0")
    assert status == 200
    token = headers["Lock-Token"]
    assert server.stop() == 0
    assert (tmp_path / "st" / "locks.sqlite3").exists()
    server = server_process("--config", str(conf), port=server.port)
    assert call(f"{server.url}/f.txt", "PUT", b"v2")[0] == 423
    assert call(f"{server.url}/f.txt", "PUT", b"v2", If=f"({token})")[0] == 204
    assert call(f"{server.url}/f.txt", "UNLOCK", None, **{"Lock-Token": token})[0] == 204
    assert (tmp_path / "d" / "f.txt").read_bytes() == b"v2"


PROPPATCH_BODY = (
    '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set>'
    "</D:propertyupdate>"
)

# Each write: (method, target, extra headers, body); they act on /c/doc.txt (locked) or
# inside /c/ (a collection locked with depth infinity).
WRITES = [
    ("PUT", "/c/doc.txt", {}, b"changed"),
    ("PUT", "/c/new.txt", {}, b"new member"),
    ("DELETE", "/c/doc.txt", {}, b""),
    ("MKCOL", "/c/sub/", {}, b""),
    ("PROPPATCH", "/c/doc.txt", {}, PROPPATCH_BODY.encode()),
    ("COPY", "/free.txt", {"Destination": "/c/doc.txt"}, b""),
    ("COPY", "/free.txt", {"Destination": "/c/copy.txt"}, b""),
    ("MOVE", "/c/doc.txt", {"Destination": "/moved.txt"}, b""),
    ("MOVE", "/free.txt", {"Destination": "/c/doc.txt"}, b""),
    ("DELETE", "/c/", {}, b""),
]


def _touches_doc(method: str, target: str, headers: dict[str, str]) -> bool:
    return "doc.txt" in target + str(headers) or method == "DELETE"


# Every write against an infinity lock on /c/; those touching /c/doc.txt also against a
# depth-0 lock on that file alone (it does not protect the other members of /c/).
WRITE_CASES = [("infinity", *w) for w in WRITES] + [
    ("doc", *w) for w in WRITES if _touches_doc(w[0], w[1], w[2])
]


@pytest.mark.parametrize(("lock_depth", "method", "target", "headers", "body"), WRITE_CASES)
async def test_writes_need_the_token(
    client: TestClient, root: Path, method: str, target: str, headers: dict[str, str],
    body: bytes, lock_depth: str,
) -> None:  # fmt: skip
    """Without the token: 423 naming the lock root, nothing changed; with it: done."""
    (root / "c").mkdir()
    (root / "c" / "doc.txt").write_bytes(b"original")
    (root / "free.txt").write_bytes(b"free")
    locked = "/c/" if lock_depth == "infinity" else "/c/doc.txt"
    status, token, _ = await lock(client, locked, depth="infinity" if locked == "/c/" else "0")
    assert status == 200
    before = snapshot(root)
    resp = await client.request(method, target, data=body, headers=headers)
    assert resp.status == 423, await resp.text()
    error = etree.fromstring(await resp.read())
    assert error.findtext(f"{D}lock-token-submitted/{D}href") == locked
    assert snapshot(root) == before
    # A tagged list names the lock root, as clients do when the locked resource is not
    # the request URL (a COPY or MOVE destination, a member of a deleted collection).
    tagged = {"If": f"<{client.make_url(locked)}> (<{token}>)"}
    resp = await client.request(method, target, data=body, headers={**headers, **tagged})
    assert resp.status in (201, 204, 207), await resp.text()
    assert snapshot(root) != before


async def test_depth_0_lock_on_collection_guards_membership_only(
    client: TestClient, root: Path
) -> None:
    (root / "c").mkdir()
    (root / "c" / "old.txt").write_bytes(b"old")
    _, token, _ = await lock(client, "/c/", depth="0")
    assert await put(client, "/c/new.txt") == 423
    assert not (root / "c" / "new.txt").exists()
    assert (await client.delete("/c/old.txt")).status == 423
    assert await put(client, "/c/old.txt", b"changed") == 204
    assert await put(client, "/c/new.txt", If=f"</c/> (<{token}>)") == 201


async def test_infinity_lock_covers_members_created_later(client: TestClient, root: Path) -> None:
    (root / "c").mkdir()
    _, token, _ = await lock(client, "/c/", depth="infinity")
    assert await put(client, "/c/later.txt", **if_token(token)) == 201
    (active,) = await lockdiscovery(client, "/c/later.txt")
    assert active.findtext(f"{D}lockroot/{D}href") == "/c/"
    assert active.findtext(f"{D}locktoken/{D}href") == token
    assert await put(client, "/c/later.txt", b"again") == 423


async def test_delete_and_move_drop_locks_copy_copies_none(client: TestClient, root: Path) -> None:
    for name in ("a", "b", "c"):
        (root / f"{name}.txt").write_bytes(name.encode())
    _, ta, _ = await lock(client, "/a.txt")
    _, tb, _ = await lock(client, "/b.txt")
    await lock(client, "/c.txt")
    assert (await client.delete("/a.txt", headers=if_token(ta))).status == 204
    assert await put(client, "/a.txt") == 201
    headers = {"Destination": "/b2.txt", **if_token(tb)}
    assert (await client.request("MOVE", "/b.txt", headers=headers)).status == 201
    assert await put(client, "/b.txt") == 201
    assert await put(client, "/b2.txt") == 204
    assert (
        await client.request("COPY", "/c.txt", headers={"Destination": "/c2.txt"})
    ).status == 201
    assert await lockdiscovery(client, "/c2.txt") == []
    assert await put(client, "/c2.txt") == 204
    assert await put(client, "/c.txt") == 423
    for token in (ta, tb):
        resp = await client.request("UNLOCK", "/a.txt", headers={"Lock-Token": f"<{token}>"})
        assert resp.status == 409


async def test_unlock(client: TestClient, root: Path, file: str) -> None:
    (root / "other.txt").write_bytes(b"")
    _, token, _ = await lock(client, file)
    assert (await client.request("UNLOCK", file)).status == 400
    resp = await client.request("UNLOCK", file, headers={"Lock-Token": "<urn:uuid:nope>"})
    assert resp.status == 409
    error = etree.fromstring(await resp.read())
    assert error.find(f"{D}lock-token-matches-request-uri") is not None
    resp = await client.request("UNLOCK", "/other.txt", headers={"Lock-Token": f"<{token}>"})
    assert resp.status == 409
    resp = await client.request("UNLOCK", file, headers={"Lock-Token": f"<{token}>"})
    assert resp.status == 204
    assert await lockdiscovery(client, file) == []
    assert await put(client, file) == 204


async def test_unlock_through_a_member_of_a_locked_collection(
    client: TestClient, root: Path
) -> None:
    (root / "c").mkdir()
    (root / "c" / "f").write_bytes(b"")
    _, token, _ = await lock(client, "/c/", depth="infinity")
    resp = await client.request("UNLOCK", "/c/f", headers={"Lock-Token": f"<{token}>"})
    assert resp.status == 204
    assert await put(client, "/c/f") == 204


async def test_lock_on_unmapped_url_creates_an_empty_locked_resource(
    client: TestClient, root: Path
) -> None:
    status, token, _ = await lock(client, "/new.txt")
    assert status == 201
    assert (root / "new.txt").read_bytes() == b""
    resp = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    assert "/new.txt" in await resp.text()
    assert await put(client, "/new.txt", b"data") == 423
    assert await put(client, "/new.txt", b"data", **if_token(token)) == 204


async def test_lock_on_unmapped_url_in_a_locked_collection(client: TestClient, root: Path) -> None:
    (root / "c").mkdir()
    _, token, _ = await lock(client, "/c/", depth="0")
    assert (await lock(client, "/c/new.txt"))[0] == 423
    assert not (root / "c" / "new.txt").exists()
    status, _, _ = await lock(client, "/c/new.txt", headers=if_token(token))
    assert status == 412  # an untagged list is about /c/new.txt, which that lock does not cover
    status, _, _ = await lock(client, "/c/new.txt", headers={"If": f"</c/> (<{token}>)"})
    assert status == 201
    _, token, _ = await lock(client, "/c/", depth="infinity", headers={"If": f"</c/> (<{token}>)"})
    assert token is None  # the exclusive lock on /c/ conflicts with another one


async def test_lock_on_unmapped_url_without_parent_is_409(client: TestClient, root: Path) -> None:
    before = snapshot(root)
    status, token, _ = await lock(client, "/missing/new.txt")
    assert (status, token) == (409, None)
    assert snapshot(root) == before
    assert (await lock(client, "/x.txt"))[0] == 201


@pytest.mark.parametrize(
    ("body", "depth"),
    [("<not-xml", "0"), ('<D:propfind xmlns:D="DAV:"/>', "0"), (lockinfo(), "1"),
     (lockinfo().replace("<D:write/>", "<D:read/>"), "0"),
     (lockinfo().replace("<D:exclusive/>", "<D:other/>"), "0")],
)  # fmt: skip
async def test_bad_lock_requests_are_400(
    client: TestClient, root: Path, file: str, body: str, depth: str
) -> None:
    before = snapshot(root)
    status, token, _ = await lock(client, file, body=body, depth=depth)
    assert (status, token) == (400, None)
    assert await lockdiscovery(client, file) == []
    assert snapshot(root) == before


async def test_if_header_with_etags_and_not(client: TestClient, file: str) -> None:
    etag = (await client.get(file)).headers["ETag"]
    assert await put(client, file, b"1", If=f"([{etag}])") == 204
    assert await put(client, file, b"2", If=f"([{etag}])") == 412
    assert await put(client, file, b"2", If="(Not <DAV:no-lock>)") == 204
    assert await put(client, file, b"3", If="(<DAV:no-lock>)") == 412
    etag = (await client.get(file)).headers["ETag"]
    assert await put(client, file, b"4", If=f'(Not [{etag}]) (["nope"])') == 412
    assert await put(client, file, b"4", If=f'(Not ["nope"] [{etag}])') == 204
    assert await put(client, file, b"5", If="(<unterminated") == 400
    assert (await client.get(file)).headers["ETag"] != etag


async def test_if_header_tagged_lists(client: TestClient, root: Path, file: str) -> None:
    (root / "other.txt").write_bytes(b"o")
    _, token, _ = await lock(client, file)
    url = str(client.make_url(file))
    other = str(client.make_url("/other.txt"))
    assert await put(client, file, b"1", If=f"<{url}> (<{token}>)") == 204
    assert await put(client, file, b"2", If=f"<{file}> (<{token}>)") == 204
    # The token is a lock on doc.txt, not on other.txt: the list does not hold.
    assert await put(client, file, b"3", If=f"<{other}> (<{token}>)") == 412
    # The list holds for other.txt, and the token is submitted for doc.txt as well.
    other_etag = (await client.get("/other.txt")).headers["ETag"]
    header = f"<{other}> ([{other_etag}]) <{url}> (<{token}>)"
    assert await put(client, file, b"4", If=header) == 204
    assert (root / "doc.txt").read_bytes() == b"4"


async def test_valid_if_without_the_lock_token_is_423(
    client: TestClient, root: Path, file: str
) -> None:
    _, token, _ = await lock(client, file)
    before = snapshot(root)
    assert await put(client, file, b"x", If=f"(<{token}x>) (Not <DAV:no-lock>)") == 423
    etag = (await client.get(file)).headers["ETag"]
    assert await put(client, file, b"x", If=f"([{etag}])") == 423
    assert snapshot(root) == before
    assert await put(client, file, b"x", If=f"(<{token}> [{etag}])") == 204


async def test_any_shared_lock_holder_may_write(client: TestClient, root: Path) -> None:
    (root / "c").mkdir()
    (root / "c" / "f").write_bytes(b"")
    _, t1, _ = await lock(client, "/c/f", scope="shared")
    _, t2, _ = await lock(client, "/c/f", scope="shared")
    _, t3, _ = await lock(client, "/c/", scope="shared", depth="infinity")
    assert len(await lockdiscovery(client, "/c/f")) == 3
    assert await put(client, "/c/f", b"x") == 423
    for token in (t1, t2, t3):
        assert await put(client, "/c/f", b"x", **if_token(token)) == 204
    # A new member of /c/ is protected by the collection's lock only.
    assert await put(client, "/c/g", b"x", If=f"</c/f> (<{t1}>)") == 423
    assert await put(client, "/c/g", b"x", **if_token(t3)) == 201
