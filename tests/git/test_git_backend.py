"""The git backend: one commit per successful write, none for refusals or no-ops, what the
commits hold, empty collections, dead properties, reserved names, ETags and times."""

from __future__ import annotations

import os
import subprocess
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from gitrepo import IDENTITY, commits, files, git, git_app, messages
from lxml import etree

from davserver.dav.identity import USER

D = "{DAV:}"
PROPPATCH = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
    "<Z:colour>{value}</Z:colour></D:prop></D:set></D:propertyupdate>"
)


async def propfind(
    client: TestClient, path: str, depth: str = "1", body: str | None = None
) -> dict[str, etree._Element]:
    """href → <D:response> of a PROPFIND."""
    resp = await client.request("PROPFIND", path, headers={"Depth": depth}, data=body)
    assert resp.status == 207, await resp.text()
    root = etree.fromstring(await resp.read())
    return {r.findtext(f"{D}href"): r for r in root.iter(f"{D}response")}


def hash_object(data: bytes) -> str:
    """The git blob id of ``data``."""
    done = subprocess.run(
        ["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


# -- one commit per write --------------------------------------------------------------


async def test_each_method_makes_exactly_one_commit_named_after_it(
    client: TestClient, repo: Path
) -> None:
    steps: list[tuple[str, str, dict[str, str], bytes | str | None, int, str]] = [
        ("MKCOL", "/docs", {}, None, 201, "MKCOL /docs"),
        ("PUT", "/docs/a.txt", {}, b"alpha", 201, "PUT /docs/a.txt"),
        ("PUT", "/docs/a.txt", {}, b"alpha 2", 204, "PUT /docs/a.txt"),
        ("PROPPATCH", "/docs/a.txt", {}, PROPPATCH.format(value="red"), 207,
         "PROPPATCH /docs/a.txt"),
        ("COPY", "/docs/a.txt", {"Destination": "/docs/b.txt"}, None, 201,
         "COPY /docs/a.txt -> /docs/b.txt"),
        ("MOVE", "/docs", {"Destination": "/papers"}, None, 201, "MOVE /docs -> /papers"),
        ("DELETE", "/papers/a.txt", {}, None, 204, "DELETE /papers/a.txt"),
        ("LOCK", "/locked.txt", {"Content-Type": "application/xml"},
         '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
         "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>", 201,
         "LOCK /locked.txt (new empty resource)"),
    ]  # fmt: skip
    for count, (method, path, headers, body, status, message) in enumerate(steps, 1):
        resp = await client.request(method, path, headers=headers, data=body)
        assert resp.status == status, (method, path, await resp.text())
        assert len(commits(repo)) == count, method
        assert messages(repo)[-1] == message
    log = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
    assert log.strip() == f"{IDENTITY}|{IDENTITY}"
    assert files(repo) == {
        "papers/b.txt": b"alpha 2",
        "papers/.davkeep": b"",
        "papers/.davprops/m.b.txt": files(repo)["papers/.davprops/m.b.txt"],
        "locked.txt": b"",
    }
    assert b"<Z:colour" in files(repo)["papers/.davprops/m.b.txt"]


async def test_put_of_identical_bytes_makes_no_commit(client: TestClient, repo: Path) -> None:
    first = await client.put("/same.bin", data=b"unchanged")
    again = await client.put("/same.bin", data=b"unchanged")
    assert (first.status, again.status) == (201, 204)
    assert first.headers["ETag"] == again.headers["ETag"]
    assert len(commits(repo)) == 1


async def test_proppatch_to_the_same_values_makes_no_commit(client: TestClient, repo: Path) -> None:
    await client.put("/p.txt", data=b"x")
    for _ in range(2):
        resp = await client.request("PROPPATCH", "/p.txt", data=PROPPATCH.format(value="blue"))
        assert resp.status == 207
    assert len(commits(repo)) == 2


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("PUT", "/missing/a.txt", {}, 409),
        ("PUT", "/dir", {}, 405),
        ("PUT", "/dir/file.txt", {"If-Match": '"nope"'}, 412),
        ("PUT", "/dir/file.txt", {"If-None-Match": "*"}, 412),
        ("MKCOL", "/dir", {}, 405),
        ("MKCOL", "/missing/sub", {}, 409),
        ("DELETE", "/nothing", {}, 404),
        ("DELETE", "/dir/file.txt", {"If-Match": '"nope"'}, 412),
        ("COPY", "/dir/file.txt", {"Destination": "/dir/file.txt"}, 403),
        ("COPY", "/dir/file.txt", {"Destination": "/dir/other.txt", "Overwrite": "F"}, 412),
        ("COPY", "/dir/file.txt", {"Destination": "/missing/x.txt"}, 409),
        ("MOVE", "/dir", {"Destination": "/dir/inside"}, 409),
        ("MOVE", "/nothing", {"Destination": "/else"}, 404),
        ("PROPPATCH", "/nothing", {}, 404),
        ("PUT", "/.davprops/m.x", {}, 403),
        ("PUT", "/dir/.davkeep", {}, 403),
        ("MKCOL", "/.git", {}, 403),
        ("PUT", "/.GIT/config", {}, 403),
        ("PUT", "/dir/.Git", {}, 403),
        ("DELETE", "/dir/.davkeep", {}, 403),
        ("COPY", "/dir/file.txt", {"Destination": "/.davprops"}, 403),
    ],
)
async def test_refused_requests_make_no_commit(
    client: TestClient, repo: Path, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    await client.request("MKCOL", "/dir")
    await client.put("/dir/file.txt", data=b"content")
    await client.put("/dir/other.txt", data=b"other")
    before = commits(repo)
    body = {"PROPPATCH": PROPPATCH.format(value="x"), "PUT": b"new bytes"}.get(method)
    resp = await client.request(method, path, headers=headers, data=body)
    assert resp.status == status, await resp.text()
    assert commits(repo) == before


async def test_proppatch_of_a_protected_property_makes_no_commit(
    client: TestClient, repo: Path
) -> None:
    await client.put("/a.txt", data=b"x")
    body = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag>'
        "</D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", "/a.txt", data=body)
    assert resp.status == 207
    assert b"403" in await resp.read()
    assert len(commits(repo)) == 1


async def test_an_authenticated_user_is_author_and_committer(
    aiohttp_client: Any, tmp_path: Path, repo: Path
) -> None:
    app = git_app(repo, tmp_path, author="Store Keeper <keeper@example.org>")

    @web.middleware
    async def login(request: Any, handler: Any) -> Any:
        if "X-Test-User" in request.headers:
            request[USER] = request.headers["X-Test-User"]
        return await handler(request)

    app.middlewares.append(login)
    client = await aiohttp_client(app)
    await client.put("/anon.txt", data=b"a")
    await client.put("/ann.txt", data=b"b", headers={"X-Test-User": "ann"})
    log = git(repo, "log", "--reverse", "--format=%an <%ae>|%cn <%ce>").splitlines()
    assert log == [
        "Store Keeper <keeper@example.org>|Store Keeper <keeper@example.org>",
        "ann <ann@example.org>|ann <ann@example.org>",
    ]


# -- what is stored -------------------------------------------------------------------------


async def test_the_repository_is_created_by_the_first_write(client: TestClient, repo: Path) -> None:
    assert not repo.exists()
    resp = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    assert resp.status == 207
    assert (await client.get("/")).status == 200
    assert not repo.exists()
    assert (await client.put("/first.txt", data=b"1")).status == 201
    assert (repo / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert git(repo, "rev-parse", "--is-bare-repository").strip() == "true"
    assert files(repo) == {"first.txt": b"1"}


async def test_etag_is_the_quoted_blob_id_everywhere(client: TestClient) -> None:
    data = os.urandom(3000)
    resp = await client.put("/e.bin", data=data)
    etag = f'"{hash_object(data)}"'
    assert resp.headers["ETag"] == etag
    assert (await client.get("/e.bin")).headers["ETag"] == etag
    assert (await client.head("/e.bin")).headers["ETag"] == etag
    found = await propfind(client, "/e.bin", "0")
    assert found["/e.bin"].findtext(f".//{D}getetag") == etag
    assert (await client.get("/e.bin", headers={"If-None-Match": etag})).status == 304


async def test_collection_etag_changes_with_its_contents(client: TestClient) -> None:
    await client.request("MKCOL", "/c")
    before = (await propfind(client, "/c/", "0"))["/c/"].findtext(f".//{D}getetag")
    await client.put("/c/x", data=b"x")
    after = (await propfind(client, "/c/", "0"))["/c/"].findtext(f".//{D}getetag")
    assert before and after and before != after


async def test_empty_collections_exist_and_placeholders_never_show(
    client: TestClient, repo: Path
) -> None:
    assert (await client.request("MKCOL", "/empty")).status == 201
    assert (await client.request("MKCOL", "/empty/inner")).status == 201
    assert set(await propfind(client, "/")) == {"/", "/empty/"}
    assert set(await propfind(client, "/empty/")) == {"/empty/", "/empty/inner/"}
    assert set(await propfind(client, "/empty/inner/")) == {"/empty/inner/"}
    listing = await (await client.get("/empty/")).text()
    assert "inner/" in listing and ".davkeep" not in listing
    assert set(files(repo)) == {"empty/.davkeep", "empty/inner/.davkeep"}


async def test_a_collection_emptied_by_delete_or_move_stays(client: TestClient, repo: Path) -> None:
    await client.request("MKCOL", "/d")
    await client.put("/d/only.txt", data=b"x")
    git_files = files(repo)
    assert "d/.davkeep" in git_files  # the placeholder stays once made
    await client.request("MKCOL", "/e")
    await client.put("/e/one", data=b"1")
    await client.request("MOVE", "/e/one", headers={"Destination": "/one"})
    assert (await client.delete("/d/only.txt")).status == 204
    assert set(await propfind(client, "/")) == {"/", "/d/", "/e/", "/one"}
    assert set(await propfind(client, "/e/")) == {"/e/"}


async def test_dead_properties_are_committed_beside_their_resources(
    client: TestClient, repo: Path
) -> None:
    await client.request("MKCOL", "/col")
    await client.put("/col/f.txt", data=b"f")
    for path in ("/col/f.txt", "/col", "/"):
        resp = await client.request("PROPPATCH", path, data=PROPPATCH.format(value=path))
        assert resp.status == 207
    stored = files(repo)
    assert b"/col/f.txt</Z:colour>" in stored["col/.davprops/m.f.txt"]
    assert b">/col</Z:colour>" in stored["col/.davprops/self"]
    assert b">/</Z:colour>" in stored[".davprops/self"]
    assert set(await propfind(client, "/")) == {"/", "/col/"}
    prop = '<D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:z"/></D:prop></D:propfind>'
    found = await propfind(client, "/col/", "1", prop)
    assert found["/col/f.txt"].findtext(".//{urn:z}colour") == "/col/f.txt"
    assert found["/col/"].findtext(".//{urn:z}colour") == "/col"
    # Properties travel with MOVE and COPY and go with DELETE.
    await client.request("MOVE", "/col/f.txt", headers={"Destination": "/col/g.txt"})
    await client.request("COPY", "/col/g.txt", headers={"Destination": "/h.txt"})
    stored = files(repo)
    assert "col/.davprops/m.f.txt" not in stored
    assert b"/col/f.txt</Z:colour>" in stored["col/.davprops/m.g.txt"]
    assert b"/col/f.txt</Z:colour>" in stored[".davprops/m.h.txt"]
    await client.delete("/col/g.txt")
    assert "col/.davprops/m.g.txt" not in files(repo)
    found = await propfind(client, "/h.txt", "0", prop)
    assert found["/h.txt"].findtext(".//{urn:z}colour") == "/col/f.txt"


async def test_a_shallow_copy_of_a_collection_keeps_its_own_properties(
    client: TestClient, repo: Path
) -> None:
    await client.request("MKCOL", "/src")
    await client.put("/src/member.txt", data=b"m")
    await client.request("PROPPATCH", "/src", data=PROPPATCH.format(value="folder"))
    resp = await client.request("COPY", "/src", headers={"Destination": "/dst", "Depth": "0"})
    assert resp.status == 201
    stored = files(repo)
    assert stored["dst/.davprops/self"] == stored["src/.davprops/self"]
    assert "dst/member.txt" not in stored
    assert set(await propfind(client, "/dst/")) == {"/dst/"}


async def test_removing_the_last_property_removes_the_property_folder(
    client: TestClient, repo: Path
) -> None:
    await client.put("/a", data=b"a")
    await client.request("PROPPATCH", "/a", data=PROPPATCH.format(value="v"))
    remove = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:remove><D:prop><Z:colour/>'
        "</D:prop></D:remove></D:propertyupdate>"
    )
    assert (await client.request("PROPPATCH", "/a", data=remove)).status == 207
    assert set(files(repo)) == {"a"}


async def test_times_come_from_the_commits(client: TestClient, repo: Path) -> None:
    await client.put("/t.txt", data=b"one")
    git_time = int(git(repo, "log", "-1", "--format=%ct").strip())
    found = await propfind(client, "/t.txt", "0")
    modified = found["/t.txt"].findtext(f".//{D}getlastmodified")
    assert modified is not None
    assert parsedate_to_datetime(modified).timestamp() == git_time
    resp = await client.get("/t.txt")
    assert parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp() == git_time


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
async def test_a_file_copied_or_moved_onto_a_file_replaces_it_and_its_properties(
    client: TestClient, repo: Path, method: str
) -> None:
    """File onto file is one commit with no delete step in between (the replacement is
    atomic), and the destination's dead properties go with its old bytes."""
    for name, data in (("a.txt", b"a"), ("b.txt", b"b")):
        assert (await client.put(f"/{name}", data=data)).status == 201
    await client.request("PROPPATCH", "/b.txt", data=PROPPATCH.format(value="stale"))
    count = len(commits(repo))
    headers = {"Destination": str(client.make_url("/b.txt"))}
    assert (await client.request(method, "/a.txt", headers=headers)).status == 204
    assert len(commits(repo)) == count + 1
    assert await (await client.get("/b.txt")).read() == b"a"
    props = await propfind(
        client, "/b.txt", "0", "<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>"
    )
    assert b"stale" not in etree.tostring(props["/b.txt"])
