"""The shares made through the protocol in PostgreSQL, shared by every process of every
host: the ``shares`` table of schema.py, the same rows as the SQLite store's
(davserver/state/shares.py). Each call is one statement; the processes hear of a change
through the ``shares`` word of the generations, as with SQLite."""

from __future__ import annotations

from davserver.state.shares import Share

from .database import PgDatabase


class PgShareStore:
    """A :class:`~davserver.state.shares.ShareStore` in the database ``db``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()

    async def all(self) -> list[Share]:
        """Every stored share."""
        async with self._db.connection() as conn:
            rows = await conn.fetch("SELECT mount, path, kind, sharee, level FROM shares")
        return [Share(*row) for row in rows]

    async def put(self, share: Share) -> None:
        """Insert, or change the level of the share already there."""
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO shares (mount, path, kind, sharee, level) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (mount, path, kind, sharee) DO UPDATE SET level = excluded.level",
                share.mount, share.path, share.kind, share.sharee, share.level,
            )  # fmt: skip

    async def remove(self, mount: str, path: str, kind: str, sharee: str) -> None:
        """Drop a share (nothing when there is none)."""
        async with self._db.connection() as conn:
            await conn.execute(
                "DELETE FROM shares WHERE mount = $1 AND path = $2 AND kind = $3 AND sharee = $4",
                mount, path, kind, sharee,
            )  # fmt: skip

    async def drop_below(self, mount: str, path: str) -> None:
        """Drop the shares of ``path`` and of what lies below it (its prefix compared as
        text: no pattern, which a ``%`` or ``_`` of the name would be part of)."""
        async with self._db.connection() as conn:
            await conn.execute(
                "DELETE FROM shares WHERE mount = $1 AND (path = $2 OR substr(path, 1, $3) = $4)",
                mount, path, len(path) + 1, path + "/",
            )  # fmt: skip

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
