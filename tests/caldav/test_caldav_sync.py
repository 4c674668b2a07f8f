"""Staying in sync cheaply: getctag and sync-token move on every change of a calendar and
only then; sync-collection (RFC 6578) initial and incremental, deleted items as 404s, bad
tokens, ``limit`` with a 507 and a token that continues; items changed on disk behind
the server's back; tokens that outlive a restart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from caldav_data import (
    EVENTS,
    HEAD,
    NSDECL,
    TASKS,
    C,
    Cal,
    D,
    MakeCal,
    caldav_config,
    error_condition,
    event,
    sync_body,
    todo,
)

from davserver.app import create_app

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures


def changes(ms: Any) -> dict[str, int]:
    """href → 200 (changed, with a getetag) or 404 (deleted) of a sync answer."""
    out = {}
    for r in ms.responses:
        if r.status is not None:
            out[r.href] = r.status
        else:
            assert r.value(f"{D}getetag")
            out[r.href] = 200
    return out


# -- getctag and sync-token ---------------------------------------------------------------------


async def test_ctag_and_token_move_on_every_change_and_only_then(cal: Cal) -> None:
    seen = [await cal.ctag()]

    async def changed() -> None:
        now = await cal.ctag()
        assert now[0] not in {s[0] for s in seen}, "getctag did not change"
        assert now[1] not in {s[1] for s in seen}, "sync-token did not change"
        seen.append(now)

    async def unchanged() -> None:
        assert await cal.ctag() == seen[-1]

    await cal.put_ok(f"{EVENTS}a.ics", event("a"))  # add
    await changed()
    await cal.put_ok(f"{EVENTS}a.ics", event("a", "Edited"))  # change
    await changed()
    await cal.put_ok(f"{EVENTS}b.ics", event("b"))
    await changed()
    assert (await cal.request("DELETE", f"{EVENTS}b.ics"))[0] == 204  # delete
    await changed()
    body = (
        f"{HEAD}<D:propertyupdate {NSDECL}><D:set><D:prop><A:calendar-color>#00FF00FF"
        "</A:calendar-color></D:prop></D:set></D:propertyupdate>"
    )
    assert (await cal.request("PROPPATCH", EVENTS, body))[0] == 207  # the calendar itself
    await changed()
    # Reads, refusals and changes elsewhere leave it alone.
    await cal.request("GET", f"{EVENTS}a.ics")
    await cal.request("PROPFIND", EVENTS, Depth="1")
    await cal.sync()
    await cal.put(f"{EVENTS}bad.ics", b"garbage")
    await cal.put(f"{EVENTS}a.ics", event("a", "x"), If_Match='"stale"')
    await cal.put_ok(f"{TASKS}t.ics", todo("t"))
    await unchanged()


async def test_each_calendar_has_its_own_ctag(cal: Cal) -> None:
    tasks = await cal.ctag(TASKS)
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    assert await cal.ctag(TASKS) == tasks


# -- sync-collection ----------------------------------------------------------------------------


async def test_initial_sync_with_an_empty_token_returns_everything(cal: Cal) -> None:
    """DAVx5 sends an empty <sync-token/> (CLIENTS 20); Thunderbird adds Depth: 1, which
    is ignored (CLIENTS 19)."""
    names = [f"{EVENTS}{i}.ics" for i in range(5)]
    etags = {n: await cal.put_ok(n, event(f"u{i}")) for i, n in enumerate(names)}
    await cal.put_ok(f"{EVENTS}gone.ics", event("gone"))
    await cal.request("DELETE", f"{EVENTS}gone.ics")
    for headers in ({}, {"Depth": "1"}, {"Depth": "0"}):
        ms = await cal.sync(**headers)
        assert {r.href: r.value(f"{D}getetag") for r in ms.responses} == etags
        assert ms.sync_token == (await cal.ctag())[1]
    # A request without any sync-token element is an initial sync as well.
    body = (
        f"{HEAD}<D:sync-collection {NSDECL}><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    ms = await cal.report(EVENTS, body, depth=None)
    assert set(ms.by_href()) == set(names)


async def test_initial_sync_of_an_empty_calendar(cal: Cal) -> None:
    ms = await cal.sync(TASKS)
    assert ms.responses == []
    assert ms.sync_token


async def test_incremental_sync_after_add_change_and_delete(cal: Cal) -> None:
    for name in ("keep", "change", "delete"):
        await cal.put_ok(f"{EVENTS}{name}.ics", event(name))
    token = (await cal.sync()).sync_token
    assert token
    # Nothing happened: nothing to report, the same token.
    ms = await cal.sync(token=token)
    assert ms.responses == []
    assert ms.sync_token == token
    etag = await cal.put_ok(f"{EVENTS}change.ics", event("change", "Changed"))
    assert (await cal.request("DELETE", f"{EVENTS}delete.ics"))[0] == 204
    new = await cal.put_ok(f"{EVENTS}new.ics", event("new"))
    ms = await cal.sync(token=token)
    assert changes(ms) == {
        f"{EVENTS}change.ics": 200,
        f"{EVENTS}delete.ics": 404,
        f"{EVENTS}new.ics": 200,
    }
    assert ms[f"{EVENTS}change.ics"].value(f"{D}getetag") == etag
    assert ms[f"{EVENTS}new.ics"].value(f"{D}getetag") == new
    assert ms.sync_token != token
    # From the new token: nothing again; an old token still works.
    assert (await cal.sync(token=ms.sync_token)).responses == []
    assert changes(await cal.sync(token=token)) == changes(ms)


async def test_sync_with_calendar_data(cal: Cal) -> None:
    token = (await cal.sync()).sync_token
    data = event("withdata", "Data")
    await cal.put_ok(f"{EVENTS}d.ics", data)
    body = sync_body(token, prop="<D:getetag/><C:calendar-data/>")
    ms = await cal.report(EVENTS, body, depth=None)
    assert ms[f"{EVENTS}d.ics"].value(f"{C}calendar-data") == data.decode().replace("\r\n", "\n")


async def test_deleted_then_recreated_item_is_reported_as_present(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}x.ics", event("x"))
    token = (await cal.sync()).sync_token
    await cal.request("DELETE", f"{EVENTS}x.ics")
    await cal.put_ok(f"{EVENTS}x.ics", event("x", "Back"))
    assert changes(await cal.sync(token=token)) == {f"{EVENTS}x.ics": 200}


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "http://davserver.org/ns/sync/",
        "http://davserver.org/ns/sync/abc",
        "http://example.com/ns/sync/1",
        "future",  # a well-formed token with a number never handed out
        "other-index",  # a well-formed token of another index (a wiped state folder)
    ],
)
async def test_unknown_token_is_403_valid_sync_token(cal: Cal, token: str) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    current = (await cal.ctag())[1]
    base, _, seq = current.rpartition("-")
    if token == "future":
        token = f"{base}-{int(seq) + 1000}"
    elif token == "other-index":
        prefix, _, epoch = base.rpartition("/")
        token = f"{prefix}/{'0' if epoch[0] != '0' else '1'}{epoch[1:]}-{seq}"
    status, _, data = await cal.request("REPORT", EVENTS, sync_body(token))
    assert status == 403
    assert error_condition(data) == [f"{D}valid-sync-token"]


async def test_sync_collection_on_an_item_or_a_home_is_refused(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    for path in (f"{EVENTS}a.ics", "/caldav/calendars/user/"):
        status, _, _ = await cal.request("REPORT", path, sync_body())
        assert status == 403, path


# -- limit ---------------------------------------------------------------------------------------


def truncation(ms: Any, path: str = EVENTS) -> list[str]:
    """The hrefs of the 507 responses, checking each names the collection with
    number-of-matches-within-limits."""
    out = []
    for r in ms.responses:
        if r.status == 507:
            assert r.href == path
            assert r.error is not None
            assert r.error.find(f"{D}number-of-matches-within-limits") is not None
            out.append(r.href)
    return out


@pytest.mark.parametrize("initial", [True, False])
async def test_limit_gives_a_507_and_a_token_that_continues(cal: Cal, initial: bool) -> None:
    """DAVx5's <limit><nresults> (CLIENTS 20): at most N members, a 507 for the
    collection, and a token from which the next request goes on."""
    start = "" if initial else (await cal.sync()).sync_token
    names = {f"{EVENTS}{i:02d}.ics" for i in range(7)}
    for i, name in enumerate(sorted(names)):
        await cal.put_ok(name, event(f"u{i}"))
    got: set[str] = set()
    token = start
    rounds = 0
    while True:
        rounds += 1
        assert rounds < 10
        ms = await cal.sync(token=token, limit=3)
        members = [r for r in ms.responses if r.status != 507]
        assert len(members) <= 3
        got.update(r.href for r in members)
        assert ms.sync_token
        token = ms.sync_token
        if not truncation(ms):
            break
    assert got == names
    assert rounds == 3  # 3 + 3 + 1
    assert token == (await cal.ctag())[1]
    assert (await cal.sync(token=token)).responses == []


async def test_limit_above_the_number_of_changes_is_no_truncation(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    ms = await cal.sync(limit=10)
    assert truncation(ms) == []
    assert changes(ms) == {f"{EVENTS}a.ics": 200}


# -- changes behind the server's back ----------------------------------------------------------


async def test_items_changed_on_disk_are_seen_on_the_next_request(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}edited.ics", event("edited", "Before"))
    await cal.put_ok(f"{EVENTS}removed.ics", event("removed"))
    ctag, token = await cal.ctag()
    folder = cal.folder()
    (folder / "dropped.ics").write_bytes(event("dropped", "Dropped in"))
    path = folder / "edited.ics"
    path.write_bytes(event("edited", "After, from another tool"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    (folder / "removed.ics").unlink()
    # The ctag moved.
    new_ctag, new_token = await cal.ctag()
    assert (new_ctag, new_token) != (ctag, token)
    # sync-collection reports exactly these three.
    assert changes(await cal.sync(token=token)) == {
        f"{EVENTS}dropped.ics": 200,
        f"{EVENTS}edited.ics": 200,
        f"{EVENTS}removed.ics": 404,
    }
    # multiget serves the new bytes; the UID of the dropped file is known.
    ms = await cal.multiget(EVENTS, [f"{EVENTS}edited.ics", f"{EVENTS}dropped.ics"])
    assert "After, from another tool" in ms[f"{EVENTS}edited.ics"].value(f"{C}calendar-data")
    status, _, body = await cal.put(f"{EVENTS}dup.ics", event("dropped"))
    assert status == 409
    assert f"{EVENTS}dropped.ics".encode() in body


async def test_a_file_changed_on_disk_shows_in_multiget_and_query(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}a.ics", event("a", "Old"))
    (cal.folder() / "a.ics").write_bytes(event("a", "New title"))
    ms = await cal.multiget(EVENTS, [f"{EVENTS}a.ics"])
    assert "New title" in ms.responses[0].value(f"{C}calendar-data")
    body = (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter '
        'name="SUMMARY"><C:text-match>new title</C:text-match></C:prop-filter></C:comp-filter>'
        "</C:comp-filter></C:filter></C:calendar-query>"
    )
    ms = await cal.report(EVENTS, body)
    assert [r.href for r in ms.responses] == [f"{EVENTS}a.ics"]


async def test_a_broken_file_on_disk_does_not_break_the_calendar(cal: Cal) -> None:
    await cal.put_ok(f"{EVENTS}good.ics", event("good"))
    (cal.folder() / "broken.ics").write_bytes(b"not a calendar at all")
    ms = await cal.sync()
    assert set(changes(ms)) == {f"{EVENTS}good.ics", f"{EVENTS}broken.ics"}
    body = (
        f"{HEAD}<C:calendar-query {NSDECL}><D:prop><D:getetag/></D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )
    ms = await cal.report(EVENTS, body)
    assert [r.href for r in ms.responses] == [f"{EVENTS}good.ics"]
    # A client may overwrite the broken file with a valid object.
    assert (await cal.put(f"{EVENTS}broken.ics", event("fixed")))[0] == 204


# -- tokens outlive a restart (Thunderbird goes read-only on a bad token, CLIENTS 19) ---------


async def test_tokens_stay_valid_across_a_restart(
    aiohttp_client: Any, tmp_path: Path, make_cal: MakeCal
) -> None:
    cal = await make_cal()
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    ctag, token = await cal.ctag()
    await cal.client.close()
    client = await aiohttp_client(create_app(caldav_config(tmp_path)))
    again = Cal(client, tmp_path, "filesystem")
    assert await again.ctag() == (ctag, token)
    assert (await again.sync(token=token)).responses == []
    await again.put_ok(f"{EVENTS}b.ics", event("b"))
    assert changes(await again.sync(token=token)) == {f"{EVENTS}b.ics": 200}


async def test_changes_made_while_the_server_was_down_are_found(
    aiohttp_client: Any, tmp_path: Path, make_cal: MakeCal
) -> None:
    cal = await make_cal()
    await cal.put_ok(f"{EVENTS}a.ics", event("a"))
    await cal.put_ok(f"{EVENTS}b.ics", event("b"))
    token = (await cal.sync()).sync_token
    await cal.client.close()
    (cal.folder() / "b.ics").unlink()
    (cal.folder() / "c.ics").write_bytes(event("c"))
    client = await aiohttp_client(create_app(caldav_config(tmp_path)))
    again = Cal(client, tmp_path, "filesystem")
    assert changes(await again.sync(token=token)) == {
        f"{EVENTS}b.ics": 404,
        f"{EVENTS}c.ics": 200,
    }


async def test_tokens_of_a_wiped_state_folder_are_refused(
    aiohttp_client: Any, tmp_path: Path, make_cal: MakeCal
) -> None:
    """The state folder holds no user data and may be wiped; the index then starts
    afresh, and a client's old token must make it resynchronise (403), never silently
    miss a change. Nor may a ctag repeat."""
    cal = await make_cal()
    for name in "abcdef":
        await cal.put_ok(f"{EVENTS}{name}.ics", event(name))
    await cal.put_ok(f"{EVENTS}a.ics", event("a", "changed"))
    early = (await cal.sync()).sync_token
    await cal.put_ok(f"{EVENTS}g.ics", event("g"))
    ctag, _ = await cal.ctag()
    await cal.client.close()
    shutil.rmtree(tmp_path / "state")
    (cal.folder() / "h.ics").write_bytes(event("h"))  # changed while the index was gone
    client = await aiohttp_client(create_app(caldav_config(tmp_path)))
    again = Cal(client, tmp_path, "filesystem")
    for _ in range(3):  # enough new changes that sequence numbers catch up with old ones
        await again.put_ok(f"{EVENTS}b.ics", event("b", "edited"))
    status, _, data = await again.request("REPORT", EVENTS, sync_body(early))
    assert status == 403, data
    assert error_condition(data) == [f"{D}valid-sync-token"]
    assert (await again.ctag())[0] != ctag
    ms = await again.sync()
    assert len(ms.responses) == 8
