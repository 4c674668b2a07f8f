"""Address books over the same index and change feed as calendars: cards edited on disk or
pushed to git are seen on the next request (sync-collection, ctag, queries), a file that
is not a vCard is listed but matches no query, and the vCard summaries outlive a restart
(an index of another format is summarized again without counting as a change)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from caldav_data import Cal, MakeCal, caldav_config
from carddav_data import CONTACTS, CR, books_folder, names, put_card_ok, query_body, vcard
from gitrepo import git

from davserver.app import create_app

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

BY_EMAIL = query_body(
    '<CR:prop-filter name="EMAIL"><CR:text-match>example</CR:text-match></CR:prop-filter>'
)


async def test_cards_changed_on_disk_are_seen_on_the_next_request(cal: Cal) -> None:
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a", "Ann", "EMAIL:ann@example.com"))
    first = await cal.sync(CONTACTS)
    ctag = await cal.ctag(CONTACTS)
    folder = books_folder(cal)
    (folder / "b.vcf").write_bytes(vcard("b", "Bob", "EMAIL:bob@example.com"))
    (folder / "a.vcf").write_bytes(vcard("a", "Ann", "EMAIL:ann@elsewhere.org"))
    (folder / "junk.vcf").write_bytes(b"not a card\n")
    assert await cal.ctag(CONTACTS) != ctag
    second = await cal.sync(CONTACTS, first.sync_token or "")
    assert names(second) == {"a.vcf", "b.vcf", "junk.vcf"}
    assert names(await cal.report(CONTACTS, BY_EMAIL)) == {"b.vcf"}
    assert names(await cal.report(CONTACTS, query_body(""))) == {"a.vcf", "b.vcf"}
    (folder / "b.vcf").unlink()
    third = await cal.sync(CONTACTS, second.sync_token or "")
    assert third.by_href()[f"{CONTACTS}b.vcf"].status == 404
    # A client may overwrite the file that is not a card.
    await put_card_ok(cal, f"{CONTACTS}junk.vcf", vcard("j", "Junk", "EMAIL:j@example.com"))
    assert names(await cal.report(CONTACTS, BY_EMAIL)) == {"junk.vcf"}


async def test_cards_pushed_to_git_are_seen_on_the_next_request(
    make_cal: MakeCal, tmp_path: Path
) -> None:
    cal = await make_cal(backend="git")
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a", "Ann", "EMAIL:ann@example.com"))
    token = (await cal.sync(CONTACTS)).sync_token or ""
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(cal.store), str(work))
    book = work / ".addressbooks" / "user" / "contacts"
    (book / "p.vcf").write_bytes(vcard("p", "Pushed", "EMAIL:pushed@example.com"))
    (book / "a.vcf").unlink()
    git(work, "add", "-A")
    git(work, "commit", "-qm", "from elsewhere")
    git(work, "push", "-q", "origin", "HEAD:main")
    ms = await cal.sync(CONTACTS, token)
    by = ms.by_href()
    assert set(by) == {f"{CONTACTS}p.vcf", f"{CONTACTS}a.vcf"}
    assert by[f"{CONTACTS}a.vcf"].status == 404
    assert names(await cal.report(CONTACTS, BY_EMAIL)) == {"p.vcf"}


async def test_summaries_outlive_a_restart_and_an_old_format_is_redone_quietly(
    aiohttp_client: Any, tmp_path: Path, make_cal: MakeCal
) -> None:
    cal = await make_cal()
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a", "Ann", "EMAIL:ann@example.com"))
    ctag = await cal.ctag(CONTACTS)
    await cal.client.close()
    [db_file] = (tmp_path / "state").glob("caldav*.sqlite3")
    with sqlite3.connect(db_file) as db:
        [(card,)] = db.execute("SELECT card FROM items").fetchall()
        assert '"uid":"a"' in card
        db.execute("UPDATE items SET card = '{\"format\": 0}'")
    again = Cal(await aiohttp_client(create_app(caldav_config(tmp_path))), tmp_path, "filesystem")
    assert names(await again.report(CONTACTS, BY_EMAIL)) == {"a.vcf"}
    assert await again.ctag(CONTACTS) == ctag
    ms = await again.propfind(CONTACTS, f"{CR}addressbook-description")
    assert ms.responses[0].props[f"{CR}addressbook-description"].status == 404
