"""The calendar index: queries read only the items in their answer, unbounded recurrences
are enumerated to a horizon and evaluated beyond it, the change feed finds changes made
behind the server's back without listing the calendar, and an index written by an older
version is summarized again without counting as a change."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from caldav_data import EVENTS, HEAD, NSDECL, Cal, MakeCal, caldav_config, event, ical, vevent
from hypothesis import given
from hypothesis import strategies as st

from davserver.app import ROUTER_KEY, create_app
from davserver.caldav.store.layout import CalendarStore
from davserver.ical.spans import INF, Span, overlaps, pack, unpack, unpack_near
from davserver.ical.summary import MAX_SPANS, summarize

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

DAILY = ical(*vevent("daily", "Daily", "20200101T090000Z", "20200101T093000Z", "RRULE:FREQ=DAILY"))


def week_query(start: str, end: str, data: str = "<C:calendar-data/>") -> str:
    return (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/>{data}</D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )


def store_of(cal: Cal) -> Any:
    """The CalendarStore of the test server's CalDAV mount."""
    router = cal.client.app[ROUTER_KEY]
    [store] = [
        m.storage for m in router.mounts if isinstance(getattr(m, "storage", None), CalendarStore)
    ]
    return store


def test_an_unbounded_rule_is_enumerated_to_a_horizon() -> None:
    now = 1_780_000_000.0  # 2026
    summary = summarize(DAILY, now)
    assert len(summary.spans) == MAX_SPANS
    assert summary.until < INF
    assert summary.since <= now - 300 * 86400  # the years around now are covered
    assert summary.covers(now, now + 7 * 86400)
    assert not summary.covers(now, now + 30 * 365 * 86400)
    bounded = summarize(event("b", "Weekly", "RRULE:FREQ=WEEKLY;COUNT=10"), now)
    assert len(bounded.spans) == 10 and bounded.covers(0, now * 2)


_times = st.sampled_from([-INF, INF, 0.0, 86400.0]) | st.floats(-1e9, 1e9)
_spans = st.builds(
    lambda a, b, flags, source: Span(min(a, b), max(a, b), flags, source),
    _times, _times, st.integers(0, 7), st.integers(0, 3),
)  # fmt: skip


@given(st.lists(_spans, max_size=30), _times, _times)
def test_the_spans_near_a_range_are_all_that_can_meet_it(
    spans: list[Span], a: float, b: float
) -> None:
    """unpack_near keeps, in order, every span the time-range test accepts, edges and
    open ends included, and drops only spans that do not reach into the range."""
    lo, hi = min(a, b), max(a, b)
    packed = pack(spans)
    near = unpack_near(packed, lo, hi)
    assert [s for s in unpack(packed) if overlaps(s, lo, hi)] == [
        s for s in near if overlaps(s, lo, hi)
    ]
    assert all(s.end >= lo and s.start <= hi for s in near)
    assert [s for s in unpack(packed) if s.end >= lo and s.start <= hi] == list(near)


async def test_queries_beyond_the_horizon_are_evaluated_exactly(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}daily.ics", DAILY)
    await cal.put_ok(
        f"{EVENTS}once.ics", event("once", start="20260105T100000Z", end="20260105T110000Z")
    )
    for start, end in (("20200301T000000Z", "20200302T000000Z"), ("20260105T000000Z", "20260106T000000Z"),
                       ("21500601T000000Z", "21500601T120000Z")):  # fmt: skip
        ms = await cal.report(EVENTS, week_query(start, end, ""))
        got = {r.href.rpartition("/")[2] for r in ms.responses}
        assert "daily.ics" in got, (start, end)
    ms = await cal.report(EVENTS, week_query("20191231T000000Z", "20200101T000000Z", ""))
    assert ms.responses == []


async def test_a_query_reads_only_the_items_it_answers_with(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(1, 29):
        start = f"202602{day:02d}T100000Z"
        await cal.put_ok(
            f"{EVENTS}d{day}.ics", event(f"d{day}", start=start, end=start.replace("T10", "T11"))
        )
    store = store_of(cal)
    reads: list[str] = []
    inner_read = store.inner.read

    async def counting(path: str, **kw: Any) -> Any:
        reads.append(path)
        return await inner_read(path, **kw)

    monkeypatch.setattr(store.inner, "read", counting)
    store.bodies = type(store.bodies)()  # a cold cache
    ms = await cal.report(EVENTS, week_query("20260210T000000Z", "20260213T000000Z"))
    assert len(ms.responses) == 3
    assert sorted(p.rpartition("/")[2] for p in reads) == ["d10.ics", "d11.ics", "d12.ics"]
    reads.clear()
    ms = await cal.report(EVENTS, week_query("20260201T000000Z", "20260301T000000Z", ""))
    assert len(ms.responses) == 28 and reads == []  # ETags come from the index


async def test_changes_on_disk_are_found_without_listing_the_calendar(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260105T100000Z", end="20260105T110000Z"))
    await cal.ctag()
    store = store_of(cal)
    listings: list[str] = []
    inner_children = store.inner.children

    def counting(path: str, **kw: Any) -> Any:
        listings.append(path)
        return inner_children(path, **kw)

    monkeypatch.setattr(store.inner, "children", counting)
    (cal.folder() / "b.ics").write_bytes(
        event("b", start="20260106T100000Z", end="20260106T110000Z")
    )
    (cal.folder() / "a.ics").write_bytes(
        event("a", "Renamed", start="20260107T100000Z", end="20260107T110000Z")
    )
    ms = await cal.report(EVENTS, week_query("20260106T000000Z", "20260108T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"a.ics", "b.ics"}
    (cal.folder() / "b.ics").unlink()
    ms = await cal.report(EVENTS, week_query("20260101T000000Z", "20260201T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"a.ics"}
    assert listings == []


async def test_a_feed_that_cannot_tell_makes_the_store_list_the_calendar(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    store = store_of(cal)

    async def lost(calendar: str) -> None:
        return None  # as after an inotify queue overflow

    monkeypatch.setattr(store._feed, "changes", lost)
    (cal.folder() / "b.ics").write_bytes(event("b"))
    ms = await cal.report(EVENTS, week_query("20260105T000000Z", "20260106T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"a.ics", "b.ics"}


async def test_propfind_lists_items_from_the_index_and_folders_from_the_store(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    (cal.folder() / "sub").mkdir()
    ms = await cal.propfind(EVENTS, "{DAV:}getetag", depth="1")
    assert {r.href for r in ms.responses} == {EVENTS, f"{EVENTS}a.ics", f"{EVENTS}sub/"}


async def test_an_older_index_is_summarized_again_without_a_change(
    aiohttp_client: Any, tmp_path: Path, make_cal: MakeCal
) -> None:
    cal = await make_cal()
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260105T100000Z", end="20260105T110000Z"))
    ctag, token = await cal.ctag()
    await cal.client.close()
    [db_file] = (tmp_path / "state").glob("caldav*.sqlite3")
    with sqlite3.connect(db_file) as db:
        db.execute("UPDATE items SET spans = NULL, since = NULL, until = NULL")
    client = await aiohttp_client(create_app(caldav_config(tmp_path)))
    again = Cal(client, tmp_path, "filesystem")
    ms = await again.report(EVENTS, week_query("20260105T000000Z", "20260106T000000Z", ""))
    assert [r.href for r in ms.responses] == [f"{EVENTS}a.ics"]
    assert await again.ctag() == (ctag, token)


async def test_git_calendars_follow_commits_made_elsewhere(make_cal: MakeCal) -> None:
    cal = await make_cal(backend="git")
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260105T100000Z", end="20260105T110000Z"))
    ms = await cal.report(EVENTS, week_query("20260105T000000Z", "20260106T000000Z", ""))
    assert [r.href for r in ms.responses] == [f"{EVENTS}a.ics"]
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260107T100000Z", end="20260107T110000Z"))
    ms = await cal.report(EVENTS, week_query("20260105T000000Z", "20260106T000000Z", ""))
    assert ms.responses == []


async def test_the_stores_own_writes_are_not_looked_at_again(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT reports its item itself: the next request neither stats nor lists it, yet an
    edit behind the server's back right after the PUT is found."""
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260105T100000Z", end="20260105T110000Z"))
    await cal.ctag()
    store = store_of(cal)
    looked: list[str] = []
    inner_stat, inner_children = store.inner.stat, store.inner.children

    async def stat(path: str, **kw: Any) -> Any:
        if path.endswith(".ics"):  # an item (the calendar itself is stat'ed by each request)
            looked.append(path)
        return await inner_stat(path, **kw)

    def children(path: str, **kw: Any) -> Any:
        looked.append(f"list {path}")
        return inner_children(path, **kw)

    monkeypatch.setattr(store.inner, "stat", stat)
    monkeypatch.setattr(store.inner, "children", children)
    await cal.put_ok(f"{EVENTS}b.ics", event("b", start="20260106T100000Z", end="20260106T110000Z"))
    await cal.put_ok(
        f"{EVENTS}a.ics", event("a", "Moved", start="20260107T100000Z", end="20260107T110000Z")
    )
    looked.clear()
    ms = await cal.report(EVENTS, week_query("20260101T000000Z", "20260201T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"a.ics", "b.ics"}
    assert looked == []
    await cal.put_ok(f"{EVENTS}c.ics", event("c", start="20260108T100000Z", end="20260108T110000Z"))
    looked.clear()
    (cal.folder() / "c.ics").write_bytes(
        event("c", "Edited", start="20260301T100000Z", end="20260301T110000Z")
    )
    ms = await cal.report(EVENTS, week_query("20260301T000000Z", "20260302T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"c.ics"}
    assert {p.rpartition("/")[2] for p in looked} == {"c.ics"}


async def test_an_index_write_that_fails_makes_the_store_list_the_calendar(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed leaves out the store's own writes: when the index could not take one in,
    the next request lists the calendar and finds the item there."""
    await cal.put_ok(f"{EVENTS}a.ics", event("a", start="20260105T100000Z", end="20260105T110000Z"))
    store = store_of(cal)
    update = store.index.update

    async def failing(*args: Any, **kw: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store.index, "update", failing)
    status, _, _ = await cal.put(
        f"{EVENTS}b.ics", event("b", start="20260106T100000Z", end="20260106T110000Z")
    )
    assert status == 503  # stored, but what should follow did not
    assert (cal.folder() / "b.ics").exists()
    monkeypatch.setattr(store.index, "update", update)
    ms = await cal.report(EVENTS, week_query("20260101T000000Z", "20260201T000000Z", ""))
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"a.ics", "b.ics"}


async def test_a_put_into_a_stored_calendar_does_not_look_for_the_home(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user without a home gets one, with its default calendar, from a PUT into that
    (virtual) calendar; once the calendar is stored, a PUT does not look for the home."""
    store = store_of(cal)
    looked: list[str] = []
    inner_stat = store.inner.stat

    async def stat(path: str, **kw: Any) -> Any:
        looked.append(path)
        return await inner_stat(path, **kw)

    monkeypatch.setattr(store.inner, "stat", stat)
    assert not cal.folder().exists()
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    assert "user" in looked and (cal.folder() / "a.ics").exists()
    looked.clear()
    await cal.put_ok(f"{EVENTS}b.ics", event("b"))
    assert "user" not in looked and "user/calendar" in looked
    assert (cal.folder() / "b.ics").exists()
