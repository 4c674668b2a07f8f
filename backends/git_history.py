"""The versions of one path along the branch's first-parent history."""

from __future__ import annotations

import stat

from dulwich.objects import ObjectID

from .base import Version
from .git_objects import ObjectReader
from .git_tree import Entry


def lookup(reader: ObjectReader, tree: ObjectID | None, path: list[bytes]) -> Entry | None:
    """The file or tree entry at ``path`` in ``tree``; None for anything else."""
    if tree is None:
        return None
    entry: Entry = (stat.S_IFDIR, tree)
    for name in path:
        if not stat.S_ISDIR(entry[0]):
            return None
        child = reader.tree(entry[1]).get(name)
        if child is None:
            return None
        entry = child
    return entry if stat.S_ISDIR(entry[0]) or stat.S_ISREG(entry[0]) else None


def versions(reader: ObjectReader, head: ObjectID | None, path: list[bytes]) -> list[Version]:
    """Every commit, newest first, after which ``path`` holds something new."""
    out: list[Version] = []
    current = head
    here = lookup(reader, reader.commit(head).tree, path) if head else None
    while current is not None:
        commit = reader.commit(current)
        parent = commit.parents[0] if commit.parents else None
        before = lookup(reader, reader.commit(parent).tree, path) if parent else None
        if here is not None and here != before:
            is_collection = stat.S_ISDIR(here[0])
            out.append(
                Version(
                    id=current.decode(),
                    time=float(commit.commit_time),
                    author=commit.author.decode(errors="replace"),
                    message=commit.message.decode(errors="replace").strip(),
                    etag=f'"{here[1].decode()}"',
                    size=0 if is_collection else reader.blob_size(here[1]),
                    is_collection=is_collection,
                )
            )
        current, here = parent, before
    return out
