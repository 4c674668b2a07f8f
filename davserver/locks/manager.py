"""Write locks (RFC 4918 §6-7): who holds what, what conflicts, what a write must submit.

The manager answers every question from an in-memory index, so checking locks costs no
I/O on the request path; every change is written through to a :class:`LockStore`, from
which the index is loaded at start, so a restart drops no lock. Paths are the storage
paths of one mount; each mount has its own namespace in the store.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from davserver.state.generations import Generations

Scope = Literal["exclusive", "shared"]
Depth = Literal["0", "infinity"]


@dataclass(frozen=True, slots=True)
class Lock:
    """One active write lock."""

    token: str
    namespace: str
    root: str
    scope: Scope
    depth: Depth
    owner: bytes
    timeout: int
    expires: float
    principal: str
    collection: bool
    """Whether the lock root is a collection (its href ends with a slash)."""

    def covers(self, path: str) -> bool:
        """Whether the lock applies to ``path`` (its root, or below it at depth infinity)."""
        if path == self.root:
            return True
        if self.depth != "infinity":
            return False
        return not self.root or path.startswith(self.root + "/")

    def remaining(self, now: float | None = None) -> int:
        """Seconds until the lock expires."""
        return max(0, math.ceil(self.expires - (now or time.time())))


Conflicts = Callable[[list[Lock]], "Lock | None"]
"""Given the live locks of a namespace, the one a new lock would conflict with (or None)."""


class LockStore(Protocol):
    """Where locks persist. A store shared by several workers implements this too."""

    async def load(self) -> list[Lock]:
        """Every stored lock (expired ones included; the manager drops them)."""

    async def save(self, lock: Lock) -> None:
        """Insert or replace a lock (as it is: a restore, a copy from another store)."""

    async def insert_unless(self, lock: Lock, conflicts: Conflicts, now: float) -> Lock | None:
        """In one transaction: drop the locks expired at ``now``, then insert ``lock``
        unless ``conflicts`` finds a live lock of its namespace in the way (that lock is
        then returned and nothing changes). Two processes taking conflicting locks at
        once: one gets its lock, the other the conflict."""

    async def renew(self, token: str, timeout: int, expires: float, now: float) -> Lock | None:
        """In one transaction: give the lock ``token`` a new timeout and expiry, unless
        it expired at ``now`` or is gone (released by another process meanwhile): None
        then, and nothing changes (a refresh never brings a lock back)."""

    async def delete(self, tokens: Iterable[str]) -> None:
        """Forget locks."""

    async def close(self) -> None:
        """Release the store."""


class LockConflict(Exception):
    """A new lock would conflict with ``lock``."""

    def __init__(self, lock: Lock) -> None:
        super().__init__(lock.root)
        self.lock = lock


def _is_at_or_below(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


def _conflict(new: Lock, live: list[Lock]) -> Lock | None:
    """The lock among ``live`` (of ``new``'s namespace) that ``new`` conflicts with: one
    covering its root, or below it at depth infinity, unless both are shared."""
    for other in live:
        if other.namespace != new.namespace:
            continue
        overlap = other.covers(new.root) or (
            new.depth == "infinity"
            and other.root != new.root
            and _is_at_or_below(other.root, new.root)
        )
        if overlap and (new.scope == "exclusive" or other.scope == "exclusive"):
            return other
    return None


class LockManager:
    """Locks of all mounts, indexed by (namespace, root path). With ``generations``, the
    processes sharing the store tell each other when the locks changed (each reloads its
    index, :meth:`sync`)."""

    def __init__(self, store: LockStore, generations: Generations | None = None) -> None:
        self._store = store
        self._generations = generations
        self._by_root: dict[tuple[str, str], list[Lock]] = {}
        self._by_token: dict[str, Lock] = {}
        self._roots_per_namespace: dict[str, int] = {}
        self._write = asyncio.Lock()
        self._stale = False
        """Another process changed the locks, and the index has not been reloaded yet (a
        reload that failed is tried again by the next request)."""

    async def open(self) -> None:
        """Load the stored locks, dropping those that expired while the server was down."""
        now = time.time()
        expired = []
        for lock in await self._store.load():
            if lock.expires <= now:
                expired.append(lock.token)
            else:
                self._index(lock)
        if expired:
            await self._store.delete(expired)

    async def sync(self, *, settle: bool = False) -> None:
        """Reload the index when another process changed the locks (no I/O otherwise).
        With ``settle`` (a write is to be checked against the locks), first make sure
        that whatever other processes said before is heard: a lock granted elsewhere a
        moment ago is then enforced here too."""
        if self._generations is None:
            return
        if settle:
            await self._generations.settle()
        if self._generations.changed("locks"):
            self._stale = True
        if not self._stale:
            return
        async with self._write:
            fresh = await self._store.load()
            self._stale = False
            self._by_root.clear()
            self._by_token.clear()
            self._roots_per_namespace.clear()
            now = time.time()
            for lock in fresh:
                if lock.expires > now:
                    self._index(lock)

    async def _changed(self) -> None:
        if self._generations is not None:
            await self._generations.bump("locks")

    async def close(self) -> None:
        """Close the store."""
        await self._store.close()

    # -- queries (no I/O) ---------------------------------------------------------------

    def held(self) -> int:
        """How many locks are live (as this process last loaded them)."""
        return len(self._live(self._by_token.values()))

    def _live(self, locks: Iterable[Lock]) -> list[Lock]:
        now = time.time()
        return [lock for lock in locks if lock.expires > now]

    def covering(self, namespace: str, path: str) -> list[Lock]:
        """Locks that apply to ``path``: on it, or on an ancestor at depth infinity."""
        if namespace not in self._roots_per_namespace:
            return []  # the common case, asked for every member a PROPFIND lists
        found = list(self._by_root.get((namespace, path), ()))
        parent = path
        while parent:
            parent = parent.rpartition("/")[0]
            found.extend(
                lock
                for lock in self._by_root.get((namespace, parent), ())
                if lock.depth == "infinity"
            )
        return self._live(found)

    def direct(self, namespace: str, path: str) -> list[Lock]:
        """Locks rooted exactly at ``path``."""
        return self._live(self._by_root.get((namespace, path), ()))

    def below(self, namespace: str, path: str) -> list[Lock]:
        """Locks rooted strictly below ``path``."""
        return self._live(
            lock
            for (ns, root), locks in self._by_root.items()
            if ns == namespace and root != path and _is_at_or_below(root, path)
            for lock in locks
        )

    def may_have_locks(self, namespace: str) -> bool:
        """False only when no lock is rooted in ``namespace`` (O(1), for the fast paths
        that skip lock checks: expired locks still count until they are dropped)."""
        return namespace in self._roots_per_namespace

    def get(self, token: str) -> Lock | None:
        """The live lock with this token."""
        lock = self._by_token.get(token)
        return lock if lock is not None and lock.expires > time.time() else None

    # -- changes (written through to the store) -----------------------------------------

    def _index(self, lock: Lock) -> None:
        self._by_token[lock.token] = lock
        key = (lock.namespace, lock.root)
        if key not in self._by_root:
            self._by_root[key] = []
            ns = lock.namespace
            self._roots_per_namespace[ns] = self._roots_per_namespace.get(ns, 0) + 1
        self._by_root[key].append(lock)

    def _unindex(self, lock: Lock) -> None:
        self._by_token.pop(lock.token, None)
        key = (lock.namespace, lock.root)
        remaining = [x for x in self._by_root.get(key, ()) if x.token != lock.token]
        if remaining:
            self._by_root[key] = remaining
        elif self._by_root.pop(key, None) is not None:
            ns = lock.namespace
            if self._roots_per_namespace[ns] == 1:
                del self._roots_per_namespace[ns]
            else:
                self._roots_per_namespace[ns] -= 1

    async def create(
        self,
        namespace: str,
        root: str,
        *,
        scope: Scope,
        depth: Depth,
        owner: bytes,
        timeout: int,
        principal: str,
        collection: bool,
    ) -> Lock:
        """Take a new lock; :class:`LockConflict` when an existing one is in the way (the
        store decides, in one transaction with the insert)."""
        async with self._write:
            lock = Lock(
                token=f"urn:uuid:{uuid.uuid4()}",
                namespace=namespace,
                root=root,
                scope=scope,
                depth=depth,
                owner=owner,
                timeout=timeout,
                expires=time.time() + timeout,
                principal=principal,
                collection=collection,
            )
            other = await self._store.insert_unless(
                lock, functools.partial(_conflict, lock), time.time()
            )
            if other is not None:
                if other.token not in self._by_token:
                    self._index(other)  # another process's, unknown here until now
                raise LockConflict(other)
            self._index(lock)
            await self._changed()
            return lock

    async def refresh(self, lock: Lock, timeout: int) -> Lock | None:
        """Restart a lock's timeout; None when it expired or another process released it
        meanwhile (the store decides, in one transaction)."""
        async with self._write:
            now = time.time()
            fresh = await self._store.renew(lock.token, timeout, now + timeout, now)
            self._unindex(lock)
            if fresh is None:
                return None
            self._index(fresh)
            await self._changed()
            return fresh

    async def release(self, locks: Iterable[Lock]) -> None:
        """Remove locks (UNLOCK, or the resources they protect are gone)."""
        locks = list(locks)
        if not locks:
            return
        async with self._write:
            await self._store.delete(lock.token for lock in locks)
            for lock in locks:
                self._unindex(lock)
            await self._changed()

    async def release_tree(self, namespace: str, path: str) -> None:
        """Remove the locks rooted at or below ``path`` (after a DELETE or MOVE)."""
        await self.release(self.direct(namespace, path) + self.below(namespace, path))
