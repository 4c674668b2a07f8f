"""Shares: collections of one user's tree that other users (or groups) may reach.

A share names a mount, the mount-relative path of a collection in an owner-only tree,
one sharee (a user or a group) and a level (``read-only`` or ``read-write``). Fixed
shares come from the configuration (``[[shares]]``); shares made by their owners through
the protocol (CalendarServer sharing, caldav/sharing.py) are kept in a
:class:`ShareStore`: a SQLite file of the state folder, or the PostgreSQL database of
``[state] url`` (davserver/state/postgres/shares.py) for several hosts;
``tests/contracts/test_shares.py`` is what a store must pass. Every process keeps the
whole table in memory and reads it again when another process says (the ``shares`` word
of :class:`~.generations.Generations`) that it changed, so a revocation holds from the
next request in every worker (of every host).

:class:`Grants` is what one request of one user may reach beyond its own tree: the
access check (app.py) works it out before any mount code runs, and the DAV context
(``Context.may_enter``, ``check_owner``) asks it of every path a request names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from davserver.runtime.sqlite import SQLiteThread

from .generations import Generations

READ_ONLY = "read-only"
READ_WRITE = "read-write"
LEVELS = (READ_ONLY, READ_WRITE)
TO_USER = "user"
TO_GROUP = "group"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    mount TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    sharee TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (mount, path, kind, sharee)
);
"""


@dataclass(frozen=True, slots=True)
class Share:
    """One collection shared with one user or group."""

    mount: str
    """The mount's prefix ("" for a mount at /)."""
    path: str
    """The mount-relative storage path of the shared collection."""
    kind: str
    """:data:`TO_USER` or :data:`TO_GROUP`."""
    sharee: str
    level: str
    """:data:`READ_ONLY` or :data:`READ_WRITE`."""
    fixed: bool = False
    """From the configuration (the protocol can neither change nor remove it)."""


@dataclass(frozen=True, slots=True)
class Grants:
    """The shared collections one request may reach, by path, with their level."""

    roots: Mapping[str, str] = field(default_factory=dict)

    def root(self, path: str) -> str | None:
        """The shared collection ``path`` is or lies in (None: none)."""
        if not self.roots:
            return None
        current = path
        while True:
            if current in self.roots:
                return current
            if "/" not in current:
                return None
            current = current.rpartition("/")[0]

    def level(self, path: str) -> str | None:
        """The level granted at ``path`` (None: nothing is shared there)."""
        root = self.root(path)
        return None if root is None else self.roots[root]


NO_GRANTS = Grants()


class ShareStore(Protocol):
    """Where the shares made through the protocol are kept."""

    async def all(self) -> list[Share]:
        """Every stored share."""

    async def put(self, share: Share) -> None:
        """Add a share, or change its level."""

    async def remove(self, mount: str, path: str, kind: str, sharee: str) -> None:
        """Drop a share (nothing when there is none)."""

    async def drop_below(self, mount: str, path: str) -> None:
        """Drop the shares of ``path`` and of what lies below it (it was deleted)."""

    async def close(self) -> None:
        """Release the store."""


class SQLiteShareStore:
    """The shares made through the protocol, in a SQLite file of the state folder."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "shares")

    async def all(self) -> list[Share]:
        """Every stored share."""

        def query(db: sqlite3.Connection) -> list[Share]:
            rows = db.execute("SELECT mount, path, kind, sharee, level FROM shares")
            return [Share(*row) for row in rows]

        return await self._db.read(query, [])

    async def put(self, share: Share) -> None:
        """Add a share, or change its level."""

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO shares (mount, path, kind, sharee, level) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (share.mount, share.path, share.kind, share.sharee, share.level),
                )

        await self._db.run(write)

    async def remove(self, mount: str, path: str, kind: str, sharee: str) -> None:
        """Drop a share (nothing when there is none)."""

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "DELETE FROM shares WHERE mount = ? AND path = ? AND kind = ? AND sharee = ?",
                    (mount, path, kind, sharee),
                )

        await self._db.run(write)

    async def drop_below(self, mount: str, path: str) -> None:
        """Drop the shares of ``path`` and of what lies below it (it was deleted)."""

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "DELETE FROM shares WHERE mount = ? AND (path = ? OR substr(path, 1, ?) = ?)",
                    (mount, path, len(path) + 1, path + "/"),
                )

        await self._db.run(write)

    async def close(self) -> None:
        """Release the database."""
        await self._db.close()


class Shares:
    """The fixed shares and the stored ones, kept in memory and read again when another
    process changed them."""

    def __init__(
        self,
        fixed: Iterable[Share],
        store: ShareStore | None = None,
        generations: Generations | None = None,
    ) -> None:
        self._fixed = [Share(s.mount, s.path, s.kind, s.sharee, s.level, True) for s in fixed]
        self._store = store
        self._generations = generations
        self._stored: list[Share] | None = None
        self._by_mount: dict[str, list[Share]] = {}
        self._index()

    def _index(self) -> None:
        by_mount: dict[str, list[Share]] = {}
        for share in [*self._fixed, *(self._stored or ())]:
            by_mount.setdefault(share.mount, []).append(share)
        self._by_mount = by_mount

    async def _current(self, mount: str) -> list[Share]:
        """The shares of ``mount`` (the stored ones read again when another process
        changed them)."""
        if self._store is not None:
            changed = self._generations is not None and self._generations.changed("shares")
            if self._stored is None or changed:
                self._stored = await self._store.all()
                self._index()
        return self._by_mount.get(mount, [])

    async def grants(
        self, mount: str, user: str, groups: Callable[[], Awaitable[frozenset[str]]]
    ) -> Grants:
        """What ``user`` may reach of other users' trees in ``mount`` (``groups``: asked
        only when a share of the mount names a group)."""
        shares = await self._current(mount)
        if not shares:
            return NO_GRANTS
        mine: frozenset[str] = frozenset()
        if any(s.kind == TO_GROUP for s in shares):
            mine = await groups()
        roots: dict[str, str] = {}
        for s in shares:
            mine_too = s.sharee == user if s.kind == TO_USER else s.sharee in mine
            if mine_too and roots.get(s.path) != READ_WRITE:
                roots[s.path] = s.level
        return Grants(roots) if roots else NO_GRANTS

    async def of(self, mount: str, path: str) -> list[Share]:
        """The shares of the collection at ``path``."""
        return [s for s in await self._current(mount) if s.path == path]

    async def put(self, share: Share) -> None:
        """Store a share made through the protocol and tell the other processes."""
        assert self._store is not None
        await self._store.put(share)
        await self._reload()

    async def remove(self, mount: str, path: str, kind: str, sharee: str) -> None:
        """Drop a stored share and tell the other processes."""
        assert self._store is not None
        await self._store.remove(mount, path, kind, sharee)
        await self._reload()

    async def drop_below(self, mount: str, path: str) -> None:
        """Drop the stored shares of a collection that is gone (and of what it held)."""
        if self._store is None:
            return
        if any(s.path == path or s.path.startswith(path + "/") for s in await self._current(mount)):
            await self._store.drop_below(mount, path)
            await self._reload()

    async def _reload(self) -> None:
        assert self._store is not None
        if self._generations is not None:
            await self._generations.bump("shares")
        self._stored = await self._store.all()
        self._index()

    async def close(self) -> None:
        """Release the store."""
        if self._store is not None:
            await self._store.close()
