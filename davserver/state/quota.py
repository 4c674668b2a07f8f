"""How many bytes each quota'd tree of a mount holds, kept in the shared state so that
every worker process sees the same figure and no request walks the tree to know it.

A tree is a mount (``""``) or one user's tree in it (its first path segment). Writes
reserve what they add before they store it (``reserve``: refused when it would pass the
limit, atomically, so two racing uploads cannot both pass) and give back what they
did not use; a tree's figure is set afresh from a walk of the store (``reset``) when it
is first needed and again once it is older than the mount's ``quota_rescan``, which
bounds how long a change made behind the server's back goes uncounted. A recount counts
what is stored, not what uploads under way have reserved: those may pass the limit by
their own size, once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from davserver.runtime.sqlite import SQLiteThread

_SCHEMA = """
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS quota (
    mount TEXT NOT NULL,
    tree TEXT NOT NULL,
    used INTEGER NOT NULL,
    counted REAL NOT NULL,
    PRIMARY KEY (mount, tree)
);
"""


@dataclass(frozen=True, slots=True)
class Usage:
    """The bytes a tree holds, and when a walk of the store last counted them."""

    used: int
    counted: float


class QuotaCounters(Protocol):
    """Bytes used per tree of each mount, shared by the server's processes."""

    async def get(self, mount: str, tree: str) -> Usage | None:
        """The tree's figure (None: never counted)."""

    async def reserve(self, mount: str, tree: str, delta: int, limit: int) -> bool:
        """Add ``delta`` bytes unless the figure would then pass ``limit`` (a delta of 0
        or less always goes); whether it was added."""

    async def add(self, mount: str, tree: str, delta: int) -> None:
        """Add ``delta`` (negative: take away) to a counted tree's figure."""

    async def reset(
        self, mount: str, tree: str, used: int, counted: float, previous: float | None
    ) -> None:
        """Set the figure from a walk of the store made at ``counted``, unless another
        process did since the figure this one saw (counted at ``previous``; None: there
        was none)."""

    async def close(self) -> None:
        """Release the counters."""


class SQLiteQuota:
    """:class:`QuotaCounters` in a SQLite file of the state folder."""

    def __init__(self, path: Path) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "quota")

    async def get(self, mount: str, tree: str) -> Usage | None:
        """One row."""
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT used, counted FROM quota WHERE mount = ? AND tree = ?", (mount, tree)
            ).fetchone()
        )
        return Usage(int(row[0]), float(row[1])) if row is not None else None

    async def reserve(self, mount: str, tree: str, delta: int, limit: int) -> bool:
        """One conditional UPDATE: the check and the addition are one step."""

        def update(db: sqlite3.Connection) -> bool:
            done = db.execute(
                "UPDATE quota SET used = used + ? WHERE mount = ? AND tree = ? "
                "AND (? <= 0 OR used + ? <= ?)",
                (delta, mount, tree, delta, delta, limit),
            )
            return done.rowcount == 1

        return await self._db.run(update)

    async def add(self, mount: str, tree: str, delta: int) -> None:
        """Unconditional."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE quota SET used = MAX(0, used + ?) WHERE mount = ? AND tree = ?",
                (delta, mount, tree),
            )

        await self._db.run(update)

    async def reset(
        self, mount: str, tree: str, used: int, counted: float, previous: float | None
    ) -> None:
        """Insert if absent, or update if the row is the one seen (compare and swap)."""

        def store(db: sqlite3.Connection) -> None:
            if previous is None:
                db.execute(
                    "INSERT OR IGNORE INTO quota VALUES (?, ?, ?, ?)",
                    (mount, tree, used, counted),
                )
            else:
                db.execute(
                    "UPDATE quota SET used = ?, counted = ? "
                    "WHERE mount = ? AND tree = ? AND counted = ?",
                    (used, counted, mount, tree, previous),
                )

        await self._db.run(store)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
