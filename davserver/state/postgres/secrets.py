"""Secrets in PostgreSQL, shared by every process of every host: rows of the ``meta``
table (schema.py), named ``secret:<name>``, their bytes in base64. The first process to
need one inserts it if it is still absent; every other, then and later, reads that one."""

from __future__ import annotations

import base64
from collections.abc import Callable

from davserver.runtime.threads import offload

from .database import PgDatabase

_PREFIX = "secret:"


class PgSecrets:
    """:class:`~davserver.state.secrets.Secrets` in the database ``db``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db.attach()

    async def get(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The secret, inserted when absent (a host that loses the race reads the
        winner's)."""
        key = _PREFIX + name
        async with self._db.connection() as conn:
            found = await conn.fetchval("SELECT value FROM meta WHERE key = $1", key)
        if found is None:
            made = base64.b64encode(await offload(make)).decode("ascii")
            async with self._db.connection() as conn:
                # Two statements: the select's snapshot is taken after the insert, so it
                # sees the row of a host whose insert this one waited for.
                await conn.execute(
                    "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, made
                )
                found = await conn.fetchval("SELECT value FROM meta WHERE key = $1", key)
        return base64.b64decode(str(found))

    async def close(self) -> None:
        """Detach from the database."""
        await self._db.close()
