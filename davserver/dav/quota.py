"""Quotas (RFC 4331) of a WebDAV tree: a limit for the whole mount and one for each
user's tree (the folders at its root, as owner-only trees lay them out), with the bytes
used kept in the shared state (``state/quota.py``).

A write reserves what it adds before it stores anything, and is refused with 507 and
``DAV:quota-not-exceeded`` when that would pass a limit; what it did not use is given
back. ``quota-used-bytes`` and ``quota-available-bytes`` report the figures of the tree a
collection lies in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from davserver.backends.base import InsufficientStorage, Measured, NotFound, Resource, Storage
from davserver.state.quota import QuotaCounters

from .context import ServiceKey
from .errors import DAVError

if TYPE_CHECKING:
    from .props import PropRenderer

USED = "{DAV:}quota-used-bytes"
AVAILABLE = "{DAV:}quota-available-bytes"


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """A mount's limits in bytes (None: none)."""

    mount: int | None = None
    user: int | None = None
    """Each user's tree, unless ``users`` names the user."""
    users: Mapping[str, int] = field(default_factory=dict)
    rescan: float = 600.0
    """Seconds after which a tree's figure is counted again from the store."""

    def of_user(self, name: str) -> int | None:
        """The limit of ``name``'s tree."""
        return self.users.get(name, self.user)

    @property
    def any(self) -> bool:
        """Whether any limit is set."""
        return self.mount is not None or self.user is not None or bool(self.users)


def refusal(tree: str, limit: int) -> DAVError:
    """507 with RFC 4331's precondition."""
    where = f"{tree!r}'s tree" if tree else "the mount"
    return DAVError(507, f"{where} would pass its quota of {limit} bytes",
                    condition="quota-not-exceeded")  # fmt: skip


@dataclass(slots=True)
class Quotas:
    """The quotas of one tree (the service :data:`SERVICE`)."""

    counters: QuotaCounters
    mount: str
    limits: QuotaLimits
    storage: Storage

    def trees(self, path: str) -> list[tuple[str, int]]:
        """The limited trees ``path`` lies in, with their limits (the mount first)."""
        found = []
        if self.limits.mount is not None:
            found.append(("", self.limits.mount))
        owner = path.partition("/")[0]
        if owner:
            limit = self.limits.of_user(owner)
            if limit is not None:
                found.append((owner, limit))
        return found

    async def used(self, tree: str) -> int:
        """The bytes the tree holds: the shared figure, counted from the store when
        there is none yet or it is older than ``rescan``."""
        known = await self.counters.get(self.mount, tree)
        now = time.time()
        if known is not None and now - known.counted <= self.limits.rescan:
            return known.used
        used = await self.size(tree)
        await self.counters.reset(
            self.mount, tree, used, now, known.counted if known is not None else None
        )
        again = await self.counters.get(self.mount, tree)
        return again.used if again is not None else used

    async def size(self, path: str) -> int:
        """The bytes below ``path`` in the store (0 when nothing is there)."""
        storage = self.storage
        if not isinstance(storage, Measured):
            return 0
        try:
            return await storage.usage(path)
        except NotFound:
            return 0

    async def reserve(self, path: str, delta: int) -> list[str]:
        """Add ``delta`` bytes to the trees ``path`` lies in, or refuse (507) with
        nothing added; the trees charged."""
        charged: list[str] = []
        for tree, limit in self.trees(path):
            await self.used(tree)
            if not await self.counters.reserve(self.mount, tree, delta, limit):
                await self.release(charged, delta)
                raise refusal(tree, limit)
            charged.append(tree)
        return charged

    async def release(self, trees: Sequence[str], delta: int) -> None:
        """Take back ``delta`` bytes from ``trees``."""
        for tree in trees:
            await self.counters.add(self.mount, tree, -delta)

    @contextlib.asynccontextmanager
    async def charge(self, path: str, delta: int) -> AsyncIterator[None]:
        """Reserve ``delta`` bytes for the block (a write of ``path``); given back if
        it fails."""
        trees = await self.reserve(path, delta)
        try:
            yield
        except BaseException:
            await self.release(trees, delta)
            raise

    async def adjust(self, path: str, delta: int) -> None:
        """Count ``delta`` bytes more (or fewer) in the trees ``path`` lies in, after a
        write whose size was not known ahead (a chunked upload, a delete)."""
        for tree, _limit in self.trees(path):
            await self.used(tree)
            await self.counters.add(self.mount, tree, delta)

    @contextlib.asynccontextmanager
    async def transfer(
        self, src: str | None, dst: str, size: int, replaced: int
    ) -> AsyncIterator[None]:
        """A COPY (``src`` None) or MOVE of ``size`` bytes to ``dst``, where it replaces
        ``replaced`` bytes: the trees that gain are charged first (507 if one would pass
        its limit), the others are counted once the block succeeds."""
        left = {t for t, _ in self.trees(src)} if src is not None else set()
        arriving = self.trees(dst)
        charged: list[str] = []
        growth = size - replaced
        for tree, limit in arriving:
            if tree in left:
                continue
            await self.used(tree)
            if not await self.counters.reserve(self.mount, tree, growth, limit):
                await self.release(charged, growth)
                raise refusal(tree, limit)
            charged.append(tree)
        try:
            yield
        except BaseException:
            await self.release(charged, growth)
            raise
        for tree, _limit in arriving:
            if tree in left:
                await self.counters.add(self.mount, tree, -replaced)
        for tree in left - {t for t, _ in arriving}:
            await self.counters.add(self.mount, tree, -size)

    async def room(self, path: str) -> int | None:
        """The bytes that may still be added at ``path`` (None: no limit)."""
        rooms = [limit - await self.used(tree) for tree, limit in self.trees(path)]
        return max(0, min(rooms)) if rooms else None

    async def figures(self, path: str) -> tuple[int, int] | None:
        """(used, available) for a collection at ``path``: those of the innermost
        limited tree, available bounded by every limit and the disk."""
        trees = self.trees(path)
        if not trees:
            return None
        room = await self.room(path)
        used = await self.used(trees[-1][0])
        disk = await self.storage.quota(path)
        available = room if room is not None else 0
        if disk is not None:
            available = min(available, disk[1])
        return used, available

    async def annotate(self, renderer: PropRenderer, batch: list[Resource]) -> None:
        """The quota properties of the batch's collections, when a PROPFIND asks."""
        names = renderer.request.names
        if USED not in names and AVAILABLE not in names:
            return
        for res in batch:
            if not res.is_collection:
                continue
            found = await self.figures(res.path)
            if found is None:
                continue
            renderer.values[(res.path, USED)] = (
                f"<D:quota-used-bytes>{found[0]}</D:quota-used-bytes>"
            )
            renderer.values[(res.path, AVAILABLE)] = (
                f"<D:quota-available-bytes>{found[1]}</D:quota-available-bytes>"
            )


async def limited(body: AsyncIterator[bytes], room: int) -> AsyncIterator[bytes]:
    """The chunks of a body of unknown length, stopped (InsufficientStorage: the backend
    stores nothing) once they pass ``room`` bytes."""
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if seen > room:
            raise InsufficientStorage(f"the body passes the quota's {room} bytes left")
        yield chunk


SERVICE: ServiceKey[Quotas] = ServiceKey("quota")
