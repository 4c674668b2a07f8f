"""When each path was created and last changed, kept up to date with the branch head.

Walking the history on every PROPFIND would be far too slow, so the backend keeps this
index: each new commit on the branch is applied as the diff against its first parent
(only the subtrees whose ids differ are visited), and a head that does not descend from
the last one applied (a force push) rebuilds it from the first commit. It is saved in the
server's state folder on close and caught up from there on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path

from dulwich.objects import ObjectID

from .git_objects import ObjectReader, TreeEntries

_FORMAT = 1
Times = tuple[float, float]
"""Creation time and last-change time (seconds since the epoch)."""
MTIME_TRAILER = b"Davserver-Mtime: "
"""A line of a commit message that sets the modification time of a path the commit
changed, as a client asked (rclone's ``X-OC-Mtime``, Windows' ``Win32LastModifiedTime``):
``Davserver-Mtime: <seconds> <path as a JSON string>``. Being in the commit, it survives
a rebuild of the index."""


def mtime_trailers(mtimes: dict[str, float]) -> bytes:
    """The trailer lines (with the blank line before them) for ``mtimes``."""
    if not mtimes:
        return b""
    lines = [MTIME_TRAILER + b"%d " % int(t) + json.dumps(p).encode() for p, t in mtimes.items()]
    return b"\n" + b"\n".join(lines) + b"\n"


def parse_mtimes(message: bytes) -> dict[str, float]:
    """The modification times a commit message sets (malformed lines are ignored)."""
    found: dict[str, float] = {}
    for line in message.splitlines():
        if line.startswith(MTIME_TRAILER):
            seconds, _, raw = line[len(MTIME_TRAILER) :].partition(b" ")
            try:
                path = json.loads(raw)
                if isinstance(path, str):
                    found[path] = float(int(seconds))
            except ValueError:
                continue
    return found


def _visible(mode: int) -> bool:
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode)


class PathTimes:
    """The index: path → (created, modified) as of commit ``head``."""

    def __init__(self, hidden: frozenset[str]) -> None:
        self.head: ObjectID | None = None
        self.times: dict[str, Times] = {}
        self.lock = threading.Lock()
        """Held by whoever brings the index forward (readers only look things up)."""
        self._hidden = hidden

    def get(self, path: str) -> Times | None:
        """The times of ``path``, if known."""
        return self.times.get(path)

    def follow(self, reader: ObjectReader, head: ObjectID | None) -> None:
        """Bring the index to ``head`` (call with :attr:`lock` held)."""
        if head == self.head:
            return
        chain = []
        current = head
        while current is not None and current != self.head:
            commit = reader.commit(current)
            chain.append(commit)
            current = commit.parents[0] if commit.parents else None
        if current is None:  # not a descendant of what we had: start over
            self.times = {}
            previous = None
        else:
            previous = reader.commit(current).tree
        for commit in reversed(chain):
            self._apply(reader, previous, commit.tree, float(commit.commit_time))
            for path, mtime in parse_mtimes(commit.message).items():
                known = self.times.get(path)
                if known is not None:
                    self.times[path] = (known[0], mtime)
            previous = commit.tree
        self.head = head

    def _apply(
        self, reader: ObjectReader, old: ObjectID | None, new: ObjectID, when: float
    ) -> None:
        """Record the changes from tree ``old`` to tree ``new``, made at ``when``."""
        times = self.times
        times[""] = (times.get("", (when, when))[0], when)
        todo: list[tuple[ObjectID | None, ObjectID | None, str]] = [(old, new, "")]
        while todo:
            old_id, new_id, prefix = todo.pop()
            before: TreeEntries = reader.tree(old_id) if old_id else {}
            after: TreeEntries = reader.tree(new_id) if new_id else {}
            for raw in before.keys() | after.keys():
                a, b = before.get(raw), after.get(raw)
                if a == b:
                    continue
                try:
                    name = raw.decode()
                except UnicodeDecodeError:
                    continue
                if name in self._hidden:
                    continue
                path = prefix + name
                a_tree = a is not None and stat.S_ISDIR(a[0])
                b_tree = b is not None and stat.S_ISDIR(b[0])
                if b is None or not _visible(b[0]):
                    times.pop(path, None)
                else:
                    same_kind = a is not None and _visible(a[0]) and a_tree == b_tree
                    created = times.get(path, (when, when))[0] if same_kind else when
                    times[path] = (created, when)
                if a_tree or b_tree:
                    todo.append(
                        (a[1] if a_tree and a else None, b[1] if b_tree and b else None, path + "/")
                    )

    def load(self, file: Path) -> None:
        """Start from a saved index (nothing happens when it is missing or unreadable)."""
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            return
        if data.get("format") != _FORMAT or not isinstance(data.get("times"), dict):
            return
        head = data.get("head")
        self.head = ObjectID(head.encode()) if isinstance(head, str) else None
        self.times = {k: (float(v[0]), float(v[1])) for k, v in data["times"].items()}

    def save(self, file: Path) -> None:
        """Write the index atomically."""
        file.parent.mkdir(parents=True, exist_ok=True)
        temp = file.with_name(file.name + ".tmp")
        data = {
            "format": _FORMAT,
            "head": self.head.decode() if self.head else None,
            "times": self.times,
        }
        try:
            temp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(temp, file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
