"""The change sequence of each mount: every change event gets the next number of its
mount, and the log keeps what changed at each number, so a sync token (a number) can be
answered with what changed since.

The log is bounded: it keeps the latest ``keep`` changes of each mount, and a number
older than that is no longer known (a client holding it must start over).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from davserver.backends.base import Changed
from davserver.runtime.sqlite import SQLiteThread, transaction
from davserver.runtime.threads import offload

KEEP = 100_000
"""Changes kept per mount."""
_PRUNE_EVERY = 1024
GROUP_WAIT = 0.0005
"""Seconds a commit waits for company while the process is busy (see GroupCommit)."""

_SCHEMA = """
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY,
    mount TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    dest TEXT,
    etag TEXT,
    author TEXT NOT NULL,
    time REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    collection INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS changes_by_mount ON changes (mount, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('epoch', lower(hex(randomblob(4))));
"""
_FIELDS = "seq, path, kind, dest, etag, author, mount, origin, collection"


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One entry of a mount's change sequence."""

    seq: int
    path: str
    kind: str
    to: str | None
    etag: str | None
    author: str = ""
    mount: str = ""
    origin: str = ""
    """The process that made the change (see :attr:`ChangeLog.origin`)."""
    collection: bool = False


class ChangeLog(Protocol):
    """Numbers the changes of each mount and remembers them."""

    origin: str
    """A random name of this process's log connection, recorded with what it appends."""

    async def append(self, mount: str, changes: Sequence[Changed]) -> list[int]:
        """Record changes of ``mount``, in order; their numbers (increasing)."""

    async def since(self, mount: str, seq: int, limit: int) -> list[LoggedChange]:
        """At most ``limit`` changes of ``mount`` after number ``seq``, oldest first."""

    async def since_all(self, seq: int, limit: int) -> list[LoggedChange]:
        """At most ``limit`` changes of any mount after number ``seq``, oldest first."""

    async def oldest(self, mount: str) -> int:
        """The number of the latest change dropped from ``mount``'s log (0 when none):
        ``since`` answers fully only from there on."""

    async def newest(self, mount: str) -> int:
        """The number of the latest change of ``mount`` (0 when none)."""

    async def newest_all(self) -> int:
        """The number of the latest change of any mount (0 when none)."""

    async def epoch(self) -> str:
        """A random name of this log, made with it: numbers count within one log only."""

    def wait_for_company(self, busy: Callable[[], bool]) -> None:
        """Let appends wait a moment for others to share their commit with while
        ``busy()`` says other requests are under way (see :class:`GroupCommit`)."""

    async def close(self) -> None:
        """Release the log."""


def _logged(row: tuple[Any, ...]) -> LoggedChange:
    seq, path, kind, to, etag, author, mount, origin, collection = row
    return LoggedChange(seq, path, kind, to, etag, author, mount, origin, bool(collection))


Group = list[tuple[str, Sequence[Changed]]]
"""Appends committed together: (mount, its changes) each."""
_Pending = tuple[str, Sequence[Changed], "asyncio.Future[list[int]]"]


def _never() -> bool:
    return False


class GroupCommit:
    """Appends committed in groups: while one commit is on its way, the appends that
    come meanwhile wait and go together in the next one (one trip to the database and one
    commit for all of them), so a busy server pays a fraction of a transaction per change.

    A commit is quick next to the time between two writes, so under load few appends
    would come while one is on its way: when the last commit ended less than ``wait``
    seconds ago and ``busy()`` says other requests are under way, the next one first
    waits ``wait`` seconds for company. A lone client's writes (nothing else under way)
    never wait.

    ``commit(group, prune)`` records a group in one transaction and returns the numbers
    of each append; ``prune`` is set once in every ``_PRUNE_EVERY`` changes.
    """

    def __init__(
        self, commit: Callable[[Group, bool], Awaitable[list[list[int]]]], wait: float = GROUP_WAIT
    ) -> None:
        self._commit = commit
        self._wait = wait
        self.busy: Callable[[], bool] = _never
        self._last = float("-inf")  # when the last commit ended (loop time)
        self._appended = 0
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, mount: str, changes: Sequence[Changed]) -> list[int]:
        """Record changes; they are numbered in the order of the calls."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._pending.append((mount, changes, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Commit what is pending, group by group, until nothing is left."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if loop.time() - self._last < self._wait and self.busy():
                    await asyncio.sleep(self._wait)
                group, self._pending = self._pending, []
                self._appended += sum(len(changes) for _, changes, _ in group)
                prune = self._appended >= _PRUNE_EVERY
                if prune:
                    self._appended = 0
                try:
                    numbered = await self._commit([(m, ch) for m, ch, _ in group], prune)
                except Exception as exc:
                    self._last = loop.time()
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self._last = loop.time()
                for (_, _, future), seqs in zip(group, numbered, strict=True):
                    if not future.done():
                        future.set_result(seqs)
        finally:
            self._flusher = None

    async def drain(self) -> None:
        """Return once what is pending is committed."""
        if self._flusher is not None:
            await self._flusher


def _insert(
    group: Group, origin: str, prune: bool, keep: int, db: sqlite3.Connection
) -> list[list[int]]:
    """The group's changes, inserted in one transaction; their numbers per append."""
    now = time.time()
    out: list[list[int]] = []
    with transaction(db):
        for mount, changes in group:
            seqs = []
            for ch in changes:
                values = (
                    mount, ch.path, ch.kind, ch.to, ch.new_etag, ch.author, now, origin,
                    int(ch.is_collection),
                )  # fmt: skip
                seqs.append(int(db.execute(_INSERT, values).lastrowid or 0))
            out.append(seqs)
        if prune:
            for mount in {m for m, _ in group}:
                _prune(db, mount, keep)
    return out


def _prune(db: sqlite3.Connection, mount: str, keep: int) -> None:
    """Drop all but the latest ``keep`` changes of ``mount``, noting the newest dropped."""
    row = db.execute(
        "SELECT seq FROM changes WHERE mount = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
        (mount, keep),
    ).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM changes WHERE mount = ? AND seq <= ?", (mount, row[0]))
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("pruned:" + mount, str(row[0])))


_INSERT = (
    "INSERT INTO changes (mount, path, kind, dest, etag, author, time, origin, collection)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteChangeLog:
    """A :class:`ChangeLog` in a SQLite file of the state folder; appends are committed
    in groups (:class:`GroupCommit`).

    The processes appending take turns through a lock file beside the database (``flock``,
    waited for on the database's thread) rather than through SQLite's busy handler, which
    polls: it sleeps a millisecond or more when it finds the other's commit under way, and
    that commit takes a tenth of it."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self._db = SQLiteThread(path, _SCHEMA, "changelog", self._opened)
        self._turns = path.with_name(path.name + ".appending")
        self._turns_fd = -1
        self.origin = secrets.token_hex(8)
        self._keep = keep
        self._epoch: str | None = None
        self._groups = GroupCommit(self._commit)

    def _opened(self, _db: sqlite3.Connection) -> None:
        # A new connection may be to a database made afresh (a wiped state folder),
        # whose epoch is another; the lock file is opened again beside it.
        self._epoch = None
        self._close_turns()
        self._turns_fd = os.open(self._turns, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _close_turns(self) -> None:
        if self._turns_fd >= 0:
            os.close(self._turns_fd)
            self._turns_fd = -1

    def _insert_in_turn(self, group: Group, prune: bool, db: sqlite3.Connection) -> list[list[int]]:
        fcntl.flock(self._turns_fd, fcntl.LOCK_EX)
        try:
            return _insert(group, self.origin, prune, self._keep, db)
        finally:
            fcntl.flock(self._turns_fd, fcntl.LOCK_UN)

    async def append(self, mount: str, changes: Sequence[Changed]) -> list[int]:
        """Record changes; they are numbered in the order of the calls."""
        return await self._groups.append(mount, changes)

    def wait_for_company(self, busy: Callable[[], bool]) -> None:
        """See :meth:`ChangeLog.wait_for_company`."""
        self._groups.busy = busy

    async def _commit(self, group: Group, prune: bool) -> list[list[int]]:
        return await self._db.run(functools.partial(self._insert_in_turn, group, prune))

    async def since(self, mount: str, seq: int, limit: int) -> list[LoggedChange]:
        """The changes after ``seq``, oldest first."""
        rows = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_FIELDS} FROM changes WHERE mount = ? AND seq > ? ORDER BY seq LIMIT ?",
                (mount, seq, limit),
            ).fetchall()
        )
        return [_logged(row) for row in rows]

    async def since_all(self, seq: int, limit: int) -> list[LoggedChange]:
        """The changes of every mount after ``seq``, oldest first."""
        rows = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_FIELDS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        )
        return [_logged(row) for row in rows]

    async def oldest(self, mount: str) -> int:
        """The number of the latest change of ``mount`` that was dropped (0: none)."""
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT value FROM meta WHERE key = ?", ("pruned:" + mount,)
            ).fetchone()
        )
        return int(row[0]) if row is not None else 0

    async def newest(self, mount: str) -> int:
        """The latest number of ``mount``."""
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT MAX(seq) FROM changes WHERE mount = ?", (mount,)
            ).fetchone()
        )
        return int(row[0] or 0)

    async def newest_all(self) -> int:
        """The latest number of any mount."""
        row = await self._db.run(lambda db: db.execute("SELECT MAX(seq) FROM changes").fetchone())
        return int(row[0] or 0)

    async def epoch(self) -> str:
        """The log's random name."""
        if self._epoch is None:
            row = await self._db.run(
                lambda db: db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            )
            self._epoch = str(row[0])
        return self._epoch

    async def close(self) -> None:
        """Commit what is pending, then close the database."""
        await self._groups.drain()
        await self._db.close()
        await offload(self._close_turns)
