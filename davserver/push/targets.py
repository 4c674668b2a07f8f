"""What push is on, per kind of tree: which collections take subscriptions and with which
triggers, the sync token a message carries, and how changes made outside are found.

- Plain WebDAV trees: every collection, content and property updates at any depth; the
  token is the mount's change number (the change log, ``state/changelog.py``), except on
  owner-only trees, where that number would count the other users' changes too (so
  there the messages carry none); the :class:`~.watch.FolderWatcher` finds outside
  changes.
- CalDAV trees: calendars and address books, content updates of their items and property
  updates of the collection and its items; the token is the one ``sync-collection``
  answers (the calendar index's); the calendar store's refresh finds outside changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from davserver.backends.base import Changed, Resource, Storage
from davserver.caldav.props import sync_token
from davserver.caldav.store.layout import MADE_WITH_HOME, CalendarStore, place
from davserver.events import ChangeEvent
from davserver.state.changelog import ChangeLog
from davserver.state.subscriptions import INFINITE

from .watch import FolderWatcher


class Target(Protocol):
    """The push side of one kind of tree."""

    content_level: int
    """The deepest content trigger served (1 or INFINITE)."""
    property_depth: int
    """The deepest property trigger served (0, 1 or INFINITE)."""

    def takes(self, res: Resource) -> bool:
        """Whether ``res`` is a collection subscriptions may be made on."""

    async def token(self, path: str, seq: int) -> str | None:
        """The collection's sync token after change ``seq`` of the mount."""

    def heard(self, events: Sequence[ChangeEvent]) -> None:
        """The server's own changes (from any process)."""

    def news(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        """Of this process's events, those that may be news to a subscriber."""

    async def poll(self, collections: Sequence[tuple[str, int]]) -> None:
        """Look for outside changes of the subscribed collections (each with its deepest
        content trigger); they are published as change events."""

    def restart(self) -> None:
        """This process stopped polling (another polls): what the polls learnt is
        stale."""

    def close(self) -> None:
        """Release what the target holds."""


def folder_token(epoch: str, seq: int) -> str:
    """The sync token of a plain collection: the mount's change number, in the change
    log named ``epoch``."""
    return f"http://davserver.org/ns/sync/{epoch}-{seq}"


class FolderTarget:
    """Push on a plain WebDAV tree over ``storage``."""

    content_level = INFINITE
    property_depth = INFINITE

    def __init__(
        self,
        storage: Storage,
        changelog: ChangeLog,
        publish: Callable[[Sequence[Changed]], Awaitable[object]],
        owner_only: bool = False,
    ) -> None:
        self._changelog = changelog
        self._watcher = FolderWatcher(storage, publish)
        self._tokens = not owner_only

    def takes(self, res: Resource) -> bool:
        """Every collection."""
        return res.is_collection

    async def token(self, path: str, seq: int) -> str | None:
        """The change number as a sync token (None on an owner-only tree: how far the
        mount's number moved between two messages would tell a user how busy the others
        are)."""
        if not self._tokens:
            return None
        return folder_token(await self._changelog.epoch(), seq)

    def heard(self, events: Sequence[ChangeEvent]) -> None:
        """Tell the watcher."""
        self._watcher.heard(events)

    def news(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        """All of them."""
        return list(events)

    async def poll(self, collections: Sequence[tuple[str, int]]) -> None:
        """The watcher looks at the subscribed folders."""
        await self._watcher.poll([(path, level) for path, level in collections if level > 0])

    def restart(self) -> None:
        """The watcher starts again at its next poll."""
        self._watcher.restart()

    def close(self) -> None:
        """Stop watching."""
        self._watcher.close()


class CalendarTarget:
    """Push on the calendars and address books of a CalDAV tree's ``store``."""

    content_level = 1
    property_depth = 1

    def __init__(self, store: CalendarStore) -> None:
        self._store = store

    def takes(self, res: Resource) -> bool:
        """Calendars and address books."""
        return res.is_collection and place(res.path).kind in ("calendar", "addressbook")

    async def token(self, path: str, seq: int) -> str | None:
        """The collection's sync token from the index (None: not a collection now)."""
        collection = place(path).collection
        if collection is None:
            return None
        index = self._store.index
        return sync_token(await index.token(collection), await index.epoch())

    def heard(self, events: Sequence[ChangeEvent]) -> None:
        """Nothing to do: the index follows the changes."""

    def news(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        """All but the properties a default collection gets when its home is made (it
        looked the same before, as a virtual collection)."""
        return [e for e in events if not (e.kind == "props" and e.note is MADE_WITH_HOME)]

    async def poll(self, collections: Sequence[tuple[str, int]]) -> None:
        """Bring each subscribed collection's index up to date: what changed outside is
        found and published by the store."""
        for path, _ in collections:
            collection = place(path).collection
            if collection is not None:
                await self._store.refresh(collection)

    def restart(self) -> None:
        """Nothing to forget: the index is shared, and a refresh compares with it."""

    def close(self) -> None:
        """Nothing to release."""
