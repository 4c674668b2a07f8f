"""Checksums of stored files in PostgreSQL, shared by every process of every host: the
``checksums`` table of schema.py, the same rows as the SQLite store's
(davserver/state/checksums.py), numbered in the order they were written so that the
oldest beyond ``keep`` can be dropped."""

from __future__ import annotations

from collections.abc import Sequence

from davserver.state.checksums import KEEP, PRUNE_EVERY, Sums

from .database import PgDatabase


class PgChecksums:
    """A :class:`~davserver.state.checksums.ChecksumStore` in the database ``db``."""

    def __init__(self, db: PgDatabase, keep: int = KEEP) -> None:
        self._db = db.attach()
        self._keep = keep
        self._added = 0

    async def get(self, mount: str, etags: Sequence[str]) -> dict[str, dict[str, str]]:
        """One query for a batch of ETags."""
        wanted = list(dict.fromkeys(etags))
        if not wanted:
            return {}
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT etag, md5, sha1 FROM checksums WHERE mount = $1 AND etag = ANY($2)",
                mount,
                wanted,
            )
        return {etag: {"md5": md5, "sha1": sha1} for etag, md5, sha1 in rows}

    async def put(self, mount: str, etag: str, sums: Sums) -> None:
        """Insert or replace (a replaced row is numbered anew); now and then drop the
        oldest beyond ``keep``."""
        self._added += 1
        prune = self._added % PRUNE_EVERY == 0
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO checksums (mount, etag, md5, sha1) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (mount, etag) DO UPDATE SET md5 = excluded.md5,"
                " sha1 = excluded.sha1, added = DEFAULT",
                mount,
                etag,
                sums["md5"],
                sums["sha1"],
            )
            if prune:
                await conn.execute(
                    "DELETE FROM checksums WHERE added <= (SELECT MAX(added) FROM checksums) - $1",
                    self._keep,
                )

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
