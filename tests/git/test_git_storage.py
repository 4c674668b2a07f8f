"""The git backend's storage: big blobs streamed in and out, packed objects, commits that
touch only the trees on the changed path, existing (non-bare) repositories, branches,
and the configuration keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from davserver.backends.git import identity_of
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo
from gitrepo import assert_linear_and_clean, commits, files, git, messages

from davserver.config import ConfigError, load


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    """``data`` as an async generator, so the client sends it chunked."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def loose_objects(repo: Path) -> set[str]:
    """The ids of the loose objects in ``repo``."""
    objects = repo / "objects"
    return {d + f for d in os.listdir(objects) if len(d) == 2 for f in os.listdir(objects / d)}


# -- streaming ---------------------------------------------------------------------------------


async def read_ranges(client: TestClient, data: bytes) -> None:
    """Whole, single-range and multi-range GETs of /big.bin give the right bytes."""
    resp = await client.get("/big.bin")
    assert resp.headers["Content-Length"] == str(len(data))
    assert await resp.read() == data
    resp = await client.get("/big.bin", headers={"Range": "bytes=5000000-5000099"})
    assert (resp.status, await resp.read()) == (206, data[5000000:5000100])
    resp = await client.get("/big.bin", headers={"Range": "bytes=7000000-7000009,10-19"})
    body = await resp.read()
    assert resp.status == 206
    assert data[7000000:7000010] in body and data[10:20] in body
    assert (await client.head("/big.bin")).headers["Content-Length"] == str(len(data))


@pytest.mark.parametrize("kind", ["sized", "chunked"])
async def test_big_blobs_stream_in_and_out(client: TestClient, repo: Path, kind: str) -> None:
    data = os.urandom(8 << 20)
    body: Any = chunked(data) if kind == "chunked" else data
    assert (await client.put("/big.bin", data=body)).status == 201
    await read_ranges(client, data)
    assert not [n for n in os.listdir(repo / "objects") if n.startswith("tmp_obj_")]
    assert files(repo)["big.bin"] == data


async def test_a_short_body_leaves_nothing_behind(client: TestClient, repo: Path) -> None:
    await client.put("/keep.txt", data=b"k")
    before = loose_objects(repo)
    resp = await client.put(
        "/short.bin",
        data=chunked(b"x" * 1000),
        headers={"X-Expected-Entity-Length": "5000"},
    )
    assert resp.status == 400
    assert loose_objects(repo) == before
    assert not [n for n in os.listdir(repo / "objects") if n.startswith("tmp_obj_")]
    assert len(commits(repo)) == 1


async def test_packed_and_deltified_objects_are_read(
    make_git_client: Any, repo: Path, client: TestClient
) -> None:
    data = os.urandom(8 << 20)
    await client.put("/big.bin", data=data)
    similar = bytearray(os.urandom(200_000))
    await client.put("/v1.bin", data=bytes(similar))
    similar[1000:1010] = b"0123456789"
    await client.put("/v2.bin", data=bytes(similar))
    git(repo, "gc", "-q", "--aggressive", "--prune=now")
    assert not loose_objects(repo)
    assert "delta" in git(
        repo, "verify-pack", "-v", *map(str, (repo / "objects/pack").glob("*.idx"))
    )
    fresh = await make_git_client()
    await read_ranges(fresh, data)
    assert await (await fresh.get("/v1.bin")).read() != bytes(similar)
    assert await (await fresh.get("/v2.bin")).read() == bytes(similar)
    resp = await fresh.request("PROPFIND", "/", headers={"Depth": "1"})
    text = await resp.text()
    assert "<D:getcontentlength>200000</D:getcontentlength>" in text
    assert (await fresh.put("/after-gc.txt", data=b"still writable")).status == 201
    assert_linear_and_clean(repo)


async def test_compressible_blobs_are_compressed_and_others_stored(
    client: TestClient, repo: Path
) -> None:
    text = b"the same line again and again\n" * 40_000
    noise = os.urandom(len(text))
    await client.put("/text.txt", data=text)
    await client.put("/noise.bin", data=chunked(noise))
    sizes = {}
    for name, data in (("text.txt", text), ("noise.bin", noise)):
        blob = git(repo, "rev-parse", f"main:{name}").strip()
        sizes[name] = (repo / "objects" / blob[:2] / blob[2:]).stat().st_size / len(data)
    assert sizes["text.txt"] < 0.05
    assert 1 < sizes["noise.bin"] < 1.01
    assert files(repo) == {"text.txt": text, "noise.bin": noise}


# -- cost of a commit ------------------------------------------------------------------------


def seed(repo: Path, folders: int, per_folder: int) -> None:
    """One commit holding ``folders`` x ``per_folder`` small files, made with dulwich."""
    r = Repo.init_bare(str(repo), mkdir=True, default_branch=b"main")
    store = r.object_store
    root = Tree()
    for f in range(folders):
        tree = Tree()
        for i in range(per_folder):
            blob = Blob.from_string(b"file %d/%d\n" % (f, i))
            store.add_object(blob)
            tree.add(b"f%d.txt" % i, 0o100644, blob.id)
        store.add_object(tree)
        root.add(b"dir%03d" % f, 0o040000, tree.id)
    store.add_object(root)
    commit = Commit()
    commit.tree = root.id
    commit.author = commit.committer = b"seed <seed@example.com>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"seed\n"
    store.add_object(commit)
    r.refs[b"refs/heads/main"] = commit.id
    r.close()


async def test_a_commit_writes_only_the_trees_on_the_changed_path(
    make_git_client: Any, repo: Path
) -> None:
    seed(repo, folders=50, per_folder=40)
    client = await make_git_client()
    before = loose_objects(repo)
    assert (await client.put("/dir007/new.txt", data=b"new")).status == 201
    new = loose_objects(repo) - before
    # the blob, dir007's tree, the root tree and the commit
    assert len(new) == 4
    kinds = sorted(git(repo, "cat-file", "-t", sha).strip() for sha in new)
    assert kinds == ["blob", "commit", "tree", "tree"]
    assert messages(repo) == ["seed", "PUT /dir007/new.txt"]


# -- existing repositories and branches ------------------------------------------------------


async def test_a_non_bare_repository_is_served(make_git_client: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "readme.md").write_text("# hello\n")
    git(work, "add", "readme.md")
    git(work, "commit", "-q", "-m", "start")
    client = await make_git_client(work)
    assert await (await client.get("/readme.md")).read() == b"# hello\n"
    assert (await client.put("/added.txt", data=b"added")).status == 201
    assert git(work, "log", "--format=%s").split("\n")[:2] == ["PUT /added.txt", "start"]
    assert git(work, "show", "main:added.txt") == "added"
    assert_linear_and_clean(work)


async def test_a_sha256_repository_is_served(make_git_client: Any, tmp_path: Path) -> None:
    repo = tmp_path / "sha256.git"
    git(tmp_path, "init", "-q", "--bare", "--object-format=sha256", "-b", "main", str(repo))
    client = await make_git_client(repo)
    assert (await client.request("MKCOL", "/d")).status == 201
    resp = await client.put("/d/f.txt", data=b"sha-256")
    blob = git(repo, "rev-parse", "main:d/f.txt").strip()
    assert len(blob) == 64 and resp.headers["ETag"] == f'"{blob}"'
    assert await (await client.get("/d/f.txt")).read() == b"sha-256"
    (version,) = (await (await client.get("/d/f.txt?history=json")).json())["versions"]
    assert await (await client.get(version["href"])).read() == b"sha-256"
    assert_linear_and_clean(repo)


async def test_another_branch_is_served_and_written(make_git_client: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "on-main.txt").write_text("main\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "main")
    client = await make_git_client(work, branch="site/pages")
    assert (await client.get("/on-main.txt")).status == 404
    assert (await client.put("/page.html", data=b"<p>")).status == 201
    assert files(work, "site/pages") == {"page.html": b"<p>"}
    assert files(work, "main") == {"on-main.txt": b"main\n"}


async def test_symlinks_and_submodules_in_the_tree_are_left_out(
    make_git_client: Any, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "real.txt").write_text("real")
    os.symlink("real.txt", work / "link.txt")
    git(work, "add", ".")
    sub = "0123456789abcdef0123456789abcdef01234567"
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{sub},module")
    git(work, "commit", "-q", "-m", "odd entries")
    client = await make_git_client(work)
    resp = await client.request("PROPFIND", "/", headers={"Depth": "1"})
    text = await resp.text()
    assert "real.txt" in text and "link.txt" not in text and "module" not in text
    assert (await client.get("/link.txt")).status == 404
    assert (await client.put("/other.txt", data=b"o")).status == 201
    assert git(work, "ls-tree", "main", "module").startswith("160000 commit")


async def test_a_folder_that_is_not_a_repository_stops_the_start(
    make_git_client: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "not-a-repo"
    folder.mkdir()
    (folder / "stray.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a git repository"):
        await make_git_client(folder)


def test_identity_of_users() -> None:
    default = "Store <store@files.example>"
    assert identity_of("anonymous", default) == b"Store <store@files.example>"
    assert identity_of("ann", default) == b"ann <ann@files.example>"
    assert identity_of("Ann Lee <ann@lee.example>", default) == b"Ann Lee <ann@lee.example>"
    assert identity_of("b<a>d\nname", default) == b"badname <badname@files.example>"


# -- configuration ---------------------------------------------------------------------------


def test_git_mount_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "git"\nrepo = "repo.git"\n'
        'branch = "docs"\nauthor = "Docs Bot <bot@example.org>"\n'
    )
    (mount,) = load(conf).mounts
    assert (mount.backend, mount.repo, mount.branch, mount.author, mount.root) == (
        "git",
        tmp_path / "repo.git",
        "docs",
        "Docs Bot <bot@example.org>",
        None,
    )
    conf.write_text('[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "git"\nrepo = "r"\n')
    (mount,) = load(conf).mounts
    assert (mount.branch, mount.author) == ("main", "davserver <davserver@localhost>")


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('backend = "git"', "mounts[0].repo", "missing"),
        ('backend = "git"\nrepo = "r"\nroot = "d"', "mounts[0].root", "does not use it"),
        ('backend = "git"\nrepo = "r"\nbranch = "a..b"', "mounts[0].branch", "not a valid"),
        ('backend = "git"\nrepo = "r"\nbranch = ""', "mounts[0].branch", "not a valid"),
        ('backend = "git"\nrepo = "r"\nauthor = "nobody"', "mounts[0].author", "Name <email"),
        ('root = "d"\nrepo = "r"', "mounts[0].repo", "only the git backend"),
        ('backend = "git"\nrepo = 3', "mounts[0].repo", "must be a path"),
    ],
)
def test_bad_git_mount_configuration(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(f'[[mounts]]\npath = "/"\ntype = "webdav"\n{extra}\n')
    with pytest.raises(ConfigError) as err:
        load(conf)
    assert str(err.value).startswith(f"{conf}: {key}: ")
    assert problem in str(err.value)
