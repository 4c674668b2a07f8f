"""Every write of more than one statement to a SQLite state database is one transaction
(runtime/sqlite.py ``transaction``): when a later statement fails, nothing of the earlier
ones is left, and the same write succeeds once the cause is gone.

The failure is SQLite's own: a trigger another connection adds to the database refuses
the statement that comes after the others (``RAISE(ABORT)``). Each case first shows that
the write changes the database when nothing refuses it, so "nothing changed" is not
the trivial answer of a write that did nothing anyway."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from davserver.caldav.store.index import CalendarIndex
from davserver.caldav.store.items import Item
from davserver.ical.spans import Span
from davserver.ical.summary import Summary
from davserver.locks.manager import Lock
from davserver.locks.sqlite_store import SQLiteLockStore
from davserver.runtime.sqlite import transaction
from davserver.scheduling.records import Record, SQLiteRecords
from davserver.state import checksums as checksums_module
from davserver.state.changelog import Changed, SQLiteChangeLog
from davserver.state.checksums import SQLiteChecksums
from davserver.state.subscriptions import SQLiteSubscriptionStore, Subscription

Tables = dict[str, list[tuple[Any, ...]]]


def contents(path: Path) -> Tables:
    """Every row of every table, sorted."""
    with sqlite3.connect(path) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {name: sorted(db.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names}


def refuse(path: Path, trigger: str) -> None:
    """Add the trigger ``refuse`` (``trigger`` is what comes after CREATE TRIGGER refuse)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"CREATE TRIGGER refuse {trigger} BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.close()


def allow(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER refuse")
    db.close()


def item(etag: str) -> Item:
    summary = Summary("uid-1", "VEVENT", (Span(1000.0, 4600.0, 0, 0),), 0.0, 2e9)
    return Item(etag, summary, 120, 1.0, 1.0, "text/calendar")


def lock(token: str, expires: float) -> Lock:
    return Lock(
        token=token, namespace="/dav", root="a.txt", scope="exclusive", depth="0", owner=b"",
        timeout=60, expires=expires, principal="alice", collection=False,
    )  # fmt: skip


def subscription(sub_id: str, expires: float) -> Subscription:
    endpoint = "https://push.example/one"
    return Subscription(sub_id, "/dav", "docs", "alice", endpoint, "key", "auth", 1, 0, expires)


def record(path: str) -> Record:
    return Record(path, "ann", "m1", "organizer", path.encode())


async def in_turn(*steps: Awaitable[object]) -> None:
    for step in steps:
        await step


@dataclass
class Case:
    """A store, what it holds first, the write of several statements, and the trigger
    that refuses one of its later statements."""

    open: Callable[[Path], Any]
    setup: Callable[[Any], Awaitable[object]]
    write: Callable[[Any], Awaitable[object]]
    trigger: str


CAL = "alice/calendar"
CASES = {
    "index update": Case(
        lambda path: CalendarIndex(path),
        lambda index: index.update(CAL, {"a.ics": item('"a"')}, []),
        lambda index: index.update(CAL, {"b.ics": item('"b"')}, ["a.ics"]),
        "BEFORE INSERT ON changes",
    ),
    "index forget": Case(
        lambda path: CalendarIndex(path),
        lambda index: index.update(CAL, {"a.ics": item('"a"'), "b.ics": item('"b"')}, []),
        lambda index: index.forget(CAL),
        "BEFORE DELETE ON items",
    ),
    "change log append": Case(
        lambda path: SQLiteChangeLog(path),
        lambda log: log.append("/dav", [Changed("old", "created", False, "alice")]),
        lambda log: log.append(
            "/dav",
            [Changed("first", "created", False, "alice"), Changed("second", "created", False, "a")],
        ),
        "BEFORE INSERT ON changes WHEN NEW.path = 'second'",
    ),
    "checksums put and prune": Case(
        lambda path: SQLiteChecksums(path, keep=1),
        lambda sums: sums.put("/dav", '"1"', {"md5": "m1", "sha1": "s1"}),
        lambda sums: sums.put("/dav", '"2"', {"md5": "m2", "sha1": "s2"}),
        "BEFORE DELETE ON checksums",
    ),
    "records move": Case(
        lambda path: SQLiteRecords(path),
        lambda records: in_turn(records.put(record("a.ics")), records.put(record("b.ics"))),
        lambda records: records.move("a.ics", "b.ics"),
        "BEFORE UPDATE ON objects",
    ),
    "records delete": Case(
        lambda path: SQLiteRecords(path),
        lambda records: in_turn(records.put(record("a.ics")), records.put(record("b.ics"))),
        lambda records: records.delete(["a.ics", "b.ics"]),
        "BEFORE DELETE ON objects WHEN OLD.path = 'b.ics'",
    ),
    "locks delete": Case(
        lambda path: SQLiteLockStore(path),
        lambda locks: in_turn(locks.save(lock("t1", 2e9)), locks.save(lock("t2", 2e9))),
        lambda locks: locks.delete(["t1", "t2"]),
        "BEFORE DELETE ON locks WHEN OLD.token = 't2'",
    ),
    "lock insert": Case(  # the expired locks are dropped first
        lambda path: SQLiteLockStore(path),
        lambda locks: locks.save(lock("old", 1.0)),
        lambda locks: locks.insert_unless(lock("new", 2e9), lambda live: None, time.time()),
        "BEFORE INSERT ON locks",
    ),
    "subscription register": Case(  # an expired one of the endpoint makes way first
        lambda path: SQLiteSubscriptionStore(path),
        lambda subs: subs.register(subscription("old", 1.0), 10),
        lambda subs: subs.register(subscription("new", 2e9), 10),
        "BEFORE INSERT ON subscriptions",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_write_that_fails_midway_leaves_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checksums_module, "PRUNE_EVERY", 1)
    path = tmp_path / "state.sqlite3"
    store = case.open(path)
    try:
        await case.setup(store)
        before = contents(path)
        refuse(path, case.trigger)
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            await case.write(store)
        assert contents(path) == before
        allow(path)
        await case.write(store)
        assert contents(path) != before
    finally:
        await store.close()


def test_a_transaction_rolls_back_whatever_ends_it(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    with pytest.raises(KeyError), transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
        raise KeyError("not a database error")
    assert not db.in_transaction
    with transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
    assert db.execute("SELECT x FROM t").fetchall() == [(2,)]
    db.close()


def test_transactions_do_not_nest(tmp_path: Path) -> None:
    """A nested one is refused at once, and the outer one rolled back with it."""
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"), transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
        with transaction(db):
            db.execute("INSERT INTO t VALUES (2)")
    assert not db.in_transaction
    assert db.execute("SELECT x FROM t").fetchall() == []
    db.close()
