"""CardDAV discovery (RFC 6764, RFC 6352 §7): /.well-known/carddav, one principal with both
homes, the address-book home with its default address book (virtual until the first
write), the `addressbook` DAV token, the reserved folder that is no user, expand-property
on principals, and a mount with contacts off."""

from __future__ import annotations

import pytest
from caldav_data import CS, HEAD, HOME, PREFIX, PRINCIPAL, C, Cal, D, MakeCal, event
from carddav_data import BOOK_HOME, BOOKS, CONTACTS, CR, books_folder, put_card_ok, vcard
from helpers import snapshot

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

BOOK_PROPS = (
    f"{D}resourcetype",
    f"{D}displayname",
    f"{CR}supported-address-data",
    f"{CR}max-resource-size",
    f"{CR}supported-collation-set",
    f"{D}supported-report-set",
    f"{CS}getctag",
    f"{D}sync-token",
    f"{D}owner",
)


def reports(element: object) -> set[str]:
    """The report names a supported-report-set lists."""
    return {
        child.tag
        for report in element.iter(f"{D}report")  # type: ignore[attr-defined]
        for child in report
    }


@pytest.mark.parametrize("method", ["GET", "PROPFIND", "OPTIONS"])
async def test_well_known_carddav_is_a_301_to_the_mount(cal: Cal, method: str) -> None:
    for path in ("/.well-known/carddav", "/.well-known/carddav/"):
        status, headers, _ = await cal.request(method, path)
        assert status == 301, (method, path)
        assert headers["Location"] == "/caldav/"


@pytest.mark.parametrize("path", ["/", "/caldav/", PRINCIPAL])
async def test_one_principal_carries_both_homes(cal: Cal, path: str) -> None:
    """From the server root, the mount or the principal: the same principal, and both
    the calendar home and the address-book home (one account, one discovery)."""
    ms = await cal.propfind(
        path, f"{D}current-user-principal", f"{C}calendar-home-set", f"{CR}addressbook-home-set"
    )
    r = ms.responses[0]
    assert r.ok(f"{D}current-user-principal").findtext(f"{D}href") == PRINCIPAL
    assert r.ok(f"{C}calendar-home-set").findtext(f"{D}href") == HOME
    assert r.ok(f"{CR}addressbook-home-set").findtext(f"{D}href") == BOOK_HOME


async def test_options_names_addressbook_in_dav(cal: Cal) -> None:
    for path in ("/caldav/", PRINCIPAL, CONTACTS):
        status, headers, body = await cal.request("OPTIONS", path)
        assert status == 200 and body == b""
        tokens = [t.strip() for t in headers["DAV"].split(",")]
        assert {"1", "2", "3", "calendar-access", "addressbook", "extended-mkcol"} <= set(tokens)


async def test_the_home_holds_the_default_address_book_without_anything_on_disk(
    cal: Cal,
) -> None:
    before = snapshot(cal.store)
    ms = await cal.propfind(BOOK_HOME, *BOOK_PROPS, depth="1")
    by = ms.by_href()
    assert set(by) == {BOOK_HOME, CONTACTS}
    book = by[CONTACTS]
    assert book.ok(f"{D}resourcetype").find(f"{CR}addressbook") is not None
    assert book.value(f"{D}displayname") == "Contacts"
    types = {
        (el.get("content-type"), el.get("version")) for el in book.ok(f"{CR}supported-address-data")
    }
    assert types == {("text/vcard", "3.0"), ("text/vcard", "4.0")}
    assert book.value(f"{CR}max-resource-size") == str(10 << 20)
    collations = {el.text for el in book.ok(f"{CR}supported-collation-set")}
    assert {"i;unicode-casemap", "i;ascii-casemap", "i;octet"} == collations
    assert reports(book.ok(f"{D}supported-report-set")) == {
        f"{CR}addressbook-multiget", f"{CR}addressbook-query", f"{D}sync-collection"
    }  # fmt: skip
    book.ok(f"{CS}getctag")
    book.ok(f"{D}sync-token")
    assert book.ok(f"{D}owner").findtext(f"{D}href") == PRINCIPAL
    home = by[BOOK_HOME]
    assert home.ok(f"{D}resourcetype").find(f"{CR}addressbook") is None
    assert snapshot(cal.store) == before  # reading made nothing


async def test_the_first_card_makes_the_home_and_keeps_the_book_ctag(cal: Cal) -> None:
    """The default address book looked the same before, as a virtual one: its ctag
    moves with the card, once."""
    ctag, _ = await cal.ctag(CONTACTS)
    await put_card_ok(cal, f"{CONTACTS}ann.vcf", vcard("ann"))
    assert (books_folder(cal) / "ann.vcf").read_bytes() == vcard("ann")
    after, _ = await cal.ctag(CONTACTS)
    assert after != ctag
    ms = await cal.propfind(BOOK_HOME, f"{D}displayname", depth="1")
    assert ms[CONTACTS].value(f"{D}displayname") == "Contacts"
    # The calendar home stays virtual: the two homes are made apart.
    assert sorted(p.name for p in cal.store.iterdir()) == [".addressbooks"]


async def test_the_mount_root_lists_both_homes_and_the_reserved_folder_is_no_user(
    cal: Cal,
) -> None:
    await put_card_ok(cal, f"{CONTACTS}ann.vcf", vcard("ann"))
    await cal.put_ok(f"{HOME}calendar/e.ics", event("e"))
    ms = await cal.propfind("/caldav/", f"{D}resourcetype", depth="1")
    assert set(ms.by_href()) == {
        "/caldav/", "/caldav/principals/", "/caldav/calendars/", BOOKS
    }  # fmt: skip
    homes = await cal.propfind("/caldav/calendars/", f"{D}resourcetype", depth="1")
    assert set(homes.by_href()) == {"/caldav/calendars/", HOME}
    principals = await cal.propfind("/caldav/principals/", f"{D}resourcetype", depth="1")
    assert set(principals.by_href()) == {"/caldav/principals/", PRINCIPAL}
    for path in (
        "/caldav/calendars/.addressbooks/",
        "/caldav/calendars/.addressbooks/user/contacts/ann.vcf",
        "/caldav/principals/.addressbooks/",
        f"{BOOKS}.addressbooks/",
        "/caldav/.addressbooks/user/contacts/ann.vcf",
    ):
        status, _, _ = await cal.request("GET", path)
        assert status == 404, path
        status, _, _ = await cal.request("PROPFIND", path, Depth="0")
        assert status in (403, 404), path


async def test_expand_property_on_the_principal(cal: Cal) -> None:
    """What Apple's clients ask a principal: the principal behind a property, with its
    own properties."""
    body = (
        f'{HEAD}<D:expand-property xmlns:D="DAV:">'
        '<D:property name="current-user-principal"><D:property name="displayname"/>'
        '<D:property name="addressbook-home-set" namespace="urn:ietf:params:xml:ns:carddav"/>'
        '</D:property><D:property name="displayname"/></D:expand-property>'
    )
    ms = await cal.report(PRINCIPAL, body, depth="0")
    [r] = ms.responses
    assert r.href == PRINCIPAL
    assert r.value(f"{D}displayname") == "user"
    [inner] = r.ok(f"{D}current-user-principal").findall(f"{D}response")
    assert inner.findtext(f"{D}href") == PRINCIPAL
    props = inner.find(f"{D}propstat/{D}prop")
    assert props.findtext(f"{D}displayname") == "user"
    assert props.find(f"{CR}addressbook-home-set").findtext(f"{D}href") == BOOK_HOME


async def test_expand_property_of_a_missing_property_is_404_and_bad_bodies_400(cal: Cal) -> None:
    body = (
        f'{HEAD}<D:expand-property xmlns:D="DAV:"><D:property name="nothing-here">'
        '<D:property name="displayname"/></D:property></D:expand-property>'
    )
    ms = await cal.report(PRINCIPAL, body, depth="0")
    assert ms.responses[0].props[f"{D}nothing-here"].status == 404
    for bad in (
        f'{HEAD}<D:expand-property xmlns:D="DAV:"/>',
        f'{HEAD}<D:expand-property xmlns:D="DAV:"><D:property/></D:expand-property>',
    ):
        status, _, _ = await cal.request("REPORT", PRINCIPAL, bad, Depth="0")
        assert status == 400


async def test_with_contacts_off_there_are_no_address_books(make_cal: MakeCal) -> None:
    cal = await make_cal(contacts=False)
    _, headers, _ = await cal.request("OPTIONS", "/caldav/")
    assert "addressbook" not in headers["DAV"]
    assert (await cal.request("GET", "/.well-known/carddav"))[0] == 404
    ms = await cal.propfind(PRINCIPAL, f"{CR}addressbook-home-set", f"{C}calendar-home-set")
    assert ms.responses[0].props[f"{CR}addressbook-home-set"].status == 404
    root = await cal.propfind("/caldav/", f"{D}resourcetype", depth="1")
    assert f"{PREFIX}/addressbooks/" not in root.by_href()
    before = snapshot(cal.store)
    status, _, _ = await cal.request(
        "PUT", f"{CONTACTS}x.vcf", vcard("x"), Content_Type="text/vcard"
    )
    assert status == 403
    assert (await cal.request("PROPFIND", CONTACTS, Depth="0"))[0] == 404
    assert snapshot(cal.store) == before
