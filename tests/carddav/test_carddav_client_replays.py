"""Request sequences of CardDAV clients (iOS Contacts, macOS Contacts, DAVx5, Thunderbird):
discovery, the first sync, an edit and a change of group, as each client sends them.

The sequences (which requests, in which order, with which headers) follow the clients'
logs published in the issue threads named above each one; the bodies are reconstructed
from those threads and from the clients' documented behaviour (the props each asks for,
the address-data each sends), not byte captures, and are marked so. What each test
asserts is what the client depends on: statuses, the XML it reads, the bytes on disk.
"""

from __future__ import annotations

import re

from caldav_data import PRINCIPAL, Cal, D, parse_multistatus
from carddav_data import BOOK_HOME, CONTACTS, CR, books_folder, vcard
from lxml import etree

from davserver.vcard import parse

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

XML = "text/xml"
CS = "{http://calendarserver.org/ns/}"


async def step(cal: Cal, method: str, path: str, body: str | bytes | None = None,
               status: int | tuple[int, ...] = 207, **headers: str) -> tuple[object, bytes]:  # fmt: skip
    """One request of a sequence, which must answer ``status``."""
    got, hdrs, data = await cal.request(method, path, body, **headers)
    wanted = status if isinstance(status, tuple) else (status,)
    assert got in wanted, (method, path, got, data[:300])
    return hdrs, data


def hrefs_of(data: bytes) -> list[str]:
    return [r.href for r in parse_multistatus(data).responses]


# -- iOS Contacts ---------------------------------------------------------------------------
# Sequence: iOS 12 adding a CardDAV account, nextcloud/contacts#399 (access log:
# PROPFIND /.well-known/carddav → 301, PROPFIND of the root, OPTIONS of the principal,
# PROPFIND of the principal, PROPFIND of the home, then the address book), and iOS 7's
# sync with Baïkal, sabre-io/Baikal#239 (PROPFIND of the home, two of the book, REPORT).
# Headers (Brief: t, Depth, text/xml) as in the iOS request dumped in Kozea/Radicale#47.
# Bodies reconstructed (the threads give the requests, not their bodies).

IOS_UA = "iOS/17.4 (21E219) dataaccessd/1.0"
IOS_CUP = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:propfind xmlns:A="DAV:"><A:prop>'
    "<A:current-user-principal/><A:principal-URL/><A:resourcetype/></A:prop></A:propfind>"
)
IOS_PRINCIPAL = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:propfind xmlns:A="DAV:"><A:prop>'
    '<B:addressbook-home-set xmlns:B="urn:ietf:params:xml:ns:carddav"/>'
    '<C:email-address-set xmlns:C="http://calendarserver.org/ns/"/>'
    "<A:displayname/><A:principal-URL/><A:resourcetype/>"
    '<D:directory-gateway xmlns:D="urn:ietf:params:xml:ns:carddav"/></A:prop></A:propfind>'
)
IOS_HOME = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:propfind xmlns:A="DAV:"><A:prop>'
    "<A:current-user-privilege-set/><A:displayname/><A:resourcetype/><A:sync-token/>"
    '<B:getctag xmlns:B="http://calendarserver.org/ns/"/>'
    '<C:max-image-size xmlns:C="http://calendarserver.org/ns/"/>'
    '<D:max-resource-size xmlns:D="urn:ietf:params:xml:ns:carddav"/>'
    '<E:push-transports xmlns:E="http://calendarserver.org/ns/"/>'
    "<A:quota-available-bytes/><A:quota-used-bytes/></A:prop></A:propfind>"
)
IOS_SYNC = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:sync-collection xmlns:A="DAV:">'
    "<A:sync-token>{token}</A:sync-token><A:sync-level>1</A:sync-level>"
    "<A:prop><A:getetag/></A:prop></A:sync-collection>"
)
IOS_MULTIGET = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<B:addressbook-multiget xmlns:A="DAV:" '
    'xmlns:B="urn:ietf:params:xml:ns:carddav"><A:prop><A:getetag/>'
    "<B:address-data/></A:prop>{hrefs}</B:addressbook-multiget>"
)
# An iPhone's card: 3.0, Apple's item groups and labels, an inline photo.
IOS_CARD = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.4//EN\r\n"
    b"N:Appleseed;Johnny;;;\r\nFN:Johnny Appleseed\r\n"
    b"item1.EMAIL;type=INTERNET;type=pref:johnny@example.com\r\nitem1.X-ABLabel:_$!<Other>!$_\r\n"
    b"TEL;type=CELL;type=VOICE;type=pref:+1 555 0199\r\n"
    b"PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAASABIAAD/4QBMRXhpZgAATU0AKgAAAAgAAYdpAA\r\n"
    b" QAAAABAAAAGgAAAAAAA6ABAAMAAAABAAEAAKACAAQAAAABAAAAZKADAAQAAAABAAAAZAAAAAD/7QA4\r\n"
    b"UID:5A2E7B1C-5F0E-4C1B-8E3D-2A8B9C0D1E2F\r\nEND:VCARD\r\n"
)
IOS_GROUP = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.4//EN\r\n"
    b"N:Friends\r\nFN:Friends\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n"
    b"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:5A2E7B1C-5F0E-4C1B-8E3D-2A8B9C0D1E2F\r\n"
    b"UID:0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\r\nEND:VCARD\r\n"
)


async def test_ios_contacts_discovers_syncs_adds_a_contact_and_changes_a_group(cal: Cal) -> None:
    # An Android user's card is there already, in vCard 4.0.
    android = vcard("android-1", "Droid Person", "EMAIL;TYPE=home:droid@example.org",
                    "BDAY:--0415", version="4.0")  # fmt: skip
    await step(cal, "PUT", f"{CONTACTS}android-1.vcf", android, 201, Content_Type="text/vcard")
    h = {"User_Agent": IOS_UA, "Brief": "t", "Content_Type": XML}
    hdrs, _ = await step(cal, "PROPFIND", "/.well-known/carddav", IOS_CUP, 301, Depth="0", **h)
    root = hdrs["Location"]  # type: ignore[index]
    _, data = await step(cal, "PROPFIND", root, IOS_CUP, Depth="0", **h)
    principal = parse_multistatus(data).responses[0].ok(f"{D}current-user-principal")
    assert principal.findtext(f"{D}href") == PRINCIPAL
    hdrs, _ = await step(cal, "OPTIONS", PRINCIPAL, None, 200, User_Agent=IOS_UA)
    assert "addressbook" in hdrs["DAV"]  # type: ignore[index]
    _, data = await step(cal, "PROPFIND", PRINCIPAL, IOS_PRINCIPAL, Depth="0", **h)
    home = parse_multistatus(data).responses[0].ok(f"{CR}addressbook-home-set")
    assert home.findtext(f"{D}href") == BOOK_HOME
    _, data = await step(cal, "PROPFIND", BOOK_HOME, IOS_HOME, Depth="1", **h)
    books = {
        r.href for r in parse_multistatus(data).responses
        if r.props[f"{D}resourcetype"].element.find(f"{CR}addressbook") is not None
    }  # fmt: skip
    assert books == {CONTACTS}
    book = parse_multistatus(data)[CONTACTS]
    book.ok(f"{CS}getctag")
    # The first sync: everything, then the cards by multiget, in vCard 3.0.
    _, data = await step(cal, "REPORT", CONTACTS, IOS_SYNC.format(token=""), Depth="1", **h)
    first = parse_multistatus(data)
    links = "".join(f"<A:href>{href}</A:href>" for href in hrefs_of(data))
    _, data = await step(cal, "REPORT", CONTACTS, IOS_MULTIGET.format(hrefs=links), Depth="1", **h)
    card = parse_multistatus(data)[f"{CONTACTS}android-1.vcf"].value(f"{CR}address-data")
    as_three = parse(card.encode())
    assert as_three.version == "3.0" and as_three.find("BDAY")[0].value == "1604-04-15"
    # A new contact, then a group with it as member, then the group changes.
    for name, body in (("johnny.vcf", IOS_CARD), ("friends.vcf", IOS_GROUP)):
        await step(cal, "PUT", CONTACTS + name, body, 201, If_None_Match="*",
                   Content_Type="text/vcard", User_Agent=IOS_UA)  # fmt: skip
    hdrs, _ = await step(cal, "GET", f"{CONTACTS}friends.vcf", None, 200, User_Agent=IOS_UA)
    changed = IOS_GROUP.replace(
        b"END:VCARD", b"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:android-1\r\nEND:VCARD"
    )
    await step(cal, "PUT", f"{CONTACTS}friends.vcf", changed, 204, If_Match=hdrs["ETag"],  # type: ignore[index]
               Content_Type="text/vcard", User_Agent=IOS_UA)  # fmt: skip
    folder = books_folder(cal)
    assert (folder / "johnny.vcf").read_bytes() == IOS_CARD
    assert (folder / "friends.vcf").read_bytes() == changed
    _, data = await step(
        cal, "REPORT", CONTACTS, IOS_SYNC.format(token=first.sync_token), Depth="1", **h
    )
    assert set(hrefs_of(data)) == {f"{CONTACTS}johnny.vcf", f"{CONTACTS}friends.vcf"}
    links = f"<A:href>{CONTACTS}friends.vcf</A:href><A:href>{CONTACTS}johnny.vcf</A:href>"
    _, data = await step(cal, "REPORT", CONTACTS, IOS_MULTIGET.format(hrefs=links), Depth="1", **h)
    ms = parse_multistatus(data)
    assert ms[f"{CONTACTS}friends.vcf"].value(f"{CR}address-data").encode() == changed
    assert ms[f"{CONTACTS}johnny.vcf"].value(f"{CR}address-data").encode() == IOS_CARD


# -- macOS Contacts -------------------------------------------------------------------------
# Sequence: macOS 10.11 Contacts against ownCloud, owncloud-archive/contacts#1096 (access
# log: PROPFIND of the home, two PROPFINDs of the address book, one REPORT); headers as in
# the macOS request dumped in Kozea/Radicale#359 (text/xml, Depth 1). Apple's clients ask
# a principal with expand-property (CLIENTS 22). Bodies reconstructed.

MAC_UA = "Mac OS X/14.4 (23E214) AddressBook/2487.500.131"
MAC_EXPAND = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:expand-property xmlns:A="DAV:">'
    '<A:property name="current-user-principal"><A:property name="displayname"/>'
    '<A:property name="addressbook-home-set" namespace="urn:ietf:params:xml:ns:carddav"/>'
    "</A:property></A:expand-property>"
)
MAC_LIST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<A:propfind xmlns:A="DAV:"><A:prop>'
    "<A:getetag/><A:getcontenttype/></A:prop></A:propfind>"
)
MAC_GROUP = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//Mac OS X 14.4//EN\r\nN:Team\r\n"
    b"FN:Team\r\nX-ADDRESSBOOKSERVER-KIND:group\r\nUID:mac-group-1\r\nEND:VCARD\r\n"
)
MAC_PERSON = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//Mac OS X 14.4//EN\r\n"
    b"N:Colleague;Carla;;;\r\nFN:Carla Colleague\r\nORG:Example Inc.;\r\n"
    b"PHOTO;VALUE=uri:https://example.com/carla.jpg\r\nUID:mac-person-1\r\nEND:VCARD\r\n"
)


async def test_macos_contacts_expands_the_principal_lists_and_edits_a_group(cal: Cal) -> None:
    h = {"User_Agent": MAC_UA, "Content_Type": XML}
    _, data = await step(cal, "REPORT", PRINCIPAL, MAC_EXPAND, Depth="0", **h)
    [inner] = parse_multistatus(data).responses[0].ok(f"{D}current-user-principal")
    assert inner.find(f".//{CR}addressbook-home-set/{D}href").text == BOOK_HOME
    for name, body in (("person.vcf", MAC_PERSON), ("group.vcf", MAC_GROUP)):
        await step(cal, "PUT", CONTACTS + name, body, 201, If_None_Match="*",
                   Content_Type="text/vcard", User_Agent=MAC_UA)  # fmt: skip
    _, data = await step(cal, "PROPFIND", CONTACTS, MAC_LIST, Depth="1", **h)
    ms = parse_multistatus(data)
    etags = {r.href: r.value(f"{D}getetag") for r in ms.responses if r.href != CONTACTS}
    assert set(etags) == {f"{CONTACTS}person.vcf", f"{CONTACTS}group.vcf"}
    assert ms[f"{CONTACTS}person.vcf"].value(f"{D}getcontenttype").startswith("text/vcard")
    # Carla joins the team: the group card gets a member line.
    member = MAC_GROUP.replace(b"UID:", b"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:mac-person-1\r\nUID:")
    await step(cal, "PUT", f"{CONTACTS}group.vcf", member, 204, Content_Type="text/vcard",
               If_Match=etags[f"{CONTACTS}group.vcf"], User_Agent=MAC_UA)  # fmt: skip
    links = "".join(f"<A:href>{href}</A:href>" for href in etags)
    _, data = await step(cal, "REPORT", CONTACTS, IOS_MULTIGET.format(hrefs=links), Depth="1", **h)
    ms = parse_multistatus(data)
    assert ms[f"{CONTACTS}group.vcf"].value(f"{CR}address-data").encode() == member
    assert ms[f"{CONTACTS}person.vcf"].value(f"{CR}address-data").encode() == MAC_PERSON


# -- DAVx5 -----------------------------------------------------------------------------------
# DAVx5 (dav4jvm): the principal PROPFIND with addressbook-home-set as its Android
# predecessors sent it (owncloud/core#20184, the CardDAV-Sync request shown there), the
# home with Depth 1, sync-collection with an empty token and a limit (CLIENTS 20), then
# multiget asking address-data in vCard 4.0 once supported-address-data offers it
# (Kozea/Radicale#887); cards written in 4.0 with groups as KIND:group cards or as
# CATEGORIES (CLIENTS 24, 25). Bodies reconstructed from those threads.

DAVX5_UA = "DAVx5/4.4.1-ose (2024/06/18; dav4jvm; okhttp/4.12.0) Android/14"
DAVX5_PRINCIPAL = (
    '<?xml version="1.0" encoding="UTF-8"?><propfind xmlns="DAV:" '
    'xmlns:CARD="urn:ietf:params:xml:ns:carddav"><prop><CARD:addressbook-home-set/>'
    "<group-membership/></prop></propfind>"
)
DAVX5_HOME = (
    '<?xml version="1.0" encoding="UTF-8"?><propfind xmlns="DAV:" '
    'xmlns:CARD="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/">'
    "<prop><resourcetype/><displayname/><owner/><current-user-privilege-set/>"
    "<CARD:addressbook-description/><CARD:supported-address-data/><CS:getctag/>"
    "<sync-token/></prop></propfind>"
)
DAVX5_SYNC = (
    '<?xml version="1.0" encoding="UTF-8"?><sync-collection xmlns="DAV:"><sync-token>{token}'
    "</sync-token><sync-level>1</sync-level><prop><getetag/></prop><limit><nresults>2"
    "</nresults></limit></sync-collection>"
)
DAVX5_MULTIGET = (
    '<?xml version="1.0" encoding="UTF-8"?><CARD:addressbook-multiget xmlns="DAV:" '
    'xmlns:CARD="urn:ietf:params:xml:ns:carddav"><prop><getetag/>'
    '<CARD:address-data content-type="text/vcard" version="4.0"/></prop>{hrefs}'
    "</CARD:addressbook-multiget>"
)


async def test_davx5_pages_its_sync_reads_vcard_4_and_writes_groups_both_ways(cal: Cal) -> None:
    for i in range(3):
        await step(cal, "PUT", f"{CONTACTS}ios-{i}.vcf",
                   vcard(f"ios-{i}", f"Person {i}", "EMAIL;TYPE=WORK,PREF:p@example.com"),
                   201, Content_Type="text/vcard")  # fmt: skip
    h = {"User_Agent": DAVX5_UA, "Content_Type": "application/xml; charset=utf-8"}
    _, data = await step(cal, "PROPFIND", PRINCIPAL, DAVX5_PRINCIPAL, Depth="0", **h)
    ms = parse_multistatus(data)
    assert ms.responses[0].ok(f"{CR}addressbook-home-set").findtext(f"{D}href") == BOOK_HOME
    # No delegations: the groups of delegates the user is in are none.
    assert ms.responses[0].ok(f"{D}group-membership").find(f"{D}href") is None
    _, data = await step(cal, "PROPFIND", BOOK_HOME, DAVX5_HOME, Depth="1", **h)
    book = parse_multistatus(data)[CONTACTS]
    versions = {el.get("version") for el in book.ok(f"{CR}supported-address-data")}
    assert "4.0" in versions
    # Paged: two at a time, a 507 while more remain.
    token, seen = "", set()
    for _ in range(3):
        _, data = await step(cal, "REPORT", CONTACTS, DAVX5_SYNC.format(token=token), **h)
        ms = parse_multistatus(data)
        token = ms.sync_token or ""
        seen |= {r.href for r in ms.responses if r.href != CONTACTS}
        if ms.by_href().get(CONTACTS) is None:
            break
    assert seen == {f"{CONTACTS}ios-{i}.vcf" for i in range(3)}
    links = "".join(f"<href>{href}</href>" for href in sorted(seen))
    _, data = await step(
        cal, "REPORT", CONTACTS, DAVX5_MULTIGET.format(hrefs=links), Depth="1", **h
    )
    four = parse(
        parse_multistatus(data)[f"{CONTACTS}ios-0.vcf"].value(f"{CR}address-data").encode()
    )
    assert four.version == "4.0"
    assert four.find("EMAIL")[0].param("PREF") == ("1",)
    # Groups as separate KIND:group cards, and as CATEGORIES: both stored as sent.
    group = vcard("urn:uuid:g-1", "Climbing", "KIND:group", "MEMBER:urn:uuid:ios-0",
                  "PRODID:DAVx5/4.4.1-ose ez-vcard/0.12.1", version="4.0")  # fmt: skip
    tagged = vcard("urn:uuid:c-1", "Cat Egory", "CATEGORIES:Climbing,Family", version="4.0")
    for name, body in (("g-1.vcf", group), ("c-1.vcf", tagged)):
        await step(cal, "PUT", CONTACTS + name, body, 201, If_None_Match="*",
                   Content_Type="text/vcard; version=4.0; charset=utf-8", User_Agent=DAVX5_UA)  # fmt: skip
        assert (books_folder(cal) / name).read_bytes() == body
    _, data = await step(cal, "REPORT", CONTACTS, DAVX5_SYNC.format(token=token), **h)
    assert set(hrefs_of(data)) == {f"{CONTACTS}g-1.vcf", f"{CONTACTS}c-1.vcf"}
    links = f"<href>{CONTACTS}g-1.vcf</href><href>{CONTACTS}c-1.vcf</href>"
    _, data = await step(
        cal, "REPORT", CONTACTS, DAVX5_MULTIGET.format(hrefs=links), Depth="1", **h
    )
    ms = parse_multistatus(data)
    assert ms[f"{CONTACTS}g-1.vcf"].value(f"{CR}address-data").encode() == group
    assert ms[f"{CONTACTS}c-1.vcf"].value(f"{CR}address-data").encode() == tagged
    # iOS reads DAVx5's group as Apple's kind of group.
    _, data = await step(cal, "REPORT", CONTACTS, IOS_MULTIGET.format(
        hrefs=f"<A:href>{CONTACTS}g-1.vcf</A:href>"), Depth="1")  # fmt: skip
    three = parse_multistatus(data)[f"{CONTACTS}g-1.vcf"].value(f"{CR}address-data")
    assert "X-ADDRESSBOOKSERVER-KIND:group" in three
    assert "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:ios-0" in three


# -- Thunderbird -----------------------------------------------------------------------------
# Thunderbird's built-in CardDAV (since 102, CLIENTS 26): discovery from the server's
# address through /.well-known/carddav (jobisoft/DAV-4-TbSync#283 for TbSync before it),
# the home listed with getctag and sync-token, sync-collection asking address-data with
# the ETags, cards written in vCard 4.0 with If-None-Match on creation and If-Match on
# edit, DELETE with If-Match. Bodies reconstructed from Thunderbird's behaviour as
# described in those threads.

TB_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
TB_HOME = (
    '<propfind xmlns="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav" '
    'xmlns:cs="http://calendarserver.org/ns/"><prop><resourcetype/><displayname/>'
    "<current-user-privilege-set/><cs:getctag/><sync-token/></prop></propfind>"
)
TB_SYNC = (
    '<sync-collection xmlns="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">'
    "<sync-token>{token}</sync-token><sync-level>1</sync-level><prop><getetag/>"
    "<card:address-data/></prop></sync-collection>"
)


async def test_thunderbird_syncs_with_data_edits_and_deletes(cal: Cal) -> None:
    h = {"User_Agent": TB_UA, "Content_Type": "text/xml"}
    hdrs, _ = await step(cal, "PROPFIND", "/.well-known/carddav", None, 301, Depth="0", **h)
    assert hdrs["Location"] == "/caldav/"  # type: ignore[index]
    _, data = await step(cal, "PROPFIND", BOOK_HOME, TB_HOME, Depth="1", **h)
    assert CONTACTS in parse_multistatus(data).by_href()
    _, data = await step(cal, "REPORT", CONTACTS, TB_SYNC.format(token=""), Depth="1", **h)
    token = parse_multistatus(data).sync_token
    card = vcard("tb-1", "Thunder Bird", "EMAIL;PREF=1:tb@example.com",
                 "NOTE:line one\\nline two", version="4.0")  # fmt: skip
    hdrs, _ = await step(cal, "PUT", f"{CONTACTS}tb-1.vcf", card, 201, If_None_Match="*",
                         Content_Type="text/vcard", User_Agent=TB_UA)  # fmt: skip
    edited = card.replace(b"line two", b"line 2")
    hdrs, _ = await step(cal, "PUT", f"{CONTACTS}tb-1.vcf", edited, 204, If_Match=hdrs["ETag"],  # type: ignore[index]
                         Content_Type="text/vcard", User_Agent=TB_UA)  # fmt: skip
    _, data = await step(cal, "REPORT", CONTACTS, TB_SYNC.format(token=token), Depth="1", **h)
    ms = parse_multistatus(data)
    r = ms[f"{CONTACTS}tb-1.vcf"]
    assert r.value(f"{D}getetag") == hdrs["ETag"]  # type: ignore[index]
    # No version asked: vCard 3.0 (RFC 6352's default), which Thunderbird reads too.
    assert parse(r.value(f"{CR}address-data").encode()).version == "3.0"
    await step(cal, "DELETE", f"{CONTACTS}tb-1.vcf", None, 412, If_Match='"stale"')
    await step(cal, "DELETE", f"{CONTACTS}tb-1.vcf", None, 204, If_Match=hdrs["ETag"])  # type: ignore[index]
    _, data = await step(cal, "REPORT", CONTACTS, TB_SYNC.format(token=ms.sync_token), **h)
    assert parse_multistatus(data)[f"{CONTACTS}tb-1.vcf"].status == 404
    assert not (books_folder(cal) / "tb-1.vcf").exists()
    # Thunderbird parses the answers as XML: every one above was well-formed.
    assert etree.fromstring(data) is not None and re.search(rb"sync-token", data)
