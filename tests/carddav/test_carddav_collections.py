"""Address books as collections: extended MKCOL (RFC 5689, RFC 6352 §6.3.1), PROPPATCH,
no nested address books, COPY and MOVE under CardDAV's rules, DELETE; the index follows
each change (sync tokens, ctags)."""

from __future__ import annotations

import pytest
from caldav_data import CS, HOME, Cal, D, error_condition, event
from carddav_data import BOOK_HOME, CONTACTS, CR, NS, books_folder, names, put_card_ok, vcard
from helpers import snapshot

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

WORK = f"{BOOK_HOME}work/"
ADDRESSBOOK_TYPE = "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"


def mkcol_body(props: str = "", types: str = ADDRESSBOOK_TYPE) -> str:
    return f"<D:mkcol {NS}><D:set><D:prop>{types}{props}</D:prop></D:set></D:mkcol>"


async def test_extended_mkcol_makes_an_address_book_with_its_properties(cal: Cal) -> None:
    props = (
        "<D:displayname>Work</D:displayname>"
        '<CR:addressbook-description xml:lang="en">Colleagues</CR:addressbook-description>'
    )
    status, _, _ = await cal.request("MKCOL", WORK, mkcol_body(props))
    assert status == 201
    ms = await cal.propfind(
        WORK, f"{D}resourcetype", f"{D}displayname", f"{CR}addressbook-description"
    )
    r = ms.responses[0]
    assert r.ok(f"{D}resourcetype").find(f"{CR}addressbook") is not None
    assert r.value(f"{D}displayname") == "Work"
    assert r.value(f"{CR}addressbook-description") == "Colleagues"
    # The home was made with it, default book included.
    listing = await cal.propfind(BOOK_HOME, f"{D}displayname", depth="1")
    assert set(listing.by_href()) == {BOOK_HOME, CONTACTS, WORK}
    assert books_folder(cal, "work").is_dir() and books_folder(cal).is_dir()
    await put_card_ok(cal, f"{WORK}a.vcf", vcard("a"))


async def test_a_plain_mkcol_in_the_home_makes_an_address_book(cal: Cal) -> None:
    assert (await cal.request("MKCOL", WORK))[0] == 201
    r = (await cal.propfind(WORK, f"{D}resourcetype")).responses[0]
    assert r.ok(f"{D}resourcetype").find(f"{CR}addressbook") is not None


@pytest.mark.parametrize(
    ("path", "body", "status", "condition"),
    [
        (f"{CONTACTS}nested/", mkcol_body(), 403, f"{CR}addressbook-collection-location-ok"),
        (f"{CONTACTS}nested/", None, 403, f"{CR}addressbook-collection-location-ok"),
        (BOOK_HOME, mkcol_body(), 403, f"{CR}addressbook-collection-location-ok"),
        ("/caldav/addressbooks/", mkcol_body(), 403, f"{CR}addressbook-collection-location-ok"),
        (WORK, mkcol_body(types="<D:resourcetype><D:collection/></D:resourcetype>"), 403,
         f"{D}valid-resourcetype"),
        (WORK, mkcol_body("<CR:max-resource-size>5</CR:max-resource-size>"), 403,
         f"{D}cannot-modify-protected-property"),
        (CONTACTS, mkcol_body(), 405, f"{D}resource-must-be-null"),
        (f"{HOME}book/", mkcol_body(), 403, f"{D}valid-resourcetype"),
    ],
)  # fmt: skip
async def test_mkcol_refusals_change_nothing(
    cal: Cal, path: str, body: str | None, status: int, condition: str
) -> None:
    before = snapshot(cal.store)
    got, _, data = await cal.request("MKCOL", path, body)
    assert got == status, data
    assert error_condition(data) == [condition]
    assert snapshot(cal.store) == before


async def test_proppatch_of_an_address_book(cal: Cal) -> None:
    ctag = await cal.ctag(CONTACTS)
    body = (
        f"<D:propertyupdate {NS}><D:set><D:prop><D:displayname>Family</D:displayname>"
        "<CR:addressbook-description>Close ones</CR:addressbook-description>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    status, _, _ = await cal.request("PROPPATCH", CONTACTS, body)
    assert status == 207
    r = (await cal.propfind(CONTACTS, f"{D}displayname", f"{CR}addressbook-description")).responses[
        0
    ]
    assert (r.value(f"{D}displayname"), r.value(f"{CR}addressbook-description")) == (
        "Family", "Close ones"
    )  # fmt: skip
    assert await cal.ctag(CONTACTS) != ctag
    before = snapshot(cal.store)
    for protected in (
        "<CR:supported-address-data/>", "<CR:max-resource-size>1</CR:max-resource-size>",
        "<CS:getctag>x</CS:getctag>", "<CR:addressbook-home-set/>",
    ):  # fmt: skip
        body = (
            f"<D:propertyupdate {NS}><D:set><D:prop>{protected}</D:prop></D:set></D:propertyupdate>"
        )
        status, _, data = await cal.request("PROPPATCH", CONTACTS, body)
        assert status == 207 and b"403" in data and b"cannot-modify-protected-property" in data
    assert snapshot(cal.store) == before


async def test_copy_and_move_of_cards(cal: Cal) -> None:
    assert (await cal.request("MKCOL", WORK, mkcol_body()))[0] == 201
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a"))
    await put_card_ok(cal, f"{WORK}b.vcf", vcard("a"))  # the same UID in another book
    await put_card_ok(cal, f"{WORK}c.vcf", vcard("c"))
    token = (await cal.sync(WORK)).sync_token or ""
    before = snapshot(cal.store)
    # A UID the destination book has already: 409 naming the card that has it.
    status, _, data = await cal.request("COPY", f"{CONTACTS}a.vcf", Destination=f"{WORK}a.vcf")
    assert status == 409 and error_condition(data) == [f"{CR}no-uid-conflict"]
    # Replacing a card by one of another UID: 409.
    status, _, _ = await cal.request(
        "COPY", f"{WORK}c.vcf", Destination=f"{WORK}b.vcf", Overwrite="T"
    )
    assert status == 409
    # Into a calendar, into the home, or a book into a book: 403.
    for src, dst in (
        (f"{CONTACTS}a.vcf", f"{HOME}calendar/a.vcf"),
        (f"{CONTACTS}a.vcf", f"{BOOK_HOME}a.vcf"),
        (CONTACTS, f"{WORK}contacts/"),
        (CONTACTS, f"{HOME}contacts/"),
    ):
        assert (await cal.request("COPY", src, Destination=dst))[0] == 403, (src, dst)
    await cal.put_ok(f"{HOME}calendar/e.ics", event("e"))
    before = snapshot(cal.store)
    status, _, _ = await cal.request(
        "MOVE", f"{HOME}calendar/e.ics", Destination=f"{CONTACTS}e.ics"
    )
    assert status == 403
    assert snapshot(cal.store) == before
    # A MOVE within a book keeps the UID; the book's sync reports both names.
    status, _, _ = await cal.request("MOVE", f"{WORK}c.vcf", Destination=f"{WORK}d.vcf")
    assert status == 201
    ms = await cal.sync(WORK, token)
    by = ms.by_href()
    assert set(by) == {f"{WORK}c.vcf", f"{WORK}d.vcf"}
    assert by[f"{WORK}c.vcf"].status == 404
    # A card moved to another book leaves the first and arrives in the second.
    status, _, _ = await cal.request("MOVE", f"{WORK}d.vcf", Destination=f"{CONTACTS}d.vcf")
    assert status == 201
    assert names(await cal.sync(CONTACTS)) == {"a.vcf", "d.vcf"}
    assert names(await cal.sync(WORK)) == {"b.vcf"}


async def test_a_copied_address_book_is_indexed(cal: Cal) -> None:
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a"))
    assert (await cal.request("COPY", CONTACTS, Destination=WORK))[0] == 201
    assert names(await cal.sync(WORK)) == {"a.vcf"}
    r = (await cal.propfind(WORK, f"{D}resourcetype")).responses[0]
    assert r.ok(f"{D}resourcetype").find(f"{CR}addressbook") is not None


async def test_delete_of_an_address_book_and_its_home(cal: Cal) -> None:
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a"))
    token = (await cal.sync(CONTACTS)).sync_token or ""
    ctag = await cal.ctag(CONTACTS)
    assert (await cal.request("DELETE", CONTACTS))[0] == 204
    assert (await cal.request("PROPFIND", CONTACTS, Depth="0"))[0] == 404
    assert (await cal.request("MKCOL", CONTACTS, mkcol_body()))[0] == 201
    assert await cal.ctag(CONTACTS) != ctag
    ms = await cal.sync(CONTACTS, token)
    assert ms.by_href()[f"{CONTACTS}a.vcf"].status == 404
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a"))
    assert (await cal.request("DELETE", BOOK_HOME))[0] == 204
    # The home is virtual again, with its default address book, empty.
    assert names(await cal.sync(CONTACTS)) == set()
    assert (await cal.prop(CONTACTS, f"{CS}getctag")).status == 200
