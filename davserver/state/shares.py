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
DECLINED = "declined"
"""The kind of a row that says its ``sharee`` (a user) turned the share of its path down:
a share through a group, or a fixed one, that the user removed from their side."""

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
    """:data:`TO_USER`, :data:`TO_GROUP` (or :data:`DECLINED`: no share, a user's no)."""
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
            db.execute(
                "INSERT OR REPLACE INTO shares (mount, path, kind, sharee, level) "
                "VALUES (?, ?, ?, ?, ?)",
                (share.mount, share.path, share.kind, share.sharee, share.level),
            )

        await self._db.run(write)

    async def remove(self, mount: str, path: str, kind: str, sharee: str) -> None:
        """Drop a share (nothing when there is none)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM shares WHERE mount = ? AND path = ? AND kind = ? AND sharee = ?",
                (mount, path, kind, sharee),
            )

        await self._db.run(write)

    async def drop_below(self, mount: str, path: str) -> None:
        """Drop the shares of ``path`` and of what lies below it (it was deleted)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM shares WHERE mount = ? AND (path = ? OR substr(path, 1, ?) = ?)",
                (mount, path, len(path) + 1, path + "/"),
            )

        await self._db.run(write)

    async def close(self) -> None:
        """Release the database."""
        await self._db.close()


class Groups(Protocol):
    """Group membership (auth/groups.py answers it)."""

    async def of(self, user: str) -> frozenset[str]:
        """The groups ``user`` is in."""

    async def members(self, group: str) -> frozenset[str]:
        """The members of ``group`` (none: no such group)."""


Implied = Callable[[str], Iterable[str]]
"""What else a grant of a path lets its sharee read (a mount's layout says: the principal
of a delegated calendar home)."""


class Shares:
    """The fixed shares and the stored ones, kept in memory and read again when another
    process changed them (``groups``: the groups of a user, for what a request asks of
    another user than its own)."""

    def __init__(
        self,
        fixed: Iterable[Share],
        store: ShareStore | None = None,
        generations: Generations | None = None,
        groups: Groups | None = None,
    ) -> None:
        self._fixed = [Share(s.mount, s.path, s.kind, s.sharee, s.level, True) for s in fixed]
        self._store = store
        self._generations = generations
        self._groups = groups
        self._implied: dict[str, Implied] = {}
        self._stored: list[Share] | None = None
        self._by_mount: dict[str, list[Share]] = {}
        self._index()

    def imply(self, mount: str, implied: Implied) -> None:
        """Have a grant of a path in ``mount`` let its sharee read what ``implied`` names
        too (read-only)."""
        self._implied[mount] = implied

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
        only when a share of the mount names a group): each shared path with its level,
        what those imply (read-only), and no path below one granted at least as high
        (the deepest root decides a path's level)."""
        roots = await self.reaching(mount, user, groups)
        if not roots:
            return NO_GRANTS
        implied = self._implied.get(mount)
        if implied is not None:
            for path in list(roots):
                for extra in implied(path):
                    roots.setdefault(extra, READ_ONLY)
        return Grants(_widest(roots))

    async def reaching(
        self,
        mount: str,
        user: str,
        groups: Callable[[], Awaitable[frozenset[str]]] | None = None,
    ) -> dict[str, str]:
        """The paths shared with ``user`` in ``mount``, directly or through a group
        (``groups``; default: the groups this object was given), and not declined, each
        with the highest level given."""
        shares = await self._current(mount)
        if not shares:
            return {}
        mine: frozenset[str] = frozenset()
        if any(s.kind == TO_GROUP for s in shares):
            if groups is not None:
                mine = await groups()
            elif self._groups is not None:
                mine = await self._groups.of(user)
        declined = {s.path for s in shares if s.kind == DECLINED and s.sharee == user}
        roots: dict[str, str] = {}
        for s in shares:
            if s.kind == TO_USER:
                mine_too = s.sharee == user
            else:
                mine_too = s.kind == TO_GROUP and s.sharee in mine
            if mine_too and s.path not in declined and roots.get(s.path) != READ_WRITE:
                roots[s.path] = s.level
        return roots

    async def group_exists(self, group: str) -> bool:
        """Whether ``group`` has members (in ``[groups]`` or the directory)."""
        return self._groups is not None and bool(await self._groups.members(group))

    async def of(self, mount: str, path: str) -> list[Share]:
        """The shares of the collection at ``path``."""
        return [s for s in await self._current(mount) if s.path == path]

    async def put(self, share: Share) -> None:
        """Store a share made through the protocol and tell the other processes (a user
        invited again takes back their no)."""
        assert self._store is not None
        await self._store.put(share)
        if share.kind == TO_USER:
            await self._store.remove(share.mount, share.path, DECLINED, share.sharee)
        await self._reload()

    async def decline(self, mount: str, path: str, user: str) -> bool:
        """``user`` turns the share of ``path`` down, for themselves only: their own
        share is dropped, and a share through a group or a fixed one is marked declined
        for them. False: nothing there was shared with them."""
        assert self._store is not None
        reached = await self.reaching(mount, user)
        if path not in reached:
            return False
        await self._store.remove(mount, path, TO_USER, user)
        self._stored = await self._store.all()
        self._index()
        if path in await self.reaching(mount, user):
            await self._store.put(Share(mount, path, DECLINED, user, READ_ONLY))
        await self._reload()
        return True

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


def _widest(roots: dict[str, str]) -> dict[str, str]:
    """``roots`` without the paths below another root of at least their level: a path's
    level is its deepest root's (:meth:`Grants.root`), which must not be lower than one
    above it."""

    def covered(path: str, level: str) -> bool:
        above = path
        while "/" in above:
            above = above.rpartition("/")[0]
            if above in roots and (roots[above] == READ_WRITE or level == READ_ONLY):
                return True
        return False

    return {path: level for path, level in roots.items() if not covered(path, level)}
