"""The change-event bus.

A storage reports each committed change (``backends.base.Changed``) once it is durable;
the mount hands it to the bus, which numbers it in the mount's change sequence (the
:class:`~davserver.state.changelog.ChangeLog`) and gives the resulting
:class:`ChangeEvent` to every subscriber of that mount, in order. Subscribers (the
calendar index, lock clean-up; later push and scheduling) react to what happened to the
store, whichever request, method or outside edit made it, instead of hooking method
handlers.

:class:`LocalBus` delivers within this process, before the write that caused the event
returns, so a request that follows the write sees what the subscribers made of it. A bus
for several processes or hosts implements :class:`EventBus` too; nothing may assume that
subscribers live in the process that made the change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from davserver.backends.base import Changed, ChangeKind, Resource
from davserver.state.changelog import ChangeLog

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

    def subscribe(self, mount: str, subscriber: Subscriber) -> None:
        """Give ``subscriber`` the events of ``mount`` from now on."""

    async def publish(self, mount: str, changes: Sequence[Changed]) -> list[ChangeEvent]:
        """Number ``changes`` and deliver them; the events made of them."""


class LocalBus:
    """An :class:`EventBus` within one process, numbering through ``log``."""

    def __init__(self, changelog: ChangeLog) -> None:
        self._log = changelog
        self._subscribers: dict[str, list[Subscriber]] = {}

    def subscribe(self, mount: str, subscriber: Subscriber) -> None:
        """Deliver the events of ``mount`` to ``subscriber`` too."""
        self._subscribers.setdefault(mount, []).append(subscriber)

    async def publish(self, mount: str, changes: Sequence[Changed]) -> list[ChangeEvent]:
        """Record the changes in the mount's sequence, then deliver them to every
        subscriber in turn. A subscriber that fails is logged and does not keep the others
        from their events; the first failure is raised once all have run (the change
        itself is committed: the caller's answer says the rest did not follow)."""
        seqs = await self._log.append(mount, changes)
        events = [_event(mount, seq, ch) for seq, ch in zip(seqs, changes, strict=True)]
        failure: BaseException | None = None
        for subscriber in self._subscribers.get(mount, ()):
            try:
                await subscriber(events)
            except Exception as exc:
                log.warning("a subscriber of %r failed on %d events: %s", mount, len(events), exc)
                failure = failure or exc
        if failure is not None:
            raise failure
        return events
