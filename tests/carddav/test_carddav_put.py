"""PUT of vCards (RFC 6352 §6.3.2): stored byte for byte (what a client PUT is what GET
returns; on git one commit per change), every refusal with its precondition and nothing
stored, UIDs unique in an address book."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from caldav_data import HOME, Cal, D, MakeCal, error_condition, event
from carddav_data import BOOK_HOME, CONTACTS, CR, books_folder, put_card, put_card_ok, vcard
from helpers import snapshot
from lxml import etree

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

# A card as clients write them: folded lines, LF line ends (some write those), groups,
# parameters, non-ASCII, a photo.
SLOPPY = (
    "BEGIN:VCARD\nVERSION:3.0\nPRODID:-//Apple Inc.//iOS 17.0//EN\nN:Müller;Zoë;;;\n"
    "FN:Zoë Müller\nitem1.EMAIL;type=INTERNET;type=pref:zoe@example.com\n"
    "item1.X-ABLabel:_$!<Other>!$_\nTEL;type=CELL;type=VOICE:+49 170 1234567\n"
    "NOTE:a long note that goes on and on and on and on and on and on and on and o\n n and on\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQ\n"
    " NDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQ==\n"
    "UID:8D2A6E52-0E44-4F1D-9C6B-3C1E2A9F0B11\nEND:VCARD\n"
).encode()


async def test_a_card_is_stored_byte_for_byte_and_get_returns_it(cal: Cal) -> None:
    etag = await put_card_ok(cal, f"{CONTACTS}zoe.vcf", SLOPPY)
    assert (books_folder(cal) / "zoe.vcf").read_bytes() == SLOPPY
    status, headers, body = await cal.request("GET", f"{CONTACTS}zoe.vcf")
    assert (status, body, headers["ETag"]) == (200, SLOPPY, etag)
    assert headers["Content-Type"].startswith("text/vcard")
    ms = await cal.propfind(f"{CONTACTS}zoe.vcf", f"{D}getetag", f"{D}getcontenttype")
    assert ms.responses[0].value(f"{D}getetag") == etag
    status, _, _ = await put_card(cal, f"{CONTACTS}zoe.vcf", SLOPPY, If_Match=etag)
    assert status == 204


async def test_a_4_0_card_as_android_writes_it(cal: Cal) -> None:
    card = vcard(
        "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1", "Jane Doe", "KIND:individual",
        "EMAIL;TYPE=work;PREF=1:jane@example.com", "BDAY:--0415",
        "PHOTO:data:image/png;base64,iVBORw0KGgo=", version="4.0",
    )  # fmt: skip
    await put_card_ok(cal, f"{CONTACTS}jane.vcf", card)
    assert (await cal.request("GET", f"{CONTACTS}jane.vcf"))[2] == card


TOO_BIG = 4096


def refusals() -> list[object]:
    """(body, content type, status, precondition) of PUTs that must store nothing."""
    cases = [
        ("not-a-vcard", b"hello\r\n", "text/vcard", 403, "valid-address-data"),
        ("no-uid", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n", "text/vcard", 403,
         "valid-address-data"),
        ("two-uids", vcard("a", "x", "UID:b"), "text/vcard", 403, "valid-address-data"),
        ("no-fn", b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nEND:VCARD\r\n", "text/vcard", 403,
         "valid-address-data"),
        ("two-cards", vcard("a") + vcard("b"), "text/vcard", 403, "valid-address-data"),
        ("vcard-2.1", vcard("a", version="2.1"), "text/vcard", 403, "supported-address-data"),
        ("icalendar", event("e"), "text/calendar", 403, "supported-address-data"),
        ("control-char", vcard("a", "x\x07"), "text/vcard", 403, "valid-address-data"),
        ("not-utf8", vcard("a", "x").replace(b"x", b"\xff"), "text/vcard", 403,
         "valid-address-data"),
        ("too-large", vcard("a", "x", "NOTE:" + "n" * TOO_BIG), "text/vcard", 403,
         "max-resource-size"),
    ]  # fmt: skip
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.parametrize("backend", ["filesystem", "git"])
@pytest.mark.parametrize(("data", "ctype", "status", "condition"), refusals())
async def test_a_bad_card_is_refused_with_its_precondition_and_nothing_stored(
    make_cal: MakeCal, backend: str, data: bytes, ctype: str, status: int, condition: str
) -> None:
    cal = await make_cal(backend=backend, max_resource_size=TOO_BIG)
    await put_card_ok(cal, f"{CONTACTS}ok.vcf", vcard("ok"))
    before = snapshot(cal.store)
    got, _, body = await cal.request("PUT", f"{CONTACTS}bad.vcf", data, Content_Type=ctype)
    assert got == status, body
    assert error_condition(body) == [f"{CR}{condition}"]
    assert snapshot(cal.store) == before
    ms = await cal.sync(CONTACTS)
    assert {r.href.rpartition("/")[2] for r in ms.responses} == {"ok.vcf"}


async def test_a_uid_is_unique_in_an_address_book(cal: Cal) -> None:
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("same"))
    before = snapshot(cal.store)
    status, _, body = await put_card(cal, f"{CONTACTS}b.vcf", vcard("same", "Other"))
    assert status == 409
    root = etree.fromstring(body)
    assert root[0].tag == f"{CR}no-uid-conflict"
    assert root[0].findtext(f"{D}href") == f"{CONTACTS}a.vcf"
    # Nor may a card be replaced by one of another UID.
    status, _, body = await put_card(cal, f"{CONTACTS}a.vcf", vcard("another"))
    assert status == 409
    assert error_condition(body) == [f"{CR}no-uid-conflict"]
    assert snapshot(cal.store) == before
    # Another address book may hold the same UID.
    body = (
        '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
        "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
        "</D:prop></D:set></D:mkcol>"
    )
    assert (await cal.request("MKCOL", f"{BOOK_HOME}work/", body))[0] == 201
    await put_card_ok(cal, f"{BOOK_HOME}work/a.vcf", vcard("same"))


async def test_racing_puts_of_one_uid_store_one_card(cal: Cal) -> None:

    answers = await asyncio.gather(
        *(put_card(cal, f"{CONTACTS}r{i}.vcf", vcard("racer")) for i in range(8))
    )
    assert sorted(a[0] for a in answers) == [201] + [409] * 7
    assert len(list(books_folder(cal).glob("*.vcf"))) == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{BOOK_HOME}loose.vcf", 403),  # in the home, not in an address book
        (f"{CONTACTS}sub/x.vcf", 403),  # deeper than an address book's members
        (f"{BOOK_HOME}nobook/x.vcf", 409),  # an address book that does not exist
    ],
)
async def test_a_card_belongs_in_an_address_book(cal: Cal, path: str, status: int) -> None:
    before = snapshot(cal.store)
    assert (await put_card(cal, path, vcard("x")))[0] == status
    assert snapshot(cal.store) == before


async def test_conditional_puts(cal: Cal) -> None:
    etag = await put_card_ok(cal, f"{CONTACTS}c.vcf", vcard("c"), If_None_Match="*")
    assert (await put_card(cal, f"{CONTACTS}c.vcf", vcard("c"), If_None_Match="*"))[0] == 412
    assert (await put_card(cal, f"{CONTACTS}c.vcf", vcard("c"), If_Match='"nope"'))[0] == 412
    await put_card_ok(cal, f"{CONTACTS}c.vcf", vcard("c", "New name"), If_Match=etag)


async def test_on_git_each_change_is_one_commit(make_cal: MakeCal) -> None:
    cal = await make_cal(backend="git")

    def log() -> list[str]:
        out = subprocess.run(
            ["git", "--git-dir", str(cal.store), "log", "--format=%s", "main"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout.splitlines()

    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a"))
    await put_card_ok(cal, f"{CONTACTS}a.vcf", vcard("a", "Renamed"))
    assert (await cal.request("DELETE", f"{CONTACTS}a.vcf"))[0] == 204
    assert log() == [
        "DELETE /addressbooks/user/contacts/a.vcf",
        "PUT /addressbooks/user/contacts/a.vcf",
        "PUT /addressbooks/user/contacts/a.vcf",
    ]
    tree = subprocess.run(
        ["git", "--git-dir", str(cal.store), "ls-tree", "-r", "--name-only", "main~1"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert ".addressbooks/user/contacts/a.vcf" in tree
    # Calendars and contacts share the repository, each home made by its first write.
    await cal.put_ok(f"{HOME}calendar/e.ics", event("e"))
    assert len(log()) == 4
