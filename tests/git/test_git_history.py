"""Reading history over plain HTTP (?history, ?version=) and the path-times index that
getlastmodified and creationdate come from."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from gitrepo import commits, git
from lxml import etree

D = "{DAV:}"


async def history(client: TestClient, path: str) -> list[dict[str, Any]]:
    resp = await client.get(path, params={"history": "json"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["versions"]


async def times(client: TestClient, path: str) -> tuple[float, str]:
    """getlastmodified (as a timestamp) and creationdate of ``path``."""
    resp = await client.request("PROPFIND", path, headers={"Depth": "0"})
    root = etree.fromstring(await resp.read())
    modified = root.findtext(f".//{D}getlastmodified")
    created = root.findtext(f".//{D}creationdate")
    assert modified and created
    return parsedate_to_datetime(modified).timestamp(), created


# -- ?history and ?version= ----------------------------------------------------------------


async def test_every_version_of_a_file_is_listed_and_readable(
    client: TestClient, repo: Path
) -> None:
    for text in (b"one", b"two", b"three"):
        await client.put("/doc.txt", data=text)
    await client.put("/other.txt", data=b"unrelated")
    found = await history(client, "/doc.txt")
    assert [v["message"] for v in found] == ["PUT /doc.txt"] * 3
    assert [v["version"] for v in found] == commits(repo)[1:]
    assert [v["size"] for v in found] == [5, 3, 3]
    assert found[0]["author"] == "davserver <davserver@localhost>"
    for v, text in zip(found, (b"three", b"two", b"one"), strict=True):
        resp = await client.get(v["href"])
        assert resp.status == 200
        assert await resp.read() == text
        assert resp.headers["ETag"] == v["etag"]
        assert resp.headers["Content-Type"].startswith("text/plain")
    oldest = found[-1]["href"]
    ranged = await client.get(oldest, headers={"Range": "bytes=1-2"})
    assert (ranged.status, await ranged.read()) == (206, b"ne")
    again = await client.get(oldest, headers={"If-None-Match": found[-1]["etag"]})
    assert again.status == 304
    assert (await client.head(oldest)).headers["Content-Length"] == "3"


async def test_a_version_is_read_by_a_server_that_started_before_the_repository(
    make_git_client: Any, repo: Path
) -> None:
    """A second process serving the repository (a worker) opened it before the first
    write created it: its first request reads a version (it answered 404 before)."""
    writer = await make_git_client()
    reader = await make_git_client()
    await writer.put("/doc.txt", data=b"one")
    (version,) = commits(repo)
    resp = await reader.get("/doc.txt", params={"version": version})
    assert (resp.status, await resp.read()) == (200, b"one")


async def test_history_as_html_links_every_version(client: TestClient, repo: Path) -> None:
    await client.put("/a&b.txt", data=b"1")
    await client.put("/a&b.txt", data=b"2")
    resp = await client.get("/a%26b.txt?history")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    page = await resp.text()
    for commit in commits(repo):
        assert f'href="/a%26b.txt?version={commit}"' in page
    assert "PUT /a&amp;b.txt" in page


async def test_a_deleted_file_keeps_its_history(client: TestClient) -> None:
    await client.put("/gone.txt", data=b"was here")
    await client.delete("/gone.txt")
    assert (await client.get("/gone.txt")).status == 404
    (version,) = await history(client, "/gone.txt")
    assert await (await client.get(version["href"])).read() == b"was here"


async def test_collections_list_the_commits_that_changed_them(client: TestClient) -> None:
    await client.request("MKCOL", "/c")
    await client.put("/c/x", data=b"x")
    await client.put("/elsewhere", data=b"y")
    found = await history(client, "/c/")
    assert [v["message"] for v in found] == ["PUT /c/x", "MKCOL /c"]
    assert all(v["collection"] and v["href"] is None for v in found)
    first = found[-1]["version"]
    assert (await client.get(f"/c/?version={first}")).status == 404


async def test_bad_history_requests(client: TestClient, repo: Path) -> None:
    await client.put("/f.txt", data=b"f")
    (head,) = commits(repo)
    assert (await client.get("/f.txt?version=abc")).status == 400
    assert (await client.get("/f.txt?version=" + "0" * 40)).status == 404
    assert (await client.get(f"/nothing?version={head}")).status == 404
    assert (await client.get("/nothing?history")).status == 404
    tree = git(repo, "rev-parse", "main^{tree}").strip()
    assert (await client.get(f"/f.txt?version={tree}")).status == 404


async def test_other_query_strings_still_get_the_file(client: TestClient) -> None:
    await client.put("/q.txt", data=b"current")
    assert await (await client.get("/q.txt?v=123")).read() == b"current"


async def test_the_filesystem_backend_has_no_history(client_fs: TestClient) -> None:
    await client_fs.put("/f.txt", data=b"f")
    resp = await client_fs.get("/f.txt?history")
    assert resp.status == 404
    assert "no history" in await resp.text()
    assert (await client_fs.get("/f.txt?version=" + "a" * 40)).status == 404
    assert await (await client_fs.get("/f.txt")).read() == b"f"


@pytest.fixture
async def client_fs(make_client: Any) -> TestClient:
    """A client of a filesystem-backed server."""
    return await make_client()


# -- times -----------------------------------------------------------------------------------


def push_at(clone: Path, name: str, data: bytes, date: str) -> None:
    """Commit and push a file with a chosen commit date."""
    (clone / name).write_bytes(data)
    git(clone, "add", name)
    env = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    git(clone, "commit", "-q", "-m", f"add {name}", env=env)
    git(clone, "push", "-q", "origin", "HEAD:main")


async def test_times_follow_pushed_commits_and_survive_a_restart(
    make_git_client: Any, tmp_path: Path, repo: Path
) -> None:
    client = await make_git_client()
    await client.put("/seed", data=b"s")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    push_at(clone, "old.txt", b"1", "2001-02-03T04:05:06Z")
    push_at(clone, "old.txt", b"2", "2002-02-03T04:05:06Z")
    modified, created = await times(client, "/old.txt")
    assert modified == parsedate_to_datetime("Sun, 03 Feb 2002 04:05:06 GMT").timestamp()
    assert created == "2001-02-03T04:05:06Z"
    await client.close()
    index_files = list((tmp_path / "state" / "git").glob("*.json"))
    assert len(index_files) == 1
    push_at(clone, "later.txt", b"3", "2003-02-03T04:05:06Z")
    restarted = await make_git_client()
    assert (await times(restarted, "/old.txt"))[1] == "2001-02-03T04:05:06Z"
    assert (await times(restarted, "/later.txt"))[1] == "2003-02-03T04:05:06Z"


async def test_a_force_push_rebuilds_the_times(
    client: TestClient, repo: Path, tmp_path: Path
) -> None:
    await client.put("/a.txt", data=b"a")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "--orphan", "fresh")
    git(clone, "rm", "-q", "-r", "--cached", ".")
    (clone / "a.txt").unlink()
    (clone / "b.txt").write_bytes(b"b")
    git(clone, "add", "b.txt")
    env = {"GIT_COMMITTER_DATE": "2005-01-01T00:00:00Z"}
    git(clone, "commit", "-q", "-m", "rewrite", env=env)
    git(clone, "push", "-q", "--force", "origin", "fresh:main")
    assert (await client.get("/a.txt")).status == 404
    assert (await times(client, "/b.txt"))[1] == "2005-01-01T00:00:00Z"
    assert (await client.put("/c.txt", data=b"c")).status == 201
    assert len(commits(repo)) == 2


async def test_creation_stays_and_modification_moves(client: TestClient, repo: Path) -> None:
    assert (await client.put("/t.txt", data=b"1")).status == 201
    modified1, created1 = await times(client, "/t.txt")
    assert modified1 == int(git(repo, "log", "-1", "--format=%ct").strip())
    await client.put("/t.txt", data=b"2")
    modified2, created2 = await times(client, "/t.txt")
    assert created2 == created1
    assert modified2 == int(git(repo, "log", "-1", "--format=%ct").strip())
