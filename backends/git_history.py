"""The versions of one path along the branch's first-parent history, following renames."""

from __future__ import annotations

import re
import stat

from dulwich.objects import ObjectID

from .base import Version
from .git_objects import ObjectReader
from .git_tree import Entry

_MOVE = re.compile(r"MOVE /(.*) -> /(.*)\Z")


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


def _segments(path: str) -> list[bytes]:
    return [s.encode() for s in path.split("/")] if path else []


def renamed_from(
    reader: ObjectReader, message: str, parent_tree: ObjectID, tree: ObjectID,
    path: str, here: Entry,
) -> str | None:  # fmt: skip
    """The path that ``path`` had before a commit that made it, if that commit moved it
    there: a MOVE made by the server says so in its message (for the path or a folder
    above it); for a move pushed from outside, an entry of the same folder with the same
    object that the commit removed."""
    found = _MOVE.match(message.splitlines()[0] if message else "")
    if found is not None:
        old, new = found[1], found[2]
        if path == new or path.startswith(new + "/"):
            return old + path[len(new) :]
    parent, _, _name = path.rpartition("/")
    before = lookup(reader, parent_tree, _segments(parent))
    after = lookup(reader, tree, _segments(parent))
    if before is None or after is None or not stat.S_ISDIR(before[0]):
        return None
    after_entries = reader.tree(after[1]) if stat.S_ISDIR(after[0]) else {}
    for raw, entry in reader.tree(before[1]).items():
        if entry == here and raw not in after_entries:
            name = raw.decode(errors="replace")
            return f"{parent}/{name}" if parent else name
    return None


def versions(
    reader: ObjectReader, head: ObjectID | None, path: str, stop: ObjectID | None = None
) -> tuple[list[Version], bool]:
    """Every commit after which ``path`` held something new, newest first, from ``head``
    down to (not including) ``stop``: whether ``stop`` was reached (else the walk went to
    the first commit). A version made by a rename continues with the old path's history
    (its versions carry that ``path``)."""
    out: list[Version] = []
    asked = path
    current = head
    here = lookup(reader, reader.commit(head).tree, _segments(path)) if head else None
    while current is not None:
        if current == stop:
            return out, True
        commit = reader.commit(current)
        parent = commit.parents[0] if commit.parents else None
        parent_tree = reader.commit(parent).tree if parent else None
        before = lookup(reader, parent_tree, _segments(path)) if parent_tree else None
        if here is not None and here != before:
            is_collection = stat.S_ISDIR(here[0])
            message = commit.message.decode(errors="replace").strip()
            out.append(
                Version(
                    id=current.decode(),
                    time=float(commit.commit_time),
                    author=commit.author.decode(errors="replace"),
                    message=message,
                    etag=f'"{here[1].decode()}"',
                    size=0 if is_collection else reader.blob_size(here[1]),
                    is_collection=is_collection,
                    path=path if path != asked else None,
                )
            )
            if before is None and parent_tree is not None:
                old = renamed_from(reader, message, parent_tree, commit.tree, path, here)
                if old is not None:
                    path = old
                    before = lookup(reader, parent_tree, _segments(path))
        current, here = parent, before
    return out, stop is None
