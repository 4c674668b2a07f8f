"""WebDAV-Push subscriptions, shared by every process that serves the state: who asked to
hear of which collection's changes, where to send the messages, and until when.

A subscription belongs to the mount and collection path it was registered on, and to the
user who registered it; one push endpoint is registered at most once per collection (a new
registration of the same endpoint updates it). Expired subscriptions are never answered.
The SQL is kept plain so that another database (PostgreSQL) implements the same
:class:`SubscriptionStore`; ``tests/contracts/test_subscriptions.py`` is what one must pass.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from davserver.runtime.sqlite import SQLiteThread, transaction

NONE = -1
"""A trigger the subscription does not ask for."""
INFINITE = 2
"""The depth (or sync-level) ``infinite``; 0 and 1 are themselves."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One registration of a push endpoint on a collection."""

    id: str
    """The registration's name: its URL says it, and DELETE of that URL removes it."""
    mount: str
    path: str
    """The collection's storage path in the mount."""
    owner: str
    """Who registered it ("" for an anonymous request)."""
    endpoint: str
    """The push resource (RFC 8030): where the messages are POSTed."""
    public_key: str
    """The user agent's P-256 ECDH key, uncompressed point, base64url (RFC 8291)."""
    auth: str
    """The user agent's authentication secret, base64url (RFC 8291)."""
    content: int
    """Content updates asked for: NONE, 1 (internal members) or INFINITE."""
    properties: int
    """Property updates asked for: NONE, 0 (the collection), 1 or INFINITE."""
    expires: float
    """When it ends (seconds since the epoch)."""


class LimitReached(Exception):
    """The owner has as many live subscriptions as they may have."""


class SubscriptionStore(Protocol):
    """Where subscriptions live."""

    async def register(self, sub: Subscription, limit: int) -> tuple[Subscription, bool]:
        """Store ``sub``, or update the live one of its endpoint on its collection (which
        keeps its id); the stored subscription and whether it is new. LimitReached when
        it is new and its owner already has ``limit`` live ones."""

    async def get(self, sub_id: str) -> Subscription | None:
        """The live subscription of that id."""

    async def delete(self, sub_id: str) -> bool:
        """Remove a subscription; whether a live one was there."""

    async def at(self, mount: str, paths: Sequence[str]) -> list[Subscription]:
        """The live subscriptions of the collections at ``paths``."""

    async def below(self, mount: str, path: str) -> list[Subscription]:
        """The live subscriptions of collections strictly below ``path`` ("": the whole
        mount)."""

    async def collections(self, mount: str) -> list[tuple[str, int]]:
        """The collections of ``mount`` with live subscriptions, each with the deepest
        content trigger asked of it (NONE when only properties are)."""

    async def owners(self, mount: str) -> list[str]:
        """The owners of live subscriptions on ``mount``, each once."""

    async def drop_owner(self, mount: str, owner: str) -> int:
        """Remove every subscription of ``owner`` on ``mount``; how many were live."""

    async def purge(self) -> int:
        """Remove the expired subscriptions; how many."""

    async def close(self) -> None:
        """Release the store."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    mount TEXT NOT NULL,
    path TEXT NOT NULL,
    owner TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    auth TEXT NOT NULL,
    content INTEGER NOT NULL,
    properties INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_by_endpoint
    ON subscriptions (mount, path, endpoint);
CREATE INDEX IF NOT EXISTS subscriptions_by_owner ON subscriptions (owner, expires);
"""
_COLUMNS = "id, mount, path, owner, endpoint, public_key, auth, content, properties, expires"
_MAX_PATHS = 500
"""Paths asked about in one statement (SQLite allows 32,766 parameters; kept small)."""


def _subscription(row: tuple[Any, ...]) -> Subscription:
    return Subscription(*row)


def _register(
    sub: Subscription, limit: int, now: float, db: sqlite3.Connection
) -> tuple[Subscription, bool]:
    with transaction(db):
        row = db.execute(
            "SELECT id FROM subscriptions WHERE mount = ? AND path = ? AND endpoint = ?"
            " AND expires > ?",
            (sub.mount, sub.path, sub.endpoint, now),
        ).fetchone()
        if row is not None:
            sub = dataclasses.replace(sub, id=str(row[0]))
        else:
            count = db.execute(
                "SELECT COUNT(*) FROM subscriptions WHERE owner = ? AND expires > ?",
                (sub.owner, now),
            ).fetchone()[0]
            if count >= limit:
                raise LimitReached(f"{sub.owner!r} has {count} subscriptions")
            # An expired registration of the same endpoint makes way for the new one.
            db.execute(
                "DELETE FROM subscriptions WHERE mount = ? AND path = ? AND endpoint = ?",
                (sub.mount, sub.path, sub.endpoint),
            )
        db.execute(
            f"INSERT OR REPLACE INTO subscriptions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            _values(sub),
        )
    return sub, row is None


def _values(sub: Subscription) -> tuple[object, ...]:
    return (
        sub.id, sub.mount, sub.path, sub.owner, sub.endpoint, sub.public_key, sub.auth,
        sub.content, sub.properties, sub.expires,
    )  # fmt: skip


class SQLiteSubscriptionStore:
    """Subscriptions in the SQLite file ``path`` of the state folder, readable by the
    server's user only (it holds each client's auth secret)."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "push-subscriptions", private=True)

    async def register(self, sub: Subscription, limit: int) -> tuple[Subscription, bool]:
        """Insert or update, in one transaction other processes wait for."""
        now = time.time()
        return await self._db.run(lambda db: _register(sub, limit, now, db))

    async def _select(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        def select(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(sql, args).fetchall()

        none: list[tuple[Any, ...]] = []
        return await self._db.read(select, none)

    async def get(self, sub_id: str) -> Subscription | None:
        """The live subscription ``sub_id``."""
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE id = ? AND expires > ?",
            (sub_id, time.time()),
        )
        return _subscription(rows[0]) if rows else None

    async def delete(self, sub_id: str) -> bool:
        """Remove ``sub_id``."""
        now = time.time()
        count = await self._db.run(
            lambda db: (
                db.execute(
                    "DELETE FROM subscriptions WHERE id = ? AND expires > ?", (sub_id, now)
                ).rowcount
            )
        )
        return bool(count)

    async def at(self, mount: str, paths: Sequence[str]) -> list[Subscription]:
        """The live subscriptions of these collections."""
        now = time.time()
        wanted = list(dict.fromkeys(paths))
        found: list[Subscription] = []
        for i in range(0, len(wanted), _MAX_PATHS):
            part = wanted[i : i + _MAX_PATHS]
            marks = ",".join("?" * len(part))
            rows = await self._select(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE mount = ? AND expires > ?"
                f" AND path IN ({marks})",
                (mount, now, *part),
            )
            found += [_subscription(row) for row in rows]
        return found

    async def below(self, mount: str, path: str) -> list[Subscription]:
        """The live subscriptions strictly below ``path``: the paths between
        ``path + "/"`` and ``path + "0"`` ("0" follows "/" in code point order)."""
        where = "path > ? AND path < ?" if path else "path > ? AND path != ?"
        low, high = (path + "/", path + "0") if path else ("", "")
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE mount = ? AND expires > ? AND {where}",
            (mount, time.time(), low, high),
        )
        return [_subscription(row) for row in rows]

    async def collections(self, mount: str) -> list[tuple[str, int]]:
        """Subscribed collections of ``mount`` and the deepest content trigger of each."""
        rows = await self._select(
            "SELECT path, MAX(content) FROM subscriptions WHERE mount = ? AND expires > ?"
            " GROUP BY path ORDER BY path",
            (mount, time.time()),
        )
        return [(str(path), int(level)) for path, level in rows]

    async def owners(self, mount: str) -> list[str]:
        """Whose live subscriptions there are on ``mount``."""
        rows = await self._select(
            "SELECT DISTINCT owner FROM subscriptions WHERE mount = ? AND expires > ?"
            " ORDER BY owner",
            (mount, time.time()),
        )
        return [str(owner) for (owner,) in rows]

    async def drop_owner(self, mount: str, owner: str) -> int:
        """Remove ``owner``'s subscriptions on ``mount``."""
        now = time.time()
        return int(
            await self._db.run(
                lambda db: (
                    db.execute(
                        "DELETE FROM subscriptions WHERE mount = ? AND owner = ? AND expires > ?",
                        (mount, owner, now),
                    ).rowcount
                )
            )
        )

    async def purge(self) -> int:
        """Drop what has expired."""
        now = time.time()
        return int(
            await self._db.read(
                lambda db: (
                    db.execute("DELETE FROM subscriptions WHERE expires <= ?", (now,)).rowcount
                ),
                0,
            )
        )

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
