"""Which change events a subscription hears of, and the message each one is owed.

A content update of collection S is a member created, changed, removed or moved in or out
within the depth asked for (sync-level 1: S's own members; infinite: anything below S),
and S itself (or a collection holding it) removed, moved or replaced. A property update
is a PROPPATCH of S (depth 0), of S or a member (1), or of anything below S (infinite).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from davserver.events import ChangeEvent
from davserver.state.subscriptions import INFINITE, NONE, Subscription


def ancestors(path: str) -> list[str]:
    """``path`` and every collection holding it, up to the mount root ("")."""
    found = [path]
    while path:
        path = path.rpartition("/")[0]
        found.append(path)
    return found


def depth_below(collection: str, path: str) -> int | None:
    """How many levels ``path`` lies below ``collection`` (0: itself; None: not below)."""
    if path == collection:
        return 0
    if collection and not path.startswith(collection + "/"):
        return None
    rest = path[len(collection) + 1 :] if collection else path
    return rest.count("/") + 1


def _within(level: int, depth: int | None) -> bool:
    return depth is not None and level != NONE and (level == INFINITE or depth <= level)


def fires(sub: Subscription, event: ChangeEvent) -> tuple[bool, bool]:
    """Whether ``event`` is a content update and a property update for ``sub``."""
    if event.kind == "props":
        return False, _within(sub.properties, depth_below(sub.path, event.path))
    if sub.content == NONE:
        return False, False
    for path in (event.path, event.to):
        if path is None:
            continue
        depth = depth_below(sub.path, path)
        if depth is not None and depth >= 1 and _within(sub.content, depth):
            return True, False
        # The collection itself, or what holds it, removed or moved (a replaced one is
        # removed first; one made where the subscription was is no news).
        if event.kind != "created" and depth_below(path, sub.path) is not None:
            return True, False
    return False, False


@dataclass(frozen=True, slots=True)
class Quiet:
    """Whom a request's ``Push-Dont-Notify`` header spares its changes: the registrations
    it names, or (``*``) every registration of the requesting user."""

    ids: frozenset[str] = frozenset()
    owner: str | None = None
    """Set for ``*``: the user whose registrations are all spared."""

    def spares(self, sub: Subscription) -> bool:
        """Whether ``sub`` is not to hear of the request's changes."""
        return sub.id in self.ids or sub.owner == self.owner


NOBODY = Quiet()
"""No one spared (no header, or a change made outside)."""


@dataclass(slots=True)
class Due:
    """What one subscription is owed from a batch of events."""

    sub: Subscription
    content: bool = False
    properties: bool = False
    seq: int = 0
    """The change number of the latest content update."""


def owed(subs: Iterable[Subscription], events: Iterable[tuple[ChangeEvent, Quiet]]) -> list[Due]:
    """The messages a batch of events owes: one per subscription that any of them fires
    for, unless the request that made the event spared it."""
    found: dict[str, Due] = {}
    listed = list(subs)
    for event, quiet in events:
        for sub in listed:
            if quiet.spares(sub):
                continue
            content, properties = fires(sub, event)
            if not (content or properties):
                continue
            due = found.setdefault(sub.id, Due(sub))
            due.properties |= properties
            if content:
                due.content = True
                due.seq = max(due.seq, event.seq)
    return list(found.values())
