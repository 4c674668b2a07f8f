"""The address-book REPORTs and GET's versions: addressbook-multiget with the version asked
for and partial retrieval (RFC 6352 §8.7, §10.4), addressbook-query (§8.6, §10.5: every
kind of test, the collations, limit and 507), sync-collection with limit (RFC 6578), GET
with Accept (§5.1.1)."""

from __future__ import annotations

import pytest
from caldav_data import CS, HEAD, Cal, D, error_condition, event
from carddav_data import CONTACTS, CR, NS, multiget_body, names, put_card_ok, query_body, vcard

from davserver.vcard import parse

pytest_plugins = ("caldav_data.fixtures",)  # the cal and make_cal fixtures

THREE = vcard(
    "three", "Ann Three", "N:Three;Ann;;;", "EMAIL;TYPE=WORK,PREF:ann@example.com",
    "X-ADDRESSBOOKSERVER-KIND:group", "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:four",
)  # fmt: skip
FOUR = vcard(
    "four", "Bob Four", "N:Four;Bob;;;", "EMAIL;TYPE=home;PREF=1:bob@example.org",
    "TEL;TYPE=cell:+1 555 0100", "CATEGORIES:Family,Friends", version="4.0",
)  # fmt: skip
ODD = vcard("odd", "Odd Date", "BDAY:1996-04", version="4.0")  # no 3.0 form for it


async def load(cal: Cal) -> dict[str, bytes]:
    cards = {"three.vcf": THREE, "four.vcf": FOUR, "odd.vcf": ODD}
    for name, data in cards.items():
        await put_card_ok(cal, CONTACTS + name, data)
    return cards


def data_of(ms: object, name: str) -> str:
    return ms[CONTACTS + name].value(f"{CR}address-data")  # type: ignore[index]


# -- addressbook-multiget ------------------------------------------------------------------


async def test_multiget_answers_each_card_in_the_version_asked(cal: Cal) -> None:
    cards = await load(cal)
    hrefs = [CONTACTS + n for n in cards] + [CONTACTS + "gone.vcf"]
    same = await cal.report(
        CONTACTS,
        multiget_body(hrefs[:2], '<CR:address-data content-type="text/vcard" version="4.0"/>'),
    )
    assert data_of(same, "four.vcf").encode() == FOUR  # as stored
    as_four = parse(data_of(same, "three.vcf").encode())
    assert as_four.version == "4.0"
    assert as_four.find("KIND")[0].value == "group"
    assert as_four.find("MEMBER")[0].value == "urn:uuid:four"
    ms = await cal.report(CONTACTS, multiget_body(hrefs, '<CR:address-data version="3.0"/>'))
    assert data_of(ms, "three.vcf").encode() == THREE
    assert parse(data_of(ms, "four.vcf").encode()).version == "3.0"
    odd = ms[CONTACTS + "odd.vcf"]
    assert odd.props[f"{CR}address-data"].status == 415
    assert odd.value(f"{D}getetag")
    error = ms.root.find(f".//{D}propstat/{D}error/{CR}supported-address-data-conversion")
    assert error is not None
    assert ms[CONTACTS + "gone.vcf"].status == 404


async def test_multiget_answers_404_for_what_is_no_vcard(cal: Cal) -> None:
    await load(cal)
    event_path = "/caldav/calendars/user/calendar/e.ics"
    await cal.put_ok(event_path, event("e"))
    ms = await cal.report(CONTACTS, multiget_body([event_path, CONTACTS, CONTACTS + "four.vcf"]))
    by = ms.by_href()
    assert by[event_path].status == 404 and by[CONTACTS.rstrip("/")].status == 404
    assert by[CONTACTS + "four.vcf"].props[f"{CR}address-data"].status == 200


async def test_multiget_without_a_version_asks_for_3_0_as_the_rfc_says(cal: Cal) -> None:
    """A card that cannot be converted is then sent as stored: the client did not insist."""
    await load(cal)
    hrefs = [CONTACTS + n for n in ("three.vcf", "four.vcf", "odd.vcf")]
    ms = await cal.report(CONTACTS, multiget_body(hrefs))
    assert data_of(ms, "three.vcf").encode() == THREE
    assert parse(data_of(ms, "four.vcf").encode()).version == "3.0"
    assert data_of(ms, "odd.vcf").encode() == ODD


async def test_multiget_with_a_prop_list_answers_part_of_each_card(cal: Cal) -> None:
    await load(cal)
    data = (
        '<CR:address-data version="4.0"><CR:prop name="EMAIL"/><CR:prop name="FN" novalue="yes"/>'
        "</CR:address-data>"
    )
    ms = await cal.report(CONTACTS, multiget_body([CONTACTS + "four.vcf"], data))
    assert data_of(ms, "four.vcf") == (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:\r\nEMAIL;TYPE=home;PREF=1:bob@example.org\r\n"
        "END:VCARD\r\n"
    )


@pytest.mark.parametrize(
    "data",
    [
        '<CR:address-data content-type="text/calendar"/>',
        '<CR:address-data version="2.1"/>',
        '<CR:address-data content-type="application/vcard+json" version="4.0"/>',
    ],
)
async def test_an_address_data_the_server_cannot_give_is_403(cal: Cal, data: str) -> None:
    await load(cal)
    status, _, body = await cal.request(
        "REPORT", CONTACTS, multiget_body([CONTACTS + "four.vcf"], data), Depth="1"
    )
    assert status == 403
    assert error_condition(body) == [f"{CR}supported-address-data"]


# -- GET with Accept -------------------------------------------------------------------------


async def test_get_converts_to_the_version_accept_prefers(cal: Cal) -> None:
    await load(cal)
    status, headers, body = await cal.request(
        "GET", CONTACTS + "four.vcf", Accept="text/vcard; version=3.0"
    )
    assert status == 200 and parse(body).version == "3.0"
    assert headers["Vary"] == "Accept"
    assert headers["Content-Type"].startswith("text/vcard")
    plain = await cal.request("GET", CONTACTS + "four.vcf")
    assert plain[2] == FOUR and headers["ETag"] == plain[1]["ETag"]
    for accept in ("text/vcard; version=4.0", "text/vcard", "*/*",
                   "text/vcard;version=3.0;q=0.5, text/vcard;version=4.0"):  # fmt: skip
        assert (await cal.request("GET", CONTACTS + "four.vcf", Accept=accept))[2] == FOUR
    head = await cal.request("HEAD", CONTACTS + "four.vcf", Accept="text/vcard; version=3.0")
    assert head[0] == 200 and head[2] == b""
    assert int(head[1]["Content-Length"]) == len(body)
    status, _, body = await cal.request(
        "GET", CONTACTS + "odd.vcf", Accept="text/vcard; version=3.0"
    )
    assert status == 406
    assert error_condition(body) == [f"{CR}supported-address-data-conversion"]
    etag = plain[1]["ETag"]
    cached = await cal.request(
        "GET", CONTACTS + "four.vcf", Accept="text/vcard;version=3.0", If_None_Match=etag
    )
    assert cached[0] == 304


# -- addressbook-query -----------------------------------------------------------------------


def prop_filter(name: str, inner: str = "", test: str = "anyof") -> str:
    return f'<CR:prop-filter name="{name}" test="{test}">{inner}</CR:prop-filter>'


def text_match(
    text: str, match: str = "contains", collation: str = "", negate: bool = False
) -> str:
    attrs = f' match-type="{match}"'
    attrs += f' collation="{collation}"' if collation else ""
    attrs += ' negate-condition="yes"' if negate else ""
    return f"<CR:text-match{attrs}>{text}</CR:text-match>"


QUERIES = [
    ("email-contains", prop_filter("EMAIL", text_match("example")), "anyof", {"three", "four"}),
    ("email-equals", prop_filter("EMAIL", text_match("ANN@EXAMPLE.COM", "equals")), "anyof",
     {"three"}),
    ("name-substring", prop_filter("FN", text_match("four")), "anyof", {"four"}),
    ("starts-with", prop_filter("FN", text_match("ann", "starts-with")), "anyof", {"three"}),
    ("ends-with", prop_filter("FN", text_match("date", "ends-with")), "anyof", {"odd"}),
    ("octet-is-exact", prop_filter("FN", text_match("ann", collation="i;octet")), "anyof", set()),
    ("ascii-casemap", prop_filter("FN", text_match("ANN", collation="i;ascii-casemap")), "anyof",
     {"three"}),
    ("negated", prop_filter("FN", text_match("ann", negate=True)), "anyof", {"four", "odd"}),
    ("defined", prop_filter("TEL"), "anyof", {"four"}),
    ("not-defined", prop_filter("TEL", "<CR:is-not-defined/>"), "anyof", {"three", "odd"}),
    ("param-filter", prop_filter("EMAIL", '<CR:param-filter name="TYPE">'
     + text_match("home", "equals") + "</CR:param-filter>"), "anyof", {"four"}),
    ("param-not-defined", prop_filter("EMAIL", '<CR:param-filter name="PREF">'
     "<CR:is-not-defined/></CR:param-filter>"), "anyof", {"three"}),
    ("prop-allof", prop_filter("FN", text_match("bob") + text_match("four"), "allof"), "anyof",
     {"four"}),
    ("prop-allof-fails", prop_filter("FN", text_match("bob") + text_match("ann"), "allof"),
     "anyof", set()),
    ("filter-anyof", prop_filter("FN", text_match("ann")) + prop_filter("TEL"), "anyof",
     {"three", "four"}),
    ("filter-allof", prop_filter("FN", text_match("b")) + prop_filter("TEL"), "allof", {"four"}),
    ("category", prop_filter("CATEGORIES", text_match("friends", "equals")), "anyof", {"four"}),
    ("not-in-summary", prop_filter("BDAY", text_match("1996")), "anyof", {"odd"}),
    ("everything", "", "anyof", {"three", "four", "odd"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "test", "expected"), [pytest.param(*q[1:], id=q[0]) for q in QUERIES]
)
async def test_addressbook_query(cal: Cal, filters: str, test: str, expected: set[str]) -> None:
    cards = await load(cal)
    ms = await cal.report(CONTACTS, query_body(filters, test=test, data="<CR:address-data/>"))
    assert names(ms) == {f"{n}.vcf" for n in expected}
    for r in ms.responses:
        assert r.value(f"{D}getetag")
        card = cards[r.href.rpartition("/")[2]]
        assert parse(r.value(f"{CR}address-data").encode()).uid == parse(card).uid


async def test_a_query_finds_non_ascii_text_with_the_default_collation(cal: Cal) -> None:
    await put_card_ok(cal, CONTACTS + "z.vcf", vcard("z", "Zoë Straße"))
    for text in ("zoe", "ZOË", "strasse"):
        ms = await cal.report(CONTACTS, query_body(prop_filter("FN", text_match(text))))
        assert names(ms) == {"z.vcf"}, text


async def test_a_query_with_a_limit_answers_507_for_the_rest(cal: Cal) -> None:
    for i in range(5):
        await put_card_ok(cal, f"{CONTACTS}c{i}.vcf", vcard(f"c{i}", f"Card {i}"))
    ms = await cal.report(CONTACTS, query_body(prop_filter("FN", text_match("card")), limit=2))
    by = ms.by_href()
    assert by[CONTACTS].status == 507
    assert by[CONTACTS].error is not None
    assert {h for h in by if h != CONTACTS} == {f"{CONTACTS}c0.vcf", f"{CONTACTS}c1.vcf"}
    ms = await cal.report(CONTACTS, query_body(prop_filter("FN", text_match("card")), limit=9))
    assert len(ms.responses) == 5


@pytest.mark.parametrize(
    ("filters", "status", "condition"),
    [
        (
            prop_filter("FN", text_match("x", collation="i;klingon")),
            403,
            f"{CR}supported-collation",
        ),
        (prop_filter("FN", text_match("x", "sounds-like")), 400, None),
        (prop_filter("FN", "<CR:is-not-defined/>" + text_match("x")), 400, None),
        (prop_filter("FN", "", test="someof"), 400, None),
    ],
)
async def test_a_bad_filter_is_refused(
    cal: Cal, filters: str, status: int, condition: str | None
) -> None:
    got, _, body = await cal.request("REPORT", CONTACTS, query_body(filters), Depth="1")
    assert got == status
    if condition:
        assert error_condition(body) == [condition]


async def test_a_query_of_one_card(cal: Cal) -> None:
    await load(cal)
    ms = await cal.report(CONTACTS + "four.vcf", query_body(prop_filter("TEL")), depth="0")
    assert names(ms) == {"four.vcf"}
    ms = await cal.report(CONTACTS + "three.vcf", query_body(prop_filter("TEL")), depth="0")
    assert ms.responses == []


# -- sync-collection and ctag ----------------------------------------------------------------


async def test_sync_collection_of_an_address_book(cal: Cal) -> None:
    await load(cal)
    first = await cal.sync(CONTACTS)
    assert names(first) == {"three.vcf", "four.vcf", "odd.vcf"}
    ctag = await cal.ctag(CONTACTS)
    await put_card_ok(cal, CONTACTS + "four.vcf", FOUR.replace(b"Bob", b"Robert"))
    assert (await cal.request("DELETE", CONTACTS + "odd.vcf"))[0] == 204
    assert await cal.ctag(CONTACTS) != ctag
    second = await cal.sync(CONTACTS, first.sync_token or "")
    by = second.by_href()
    assert set(by) == {CONTACTS + "four.vcf", CONTACTS + "odd.vcf"}
    assert by[CONTACTS + "odd.vcf"].status == 404
    third = await cal.sync(CONTACTS, second.sync_token or "")
    assert third.responses == []
    limited = await cal.sync(CONTACTS, limit=1)
    assert limited.by_href()[CONTACTS].status == 507
    assert len(limited.responses) == 2


async def test_sync_collection_with_address_data(cal: Cal) -> None:
    await load(cal)
    body = (
        f"{HEAD}<D:sync-collection {NS}><D:sync-token/><D:sync-level>1</D:sync-level>"
        '<D:prop><D:getetag/><CR:address-data version="4.0"/></D:prop></D:sync-collection>'
    )
    ms = await cal.report(CONTACTS, body, depth=None)
    assert data_of(ms, "four.vcf").encode() == FOUR
    assert parse(data_of(ms, "three.vcf").encode()).version == "4.0"


async def test_the_calendar_reports_do_not_answer_on_address_books(cal: Cal) -> None:
    await load(cal)
    body = (
        f'{HEAD}<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter>'
        "</C:calendar-query>"
    )
    ms = await cal.report(CONTACTS, body)
    assert ms.responses == []
    status, _, _ = await cal.request(
        "REPORT", "/caldav/calendars/user/calendar/", query_body(""), Depth="1"
    )
    assert status == 403
    assert await cal.ctag(CONTACTS) != await cal.ctag("/caldav/calendars/user/calendar/")
    assert (await cal.prop(CONTACTS, f"{CS}getctag")).status == 200
