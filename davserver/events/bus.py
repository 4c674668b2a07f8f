"""The change-event bus.

A storage reports each committed change (``backends.base.Changed``) once it is durable;
the mount hands it to the bus, which numbers it in the mount's change sequence (the
:class:`~davserver.state.changelog.ChangeLog`) and gives the resulting
:class:`ChangeEvent` to every subscriber of that mount, in order. Subscribers (the
calendar index, lock clean-up; later push and scheduling) react to what happened to the
store, whichever request, method or outside edit made it, instead of hooking method
handlers.

:class:`LocalBus` delivers within this process, before the write that caused the event
returns, so a request that follows the write sees what the subscribers made of it. Other
processes sharing the state (workers of one host, through the state folder) learn of the
change from the shared log: the bus bumps the ``changes`` generation, and their buses,
at the start of each request (:meth:`LocalBus.catch_up`), read what the others appended
and hand it to their *remote* subscribers (what they cache is then dropped). So a change
is acted upon once, by the process that made it (the index written, locks released), and
seen everywhere. Nothing may assume that subscribers live in the process that made the
change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from davserver.backends.base import Changed, ChangeKind, Resource
from davserver.state.changelog import ChangeLog
from davserver.state.generations import Generations

log = logging.getLogger("davserver.events")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change of a mount's store, numbered in the mount's sequence.

    Paths are the mount's storage paths (as in URLs below the mount). ``moved`` names
    the old path in ``path`` and the new one in ``to``; ``note`` (what the writer
    attached) and ``resource`` (the new resource, where the store knew it) are there only
    within the process that made the change; ``outside`` marks a change made behind the
    server's back and found later.
    """

    mount: str
    seq: int
    path: str
    kind: ChangeKind
    is_collection: bool
    author: str
    old_etag: str | None = None
    new_etag: str | None = None
    to: str | None = None
    note: object = None
    outside: bool = False
    resource: Resource | None = None


def _event(mount: str, seq: int, ch: Changed) -> ChangeEvent:
    return ChangeEvent(
        mount, seq, ch.path, ch.kind, ch.is_collection, ch.author, ch.old_etag,
        ch.new_etag, ch.to, ch.note, ch.outside, ch.resource,
    )  # fmt: skip


Subscriber = Callable[[Sequence[ChangeEvent]], Awaitable[None]]
"""What reacts to a mount's events (a batch in the order they happened)."""


class EventBus(Protocol):
    """Numbers the changes of each mount and hands them to its subscribers."""

    def subscribe(self, mount: str, subscriber: Subscriber, *, remote: bool = False) -> None:
        """Give ``subscriber`` the events of ``mount`` from now on: those made in this
        process, or (``remote``) those other processes made."""

    async def publish(self, mount: str, changes: Sequence[Changed]) -> list[ChangeEvent]:
        """Number ``changes`` and deliver them; the events made of them."""

    async def catch_up(self, *, settle: bool = False) -> None:
        """Deliver to the remote subscribers what other processes published since and
        this one heard of; with ``settle``, all they published before the call."""

    async def open(self) -> None:
        """Prepare (before the first request)."""


CATCH_UP_PAGE = 1000


class LocalBus:
    """An :class:`EventBus` numbering through ``changelog``; with ``generations`` it
    tells other processes of its changes and learns of theirs."""

    def __init__(self, changelog: ChangeLog, generations: Generations | None = None) -> None:
        self._log = changelog
        self._generations = generations
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._remote: dict[str, list[Subscriber]] = {}
        self._seen: int | None = None
        self._behind = False
        """Another process said it published, and this one has not read it all yet (a
        catch-up that failed is tried again by the next request)."""
        self._catching_up = asyncio.Lock()

    async def open(self) -> None:
        """Start from the log's end: what other processes publish from now on."""
        if self._generations is not None:
            self._seen = await self._log.newest_all()

    def subscribe(self, mount: str, subscriber: Subscriber, *, remote: bool = False) -> None:
        """Deliver the events of ``mount`` to ``subscriber`` too."""
        table = self._remote if remote else self._subscribers
        table.setdefault(mount, []).append(subscriber)

    async def catch_up(self, *, settle: bool = False) -> None:
        """What other processes appended to the log since this one last looked, handed to
        the remote subscribers (nothing to do, and no I/O, unless another process said it
        changed something). Without ``settle``, what they said may still be on its way
        (between hosts, a moment); with it, all they said before the call is heard
        first (a round trip to the shared state). With no remote subscriber nobody is
        owed those changes: the log is not read (a subscriber that comes later gets what
        was published since this bus opened)."""
        generations = self._generations
        if generations is None or self._seen is None or not self._remote:
            return
        if settle:
            await generations.settle()
        if generations.changed("changes"):
            self._behind = True
        if not self._behind:
            return
        async with self._catching_up:  # one reader: the requests that wait share its work
            await self._read_theirs(generations)

    async def _read_theirs(self, generations: Generations) -> None:
        if generations.changed("changes"):
            self._behind = True
        while self._behind and self._seen is not None:
            found = await self._log.since_all(self._seen, CATCH_UP_PAGE)
            if not found:
                self._behind = False
                return
            self._seen = found[-1].seq
            theirs = [e for e in found if e.origin != self._log.origin]
            by_mount: dict[str, list[ChangeEvent]] = {}
            for e in theirs:
                kind = cast(ChangeKind, e.kind)
                event = ChangeEvent(
                    e.mount, e.seq, e.path, kind, e.collection, e.author, None, e.etag, e.to
                )
                by_mount.setdefault(e.mount, []).append(event)
            for mount, events in by_mount.items():
                for subscriber in self._remote.get(mount, ()):
                    try:
                        await subscriber(events)
                    except Exception as exc:
                        log.warning("a remote subscriber of %r failed: %s", mount, exc)
            if len(found) < CATCH_UP_PAGE:
                self._behind = False

    async def publish(self, mount: str, changes: Sequence[Changed]) -> list[ChangeEvent]:
        """Record the changes in the mount's sequence, then deliver them to every
        subscriber in turn. A subscriber that fails is logged and does not keep the others
        from their events; the first failure is raised once all have run (the change
        itself is committed: the caller's answer says the rest did not follow)."""
        seqs = await self._log.append(mount, changes)
        events = [_event(mount, seq, ch) for seq, ch in zip(seqs, changes, strict=True)]
        failure: BaseException | None = None
        try:
            for subscriber in self._subscribers.get(mount, ()):
                try:
                    await subscriber(events)
                except Exception as exc:
                    log.warning(
                        "a subscriber of %r failed on %d events: %s", mount, len(events), exc
                    )
                    failure = failure or exc
        finally:
            if self._generations is not None:
                await self._generations.bump("changes")  # after the subscribers: what they wrote
        if failure is not None:
            raise failure
        return events
