"""Changes made behind the server's back in subscribed plain folders (an edit on disk, a
``git push``), found without a request: the subscribed folders are looked at every poll,
through the storage's feed (inotify names the changed files of a folder; on git a folder
whose tree id moved is listed again), and compared with what the watcher knows of them.

What the server itself changes reaches the watcher as change events (its own process's
and, through the shared change log, the other processes'), so it is not taken for an
outside change. A difference counts only once two polls in a row have seen it: a write
of another process is on disk a moment before its event is in the log, and an editor
saving a file in several steps is reported once, when it is done. Outside changes are
published as change events (``outside``) like any other.

The watched folders are bounded (:data:`MAX_FOLDERS` per mount): an infinite-depth
subscription of a huge tree watches its first folders only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from davserver.backends.base import Changed, ChangeKind, Feed, NotFound, Resource, Storage
from davserver.events import ChangeEvent
from davserver.state.subscriptions import INFINITE

log = logging.getLogger("davserver.push")

MAX_FOLDERS = 1024
STAT_AT_MOST = 16
"""Members the feed names that are looked at one by one; more, and the folder is listed
(one call for all of them: a folder written to hundreds of times a second)."""
OUTSIDE = "(outside)"
"""The author of changes made behind the server's back."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What is known of a member: its ETag (files) and whether it is a folder."""

    etag: str | None
    is_collection: bool

    def same(self, other: Entry | None) -> bool:
        """Whether ``other`` shows no change (a folder's own ETag is no content)."""
        if other is None or other.is_collection != self.is_collection:
            return False
        return self.is_collection or other.etag == self.etag


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _below(path: str, folder: str) -> bool:
    return path == folder or not folder or path.startswith(folder + "/")


class FolderWatcher:
    """Watches the subscribed folders of ``storage``; ``publish`` reports what it finds."""

    def __init__(
        self, storage: Storage, publish: Callable[[Sequence[Changed]], Awaitable[object]]
    ) -> None:
        self._storage = storage
        self._publish = publish
        self._feed: Feed | None = None
        self._roots: dict[str, int] = {}
        self._folders: set[str] = set()
        """Watched folders whose members are in _known."""
        self._known: dict[str, Entry] = {}
        self._suspect: dict[str, Entry | None] = {}
        self._relist: set[str] = set()
        """Folders to list again quietly (the server made or moved them)."""
        self._bounded = False

    def close(self) -> None:
        """Stop watching."""
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def restart(self) -> None:
        """Forget what the polls learnt: the next one takes in the folders as they are
        then, quietly. For a process that stopped polling while another did (the other
        reported what changed meanwhile; its reports are outside events, which
        :meth:`heard` does not learn from)."""
        self.close()
        self._folders.clear()
        self._known.clear()
        self._suspect.clear()
        self._relist.clear()

    def heard(self, events: Sequence[ChangeEvent]) -> None:
        """Take in the server's own changes, so they are not found as outside ones."""
        for event in events:
            if event.kind == "props" or event.outside:
                continue
            path = event.path
            if event.kind in ("deleted", "moved"):
                moved = self._known.get(path)
                self._forget(path)
                if event.kind == "moved" and event.to is not None:
                    # The ETag the store gives the moved resource, else the one it had (an
                    # event heard twice, from a request's catch-up and the poller's, has
                    # nothing left to carry over).
                    etag = event.new_etag or (moved.etag if moved else None)
                    self._learn(event.to, Entry(etag, event.is_collection))
            else:
                self._learn(path, Entry(event.new_etag, event.is_collection))

    def _learn(self, path: str, entry: Entry) -> None:
        self._suspect.pop(path, None)
        if _parent(path) in self._folders:
            self._known[path] = entry
        if entry.is_collection:  # made, copied or moved here: what is in it is the server's
            self._relist.update(f for f in self._wanted() if _below(f, path))

    def _forget(self, path: str) -> None:
        for known in [k for k in self._known if _below(k, path)]:
            del self._known[known]
        for folder in [f for f in self._folders if _below(f, path)]:
            self._folders.discard(folder)
        for suspect in [s for s in self._suspect if _below(s, path)]:
            del self._suspect[suspect]

    def _watches(self, folder: str) -> bool:
        """Whether ``folder`` is to be watched, given the subscribed roots."""
        for root, level in self._roots.items():
            if folder == root or (level == INFINITE and _below(folder, root)):
                return True
        return False

    def _wanted(self) -> list[str]:
        """The folders to watch: the roots, and the known folders below the roots of
        infinite depth (at most MAX_FOLDERS, shallowest first)."""
        wanted = set(self._roots)
        wanted.update(
            path
            for path, entry in self._known.items()
            if entry.is_collection and self._watches(path)
        )
        ordered = sorted(wanted, key=lambda f: (f.count("/") if f else -1, f))
        if len(ordered) > MAX_FOLDERS and not self._bounded:
            self._bounded = True
            log.warning("push: %d folders to watch for outside changes, only the first %d are",
                        len(ordered), MAX_FOLDERS)  # fmt: skip
        return ordered[:MAX_FOLDERS]

    async def poll(self, roots: Sequence[tuple[str, int]]) -> None:
        """Look at the subscribed folders (``roots``, each with its content depth) and
        publish what changed behind the server's back."""
        self._roots = dict(roots)
        if self._feed is None:
            self._feed = self._storage.feed()
        wanted = self._wanted()
        for folder in self._folders - set(wanted):
            self._forget_members(folder)
        found: list[Changed] = []
        looked: set[str] = set()
        for folder in wanted:
            looked |= await self._look(folder, found)
        for path in [s for s in self._suspect if s not in looked]:
            if _parent(path) in self._folders:
                await self._compare(path, await self._stat(path), found)
            else:
                self._suspect.pop(path, None)
        if found:
            await self._publish(found)

    def _forget_members(self, folder: str) -> None:
        self._folders.discard(folder)
        for path in [k for k in self._known if _parent(k) == folder]:
            del self._known[path]

    async def _stat(self, path: str) -> Entry | None:
        res = await self._storage.stat(path)
        return Entry(res.etag, res.is_collection) if res is not None else None

    async def _look(self, folder: str, found: list[Changed]) -> set[str]:
        """Compare a folder with what is known of it; the paths looked at."""
        feed = self._feed
        quiet = folder not in self._folders or folder in self._relist
        names = None if quiet or feed is None else await feed.changes(folder)
        if names is not None and len(names) <= STAT_AT_MOST:
            paths = {f"{folder}/{n}" if folder else n for n in names}
            for path in paths:
                await self._compare(path, await self._stat(path), found)
            return paths
        if names is None:
            self._relist.discard(folder)
            if feed is not None:
                await feed.start(folder)
        listed: dict[str, Resource] = {}
        try:
            async for batch in self._storage.children(folder):
                listed.update((r.path, r) for r in batch)
        except NotFound:
            self._forget_members(folder)
            return set()
        if quiet:
            self._forget_members(folder)
            self._folders.add(folder)
            self._known.update((p, Entry(r.etag, r.is_collection)) for p, r in listed.items())
            return set(listed)
        paths = set(listed) | {k for k in self._known if _parent(k) == folder}
        for path in paths:
            res = listed.get(path)
            await self._compare(path, Entry(res.etag, res.is_collection) if res else None, found)
        return paths

    async def _compare(self, path: str, now: Entry | None, found: list[Changed]) -> None:
        """Report ``path`` when it differs from what is known, the same way twice."""
        before = self._known.get(path)
        if (before is None and now is None) or (before is not None and before.same(now)):
            self._suspect.pop(path, None)
            return
        if path not in self._suspect or not _same(self._suspect[path], now):
            self._suspect[path] = now
            return
        del self._suspect[path]
        if now is None:
            assert before is not None
            found.append(Changed(path, "deleted", before.is_collection, OUTSIDE, before.etag,
                                 outside=True))  # fmt: skip
            self._forget(path)
            return
        kind: ChangeKind = "created" if before is None else "modified"
        found.append(
            Changed(path, kind, now.is_collection, OUTSIDE,
                    before.etag if before else None, now.etag, outside=True)
        )  # fmt: skip
        self._known[path] = now
        if now.is_collection and self._watches(path):
            self._relist.add(path)


def _same(a: Entry | None, b: Entry | None) -> bool:
    return a.same(b) if a is not None else b is None
