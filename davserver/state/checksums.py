"""Checksums of stored files, kept once computed so that no request hashes a file twice.

They are keyed by the mount and the file's ETag, which names one version of its bytes:
on the git backend the blob id (the same bytes anywhere in the tree share it), on the
filesystem inode, time and size (a MOVE keeps it; any write, or an edit behind the
server's back, makes a new one, whose checksums are then computed afresh). Entries of
versions that no longer exist are dropped oldest first once the table holds ``keep``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from davserver.runtime.sqlite import SQLiteThread, transaction

KEEP = 1_000_000
"""Versions whose checksums are kept (about 150 bytes each)."""
PRUNE_EVERY = 4096
"""Puts between two prunings."""

_SCHEMA = """
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS checksums (
    mount TEXT NOT NULL,
    etag TEXT NOT NULL,
    md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    PRIMARY KEY (mount, etag)
);
"""

Sums = Mapping[str, str]
"""Hex digests by algorithm name (``md5``, ``sha1``)."""


class ChecksumStore(Protocol):
    """Checksums of file versions, by mount and ETag."""

    async def get(self, mount: str, etags: Sequence[str]) -> dict[str, dict[str, str]]:
        """The checksums known of ``etags`` (those not known are left out)."""

    async def put(self, mount: str, etag: str, sums: Sums) -> None:
        """Remember the checksums (``md5`` and ``sha1``) of one version."""

    async def close(self) -> None:
        """Release the store."""


class SQLiteChecksums:
    """A :class:`ChecksumStore` in a SQLite file of the state folder."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "checksums")
        self._keep = keep
        self._added = 0

    async def get(self, mount: str, etags: Sequence[str]) -> dict[str, dict[str, str]]:
        """One query for a batch of ETags."""
        wanted = list(dict.fromkeys(etags))
        if not wanted:
            return {}

        def query(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                for etag, md5, sha1 in db.execute(
                    f"SELECT etag, md5, sha1 FROM checksums WHERE mount = ? AND etag IN ({marks})",
                    (mount, *part),
                ):
                    found[etag] = {"md5": md5, "sha1": sha1}
            return found

        return await self._db.run(query)

    async def put(self, mount: str, etag: str, sums: Sums) -> None:
        """Insert or replace; now and then drop the oldest beyond ``keep``."""
        self._added += 1
        prune = self._added % PRUNE_EVERY == 0
        keep = self._keep

        def store(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO checksums VALUES (?, ?, ?, ?)",
                    (mount, etag, sums["md5"], sums["sha1"]),
                )
                if prune:
                    db.execute(
                        "DELETE FROM checksums WHERE rowid <= "
                        "(SELECT MAX(rowid) FROM checksums) - ?",
                        (keep,),
                    )

        await self._db.run(store)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()
