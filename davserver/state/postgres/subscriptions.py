"""WebDAV-Push subscriptions in PostgreSQL, shared by every process of every host: the
``subscriptions`` table of schema.py, the same rows as the SQLite store's
(davserver/state/subscriptions.py). A registration's checks (the live one of its
endpoint, its owner's count) and its write are one transaction under an advisory lock,
so two hosts registering at once see each other's."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from davserver.state.subscriptions import LimitReached, Subscription

from .database import PgDatabase
from .schema import SUBSCRIPTIONS_LOCK

_COLUMNS = "id, mount, path, owner, endpoint, public_key, auth, content, properties, expires"


def _subscription(row: Any) -> Subscription:
    return Subscription(*row)


class PgSubscriptionStore:
    """A :class:`~davserver.state.subscriptions.SubscriptionStore` in the database
    ``db``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()

    async def register(self, sub: Subscription, limit: int) -> tuple[Subscription, bool]:
        """Insert or update, in one transaction that other registrations wait for."""
        now = time.time()
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", SUBSCRIPTIONS_LOCK)
            found = await conn.fetchval(
                "SELECT id FROM subscriptions WHERE mount = $1 AND path = $2"
                " AND endpoint = $3 AND expires > $4",
                sub.mount, sub.path, sub.endpoint, now,
            )  # fmt: skip
            if found is not None:
                sub = replace(sub, id=str(found))
            else:
                count = await conn.fetchval(
                    "SELECT COUNT(*) FROM subscriptions WHERE owner = $1 AND expires > $2",
                    sub.owner,
                    now,
                )
                if count >= limit:
                    raise LimitReached(f"{sub.owner!r} has {count} subscriptions")
                # An expired registration of the same endpoint makes way for the new one.
                await conn.execute(
                    "DELETE FROM subscriptions WHERE mount = $1 AND path = $2 AND endpoint = $3",
                    sub.mount, sub.path, sub.endpoint,
                )  # fmt: skip
            await conn.execute(
                f"INSERT INTO subscriptions ({_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (id) DO UPDATE SET mount = excluded.mount,"
                " path = excluded.path, owner = excluded.owner, endpoint = excluded.endpoint,"
                " public_key = excluded.public_key, auth = excluded.auth,"
                " content = excluded.content, properties = excluded.properties,"
                " expires = excluded.expires",
                sub.id, sub.mount, sub.path, sub.owner, sub.endpoint, sub.public_key,
                sub.auth, sub.content, sub.properties, sub.expires,
            )  # fmt: skip
        return sub, found is None

    async def _select(self, sql: str, *args: object) -> list[Any]:
        async with self._db.connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _delete(self, sql: str, *args: object) -> int:
        async with self._db.connection() as conn:
            done = await conn.execute(sql, *args)
        return int(done.rpartition(" ")[2])

    async def get(self, sub_id: str) -> Subscription | None:
        """The live subscription ``sub_id``."""
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE id = $1 AND expires > $2",
            sub_id,
            time.time(),
        )
        return _subscription(rows[0]) if rows else None

    async def delete(self, sub_id: str) -> bool:
        """Remove ``sub_id``."""
        return bool(
            await self._delete(
                "DELETE FROM subscriptions WHERE id = $1 AND expires > $2", sub_id, time.time()
            )
        )

    async def at(self, mount: str, paths: Sequence[str]) -> list[Subscription]:
        """The live subscriptions of these collections (one query: the paths are one
        array parameter)."""
        wanted = list(dict.fromkeys(paths))
        if not wanted:
            return []
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE mount = $1 AND expires > $2"
            " AND path = ANY($3)",
            mount,
            time.time(),
            wanted,
        )
        return [_subscription(row) for row in rows]

    async def below(self, mount: str, path: str) -> list[Subscription]:
        """The live subscriptions strictly below ``path``: the paths between
        ``path + "/"`` and ``path + "0"`` (the column's collation is code point order,
        in which "0" follows "/")."""
        where = "path > $3 AND path < $4" if path else "path > $3 AND path != $4"
        low, high = (path + "/", path + "0") if path else ("", "")
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE mount = $1 AND expires > $2"
            f" AND {where}",
            mount, time.time(), low, high,
        )  # fmt: skip
        return [_subscription(row) for row in rows]

    async def collections(self, mount: str) -> list[tuple[str, int]]:
        """Subscribed collections of ``mount`` and the deepest content trigger of each."""
        rows = await self._select(
            "SELECT path, MAX(content) FROM subscriptions WHERE mount = $1 AND expires > $2"
            " GROUP BY path ORDER BY path",
            mount,
            time.time(),
        )
        return [(str(path), int(level)) for path, level in rows]

    async def owners(self, mount: str) -> list[str]:
        """Whose live subscriptions there are on ``mount``."""
        rows = await self._select(
            "SELECT DISTINCT owner FROM subscriptions WHERE mount = $1 AND expires > $2"
            " ORDER BY owner",
            mount,
            time.time(),
        )
        return [str(owner) for (owner,) in rows]

    async def drop_owner(self, mount: str, owner: str) -> int:
        """Remove ``owner``'s subscriptions on ``mount``."""
        return await self._delete(
            "DELETE FROM subscriptions WHERE mount = $1 AND owner = $2 AND expires > $3",
            mount,
            owner,
            time.time(),
        )

    async def purge(self) -> int:
        """Drop what has expired."""
        return await self._delete("DELETE FROM subscriptions WHERE expires <= $1", time.time())

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
