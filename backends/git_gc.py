"""Upkeep of a served repository: its loose objects packed, off the request path.

Every write leaves loose objects (a blob per upload, trees and a commit per change); a
busy server makes thousands a minute, and a folder of objects that keeps growing slows
every lookup and fills the disk with one file per object. As ``git gc --auto`` would,
the loose objects are packed once there are more than a threshold of them (estimated,
as git does, from one of the 256 fan-out folders) and on a schedule: in batches of at
most ``BATCH_BYTES``, each written as a pack (dulwich) and then removed as loose
objects. The server runs it in a process of its own (``python -m
davserver.backends.git_gc REPO``, at a lower CPU priority), so that the work, much of it
Python, never holds the serving process's interpreter lock while commits wait. An
object bigger than ``BIG_OBJECT`` (256 KiB compressed) stays loose (it is
streamed from there; packing it would only cost CPU). Then, once there are more than
``pack_limit`` packs, the smallest are combined (git_repack.py), so that the packs that
each run adds do not pile up. Only one process of a host packs a repository at a time
(an ``flock`` on ``objects/davserver-gc.lock``). Nothing is pruned: the history keeps
every version, and unreachable objects are left for ``git gc``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import string
import sys
from dataclasses import dataclass

from dulwich.object_store import DiskObjectStore
from dulwich.objects import ShaFile

from .git_repack import PACK_LIMIT, combine_packs

LOOSE_THRESHOLD = 6700
"""Loose objects past which they are packed (git's ``gc.auto``)."""
BIG_OBJECT = 256 << 10
"""Compressed size past which an object stays loose: packing the many small objects
(trees, commits, small files) is what keeps their number down; a big blob is one file
either way, is streamed from there, and compressing it into a pack costs CPU for
nothing (photos and archives do not compress)."""
BATCH_BYTES = 64 << 20
"""Compressed bytes of loose objects read into one pack at most."""
_HEX = frozenset(string.hexdigits.lower())
LOCK_NAME = "davserver-gc.lock"


@dataclass(frozen=True, slots=True)
class Packed:
    """What one run did: loose objects packed into ``packs`` new packs (``left_loose``
    big ones left), packs then combined into one (0: none), packs there after."""

    objects: int
    packs: int
    left_loose: int
    combined: int = 0
    pack_count: int = 0


def _fanout(objects_dir: str) -> list[str]:
    try:
        names = os.listdir(objects_dir)
    except FileNotFoundError:
        return []
    return [n for n in names if len(n) == 2 and set(n) <= _HEX]


def estimate_loose(objects_dir: str, big: int = BIG_OBJECT) -> int:
    """About how many loose objects there are to pack: those of ``objects/17`` times
    256, as ``git gc --auto`` counts (one listing, not 256). Big ones, which stay loose,
    do not count: else, once enough big files were uploaded, every count would start a
    run that has nothing to pack."""
    found = 0
    try:
        with os.scandir(os.path.join(objects_dir, "17")) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):  # packed meanwhile
                    found += entry.stat().st_size <= big
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return found * 256


def pack_repository(
    store: DiskObjectStore,
    *,
    batch_bytes: int = BATCH_BYTES,
    big: int = BIG_OBJECT,
    pack_limit: int = PACK_LIMIT,
) -> Packed | None:
    """Pack the store's loose objects, then combine packs past ``pack_limit`` (see the
    module doc); None when another process is packing it now."""
    objects_dir = os.fspath(store.path)
    lock = os.open(os.path.join(objects_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        loose = _pack(store, objects_dir, batch_bytes, big)
        combined = combine_packs(store, pack_limit)
        return dataclasses.replace(loose, combined=combined.combined, pack_count=combined.packs)
    finally:
        os.close(lock)


def _pack(store: DiskObjectStore, objects_dir: str, batch_bytes: int, big: int) -> Packed:
    batch: list[tuple[ShaFile, None]] = []
    paths: list[str] = []
    held = 0
    packed = packs = left = 0

    def flush() -> None:
        nonlocal batch, paths, held, packed, packs
        if not batch:
            return
        store.add_objects(batch)  # the pack and its index are in place before...
        for path in paths:  # ...the loose copies go: every object is always somewhere
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        packed += len(batch)
        packs += 1
        batch, paths, held = [], [], 0

    for fan in _fanout(objects_dir):
        folder = os.path.join(objects_dir, fan)
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if not set(name) <= _HEX:
                continue  # a temporary file of git's
            path = os.path.join(folder, name)
            try:
                size = os.path.getsize(path)
                if size > big:
                    left += 1
                    continue
                obj = ShaFile.from_path(path)
            except (FileNotFoundError, ValueError):
                continue  # packed by someone else meanwhile, or not an object
            batch.append((obj, None))
            paths.append(path)
            held += size
            if held >= batch_bytes:
                flush()
    flush()
    return Packed(packed, packs, left)


def main(argv: list[str]) -> int:
    """``python -m davserver.backends.git_gc REPO [PACK_LIMIT]``: pack the repository's
    loose objects and combine its packs at a lower priority; print what was done as JSON
    (``null``: another process packs)."""
    from dulwich.repo import Repo

    if len(argv) not in (1, 2) or not (len(argv) == 1 or argv[1].isdigit()):
        print("usage: python -m davserver.backends.git_gc REPO [PACK_LIMIT]", file=sys.stderr)
        return 2
    limit = int(argv[1]) if len(argv) == 2 else PACK_LIMIT
    with contextlib.suppress(OSError):
        os.nice(10)
    with Repo(argv[0]) as repo:
        done = pack_repository(repo.object_store, pack_limit=limit)
    print(json.dumps(dataclasses.asdict(done) if done is not None else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
