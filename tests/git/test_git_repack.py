"""Packs are combined geometrically, so their number stays small however many packing
runs there are; no object is lost, git finds the repository sound, and readers that see
packs replaced under them never fail."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from davserver.backends import git_packs
from davserver.backends.git_gc import pack_repository
from davserver.backends.git_objects import ObjectReader
from davserver.backends.git_repack import geometric_split, pack_names
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from gitrepo import git


def commit_files(repo: Repo, round_: int, files: int = 20) -> list[tuple[ObjectID, bytes]]:
    """One commit on main with ``files`` new blobs (loose objects); the blobs' ids and
    contents."""
    store = repo.object_store
    parent = repo.refs.as_dict().get(Ref(b"refs/heads/main"))
    tree = Tree()
    if parent is not None:
        old = store[store[parent].tree]
        for item in old.items():
            tree.add(item.path, item.mode, item.sha)
    blobs = []
    for i in range(files):
        # Versions of the same few texts: git's own packs deltify them.
        blob = Blob.from_string(
            b"line of a file that changes a little\n" * 40 + b"%d %d\n" % (round_, i)
        )
        store.add_object(blob)
        tree.add(b"f%d.txt" % i, 0o100644, blob.id)
        blobs.append((blob.id, blob.data))
    store.add_object(tree)
    commit = Commit()
    commit.tree = tree.id
    commit.parents = [parent] if parent is not None else []
    commit.author = commit.committer = b"t <t@example.com>"
    commit.author_time = commit.commit_time = 1_700_000_000 + round_
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"round %d\n" % round_
    store.add_object(commit)
    repo.refs[b"refs/heads/main"] = commit.id
    return blobs


def object_ids(path: Path) -> set[str]:
    return {line.split()[0] for line in git(path, "rev-list", "--objects", "--all").splitlines()}


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "r.git"
    git(tmp_path, "init", "--bare", "-q", "-b", "main", str(path))
    return path


@pytest.mark.parametrize(
    ("counts", "split"),
    [
        ([], 0),
        ([5], 0),
        ([1, 2, 4, 8, 16], 0),  # a progression already: nothing to do
        ([7, 7], 2),
        ([7, 7, 14], 3),  # two small ones make 14: not half of 14 apart, so it joins them
        ([7, 7, 100], 2),  # the big one stays
        ([1, 1, 1, 1, 1000, 5000], 4),
        ([3, 100, 101], 3),
    ],
)
def test_geometric_split(counts: list[int], split: int) -> None:
    assert geometric_split(counts) == split


def test_many_runs_keep_the_packs_few_and_every_object(bare: Path) -> None:
    written: list[tuple[ObjectID, bytes]] = []
    most = 0
    with Repo(str(bare)) as repo:
        for round_ in range(40):
            written += commit_files(repo, round_, files=10 + round_ % 7)
            done = pack_repository(repo.object_store, pack_limit=4)
            assert done is not None and done.objects > 0
            count = len(pack_names(str(bare / "objects" / "pack")))
            assert done.pack_count == count
            most = max(most, count)
    assert most <= 5  # the limit, and the one pack a run adds before combining
    ids = object_ids(bare)
    assert len(ids) > 40 * 10
    with Repo(str(bare)) as served:
        reader = ObjectReader(served.object_store)
        try:
            for sha, data in written:
                assert reader.raw(sha) == (3, data)
            for sha in ids:
                reader.raw(ObjectID(sha.encode()))
        finally:
            reader.packs.close()
    git(bare, "fsck", "--full", "--strict", "--no-dangling")
    assert not [
        n for n in os.listdir(bare / "objects") if len(n) == 2 and os.listdir(bare / "objects" / n)
    ]


def test_git_made_packs_keep_their_deltas_and_kept_packs_stay(bare: Path) -> None:
    with Repo(str(bare)) as repo:
        for round_ in range(30):
            commit_files(repo, round_)
    git(bare, "repack", "-a", "-d", "-q")  # one pack, deltified by git
    (kept_before,) = pack_names(str(bare / "objects" / "pack"))
    size_git = (bare / "objects" / "pack" / f"{kept_before}.pack").stat().st_size
    with Repo(str(bare)) as repo:
        for round_ in range(30, 40):
            # A pack per round; together more than half of git's: it is combined too.
            commit_files(repo, round_, files=40)
            pack_repository(repo.object_store, pack_limit=1000)
    # A pack kept by hand (git's convention): never combined, nor counted.
    with Repo(str(bare)) as repo:
        commit_files(repo, 99)
        pack_repository(repo.object_store, pack_limit=1000)
    newest = max(
        pack_names(str(bare / "objects" / "pack")),
        key=lambda n: (bare / "objects" / "pack" / f"{n}.pack").stat().st_mtime_ns,
    )
    kept = bare / "objects" / "pack" / f"{newest}.keep"
    kept.write_text("")
    before = object_ids(bare)
    with Repo(str(bare)) as repo:
        done = pack_repository(repo.object_store, pack_limit=2)
    assert done is not None and done.combined == 11 and done.pack_count == 1
    names = set(os.listdir(bare / "objects" / "pack"))
    assert f"{newest}.pack" in names and f"{newest}.idx" in names and kept.exists()
    (combined,) = pack_names(str(bare / "objects" / "pack"))
    # git's deltas stay deltas: the combined pack is not every blob in full.
    size = (bare / "objects" / "pack" / f"{combined}.pack").stat().st_size
    assert size < size_git * 3
    assert object_ids(bare) == before
    git(bare, "fsck", "--full", "--strict", "--no-dangling")
    out = git(bare, "verify-pack", "-v", str(bare / "objects" / "pack" / f"{combined}.idx"))
    assert "chain length" in out  # some objects are deltas


def test_readers_never_fail_while_packs_are_replaced(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads read every object over and over through one reader (as a serving worker
    does) while other processes pack the new loose objects and combine the packs."""
    monkeypatch.setattr(git_packs, "RETIRE_AFTER", 0.2)
    known: list[tuple[ObjectID, int, bytes | None]] = []
    with Repo(str(bare)) as repo:
        for round_ in range(5):
            known += [(sha, 3, data) for sha, data in commit_files(repo, round_)]
        pack_repository(repo.object_store, pack_limit=2)
    lock = threading.Lock()
    failures: list[str] = []
    reads = 0
    stop = threading.Event()
    served = Repo(str(bare))
    reader = ObjectReader(served.object_store)

    def read_all() -> None:
        nonlocal reads
        while not stop.is_set():
            with lock:
                todo = list(known)
            for sha, kind, data in todo:
                try:
                    got = reader.raw(sha)
                    if got[0] != kind or (data is not None and got[1] != data):
                        failures.append(f"{sha!r}: wrong content")
                    _size, content = reader.open_blob(sha, 1 << 20) if kind == 3 else (0, b"")
                    if kind == 3 and content != data:
                        failures.append(f"{sha!r}: wrong blob")
                except Exception as exc:  # any failure is what the test counts
                    failures.append(f"{sha!r}: {exc!r}")
                with lock:
                    reads += 1

    threads = [threading.Thread(target=read_all) for _ in range(3)]
    for t in threads:
        t.start()
    runs = combined = 0
    try:
        deadline = time.monotonic() + 25
        round_ = 5
        with Repo(str(bare)) as repo:
            while time.monotonic() < deadline and runs < 40:
                new = commit_files(repo, round_, files=15)
                head = repo.refs[b"refs/heads/main"]
                commit = repo.object_store[head]
                with lock:
                    known.extend((sha, 3, data) for sha, data in new)
                    known.append((head, 1, None))
                    known.append((commit.tree, 2, None))  # type: ignore[attr-defined]
                done = subprocess.run(
                    [sys.executable, "-m", "davserver.backends.git_gc", str(bare), "2"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs += 1
                combined += '"combined": 0' not in done.stdout
                round_ += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert runs >= 10 and combined >= 5 and reads > 1000
    # The packs removed are closed once a rescan comes after RETIRE_AFTER: no descriptor
    # of this process is left on a removed pack, and those of live packs are few.
    time.sleep(0.3)
    reader.packs.refresh()
    pack_dir = str(bare / "objects" / "pack")
    targets = [
        os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if _exists(fd)
    ]
    on_packs = [t for t in targets if t.startswith(pack_dir)]
    assert not [t for t in on_packs if t.endswith("(deleted)")]
    live, retired = reader.packs.count()
    assert retired == 0 and live == len(pack_names(pack_dir))
    assert live <= 2 + math.log2(len(known) / 15)  # geometric: about log2 of the objects
    names = {os.path.basename(t).rsplit(".", 1)[0] for t in on_packs}
    assert names <= set(pack_names(pack_dir)), on_packs
    assert len(on_packs) <= 4 * live  # an index and a pack: a file and a mapping each
    reader.packs.close()
    served.close()
    git(bare, "fsck", "--full", "--strict", "--no-dangling")


def _exists(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True
