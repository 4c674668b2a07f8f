"""Packs combined, so that their number stays small as packing runs add new ones.

Each packing run (git_gc.py) adds a pack; a reader searches every pack's index for an
object and keeps every pack open, so packs must be combined now and then. Rewriting
them all into one each time would copy the whole history on every run; instead, as
``git repack --geometric=2`` does, the packs are sorted by their number of objects and
only the smallest are combined: as many as it takes for the rest to form a progression
in which each pack holds at least twice the objects of the one before, and the combined
pack at least half the next one's. A big old pack is thus rewritten only when the small
ones have grown to its size, every object is copied about log2(n) times over its life,
and the number of packs stays about log2 of the objects' (in packs of the first size).

Nothing runs until there are more than ``pack_limit`` packs. Packs with a ``.keep``
file (git's convention: a push being received, a pack kept on purpose) are left alone
and not counted. The combined pack and its index are written (dulwich's writers) and synced
to disk before the packs it replaces are removed, index first: every object is in some
pack at every moment, and readers that still use a removed pack look again
(git_packs.py). Deltas of the old packs are kept as deltas, not expanded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID
from dulwich.pack import Pack, UnpackedObject, write_pack_data, write_pack_index

PACK_LIMIT = 4
"""Packs (without ``.keep``) past which the smallest are combined."""
FACTOR = 2
"""Ratio of the object counts of successive packs that the combining restores."""
_SIDE_FILES = (".rev", ".bitmap", ".mtimes", ".promisor")
"""Files that belong to a pack besides its ``.idx`` and ``.pack`` (git writes them)."""


@dataclass(frozen=True, slots=True)
class Combined:
    """What one combining did: packs combined into one (0: none), packs there after."""

    combined: int
    packs: int


def geometric_split(counts: list[int], factor: int = FACTOR) -> int:
    """How many of the smallest packs to combine, ``counts`` being the packs' object
    counts in ascending order (git's ``split_pack_geometry``)."""
    i = len(counts) - 1
    while i > 0 and counts[i] >= factor * counts[i - 1]:
        i -= 1
    split = i + 1 if i > 0 else 0  # the smaller of the pair that broke the progression
    total = sum(counts[:split])
    while split < len(counts) and counts[split] < factor * total:
        total += counts[split]
        split += 1
    return split


def pack_names(pack_dir: str) -> list[str]:
    """The complete packs (``.pack`` and ``.idx`` present) without ``.keep``, by name."""
    try:
        names = set(os.listdir(pack_dir))
    except FileNotFoundError:
        return []
    return sorted(
        n[:-5]
        for n in names
        if n.endswith(".pack") and n[:-5] + ".idx" in names and n[:-5] + ".keep" not in names
    )


def combine_packs(store: DiskObjectStore, pack_limit: int = PACK_LIMIT) -> Combined:
    """Combine the smallest packs of ``store`` when there are more than ``pack_limit``
    (see the module doc). The caller holds the store's packing lock."""
    pack_dir = os.fspath(store.pack_dir)
    names = pack_names(pack_dir)
    if len(names) <= pack_limit:
        return Combined(0, len(names))
    packs = [Pack(os.path.join(pack_dir, n), object_format=store.object_format) for n in names]
    try:
        packs.sort(key=lambda p: len(p.index))
        split = geometric_split([len(p.index) for p in packs])
        if split < 2:
            return Combined(0, len(names))
        chosen = packs[:split]
        new = _write(store, chosen)
    finally:
        for pack in packs:
            pack.close()
    for pack in chosen:
        name = os.path.basename(pack._basename)
        if name != new:  # the same objects as one old pack make the same name
            _remove(pack_dir, name)
    store.close()  # its cache of packs holds removed ones; it opens them again as needed
    return Combined(split, len(pack_names(pack_dir)))


def _write(store: DiskObjectStore, packs: list[Pack]) -> str:
    """Write one pack holding the objects of ``packs`` (each once); its name."""
    plan: list[tuple[Pack, set[ObjectID]]] = []
    seen: set[ObjectID] = set()
    for pack in packs:
        mine = {ObjectID(sha) for sha in pack.index} - seen
        seen |= mine
        plan.append((pack, mine))

    def records() -> Iterator[UnpackedObject]:
        for pack, shas in plan:
            # A delta against an offset in its old pack becomes one against its base's
            # id; written after the base, it becomes an offset in the new pack again.
            yield from pack.iter_unpacked_subset(shas, convert_ofs_delta=True)

    # The pack is written and indexed here rather than through dulwich's add_pack, which
    # reads the whole pack back (twice) to index it: the writer already knows where each
    # object went. Named like git names packs, by the pack's checksum.
    pack_dir = os.fspath(store.pack_dir)
    fd, temp = tempfile.mkstemp(dir=pack_dir, prefix="tmp_pack_davserver_")
    placed = ""  # the pack, once renamed into place (without its index yet)
    try:
        with os.fdopen(fd, "wb") as f:
            entries, checksum = write_pack_data(
                f.write,
                records(),
                num_records=len(seen),
                object_format=store.object_format,
                compression_level=store.pack_compression_level,
            )
            f.flush()
            os.fsync(f.fileno())
        name = "pack-" + checksum.hex()
        base = os.path.join(pack_dir, name)
        os.chmod(temp, 0o444)
        if not os.path.exists(base + ".idx"):  # else the very same pack is there already
            placed = base + ".pack"
        os.replace(temp, base + ".pack")
        temp = base + ".idx.tmp"
        with open(temp, "wb") as f:
            index = sorted((sha, offset, crc) for sha, (offset, crc) in entries.items())
            write_pack_index(f, index, checksum, version=store.pack_index_version)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o444)
        os.replace(temp, base + ".idx")  # last: with its index, readers take the pack in
    except BaseException:
        for path in (temp, placed):
            with contextlib.suppress(FileNotFoundError):
                if path:
                    os.unlink(path)
        raise
    _sync(pack_dir)  # the new names are on disk before the old packs go
    return name


def _sync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(pack_dir: str, name: str) -> None:
    """Remove a pack: its index first, so that no scan takes it in as a pack anymore."""
    base = os.path.join(pack_dir, name)
    for suffix in (".idx", ".pack", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base + suffix)
