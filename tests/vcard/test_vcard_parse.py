"""davserver.vcard.parse: what a PUT of a vCard is checked for (RFC 6352 §5.1, §6.3.2.1),
what is read from it, and that the stored bytes are kept as they are."""

from __future__ import annotations

import pytest
from vcard_samples import ALL, APPLE_CONTACT, APPLE_UID, DAVX5_CONTACT, EVOLUTION, JPEG_B64, card

from davserver.vcard import (
    InvalidVCard,
    TooLarge,
    UnsupportedVersion,
    VCardError,
    parse,
)


@pytest.mark.parametrize("name", sorted(ALL))
def test_client_cards_are_accepted_and_kept_byte_for_byte(name: str) -> None:
    data = ALL[name]
    parsed = parse(data)
    assert parsed.data is data
    assert parsed.begin + "".join(p.source for p in parsed.properties) + parsed.end == (
        data.decode()
    )


def test_apple_contact() -> None:
    parsed = parse(APPLE_CONTACT)
    assert parsed.version == "3.0"
    assert parsed.uid == APPLE_UID
    assert parsed.fn == "Johnny Appleseed"
    (email,) = parsed.find("EMAIL")
    assert (email.group, email.name, email.text) == ("ITEM1", "EMAIL", "johnny@example.com")
    assert email.param("type") == ("INTERNET", "pref")
    assert email.written_name == "item1.EMAIL"
    (photo,) = parsed.find("PHOTO")
    assert photo.value == JPEG_B64  # unfolded
    assert photo.source.count("\r\n ") > 3  # stored folded
    assert parsed.find("CATEGORIES")[0].texts == ("Friends", "Work")


def test_davx5_contact() -> None:
    parsed = parse(DAVX5_CONTACT)
    assert parsed.version == "4.0"
    assert parsed.fn == "Zoë Çelik"
    (adr,) = parsed.find("ADR")
    assert adr.param("LABEL") == ("Hauptstraße 1\n10115 Berlin",)  # RFC 6868 ^n
    assert parsed.find("PHOTO")[0].value == f"data:image/jpeg;base64,{JPEG_B64}"


def test_bare_lf_lines() -> None:
    parsed = parse(EVOLUTION)
    assert parsed.find("LABEL")[0].text == "Via Roma 1\n00100 Roma\nItalia"
    assert parsed.find("X-EVOLUTION-FILE-AS")[0].text == "Rossi, Mario"


def test_folding_with_space_tab_and_inside_a_character_sequence() -> None:
    data = card("4.0", "NOTE:Gr\r\n \u00fc\r\n\tße aus\r\n  Köln").replace(
        b"FN:Someone", b"F\r\n N:X"
    )
    parsed = parse(data)
    assert parsed.find("NOTE")[0].text == "Grüße aus Köln"
    assert parsed.fn == "X"


def test_groups_and_names_are_case_insensitive() -> None:
    parsed = parse(card("3.0", "Item1.email:a@example.com", "ITEM2.Email:b@example.com", "tel:1"))
    assert [p.text for p in parsed.find("EMAIL")] == ["a@example.com", "b@example.com"]
    assert [p.text for p in parsed.find("item1.EMAIL")] == ["a@example.com"]
    assert parsed.find("ITEM3.EMAIL") == ()
    assert parsed.find("tel")[0].group is None


def test_parameters_quoted_and_repeated() -> None:
    parsed = parse(
        card(
            "3.0",
            'EMAIL;TYPE=WORK;TYPE="INTERNET,PREF";X-LABEL="a;b:c,d":x@example.com',
            "TEL;TYPE=CELL,VOICE;X-EMPTY=:1",
        )
    )
    email = parsed.find("EMAIL")[0]
    assert email.param("TYPE") == ("WORK", "INTERNET", "PREF")
    assert email.param("X-LABEL") == ("a;b:c,d",)
    assert email.text == "x@example.com"
    tel = parsed.find("TEL")[0]
    assert tel.param("TYPE") == ("CELL", "VOICE")
    assert tel.param("X-EMPTY") == ("",)
    assert tel.param("X-MISSING") is None


def test_caret_encoding_only_in_4_0() -> None:
    line = "ADR;LABEL=\"a^nb ^^ ^'q^'\":;;x;;;;"
    assert parse(card("4.0", line)).find("ADR")[0].param("LABEL") == ('a\nb ^ "q"',)
    assert parse(card("3.0", line)).find("ADR")[0].param("LABEL") == ("a^nb ^^ ^'q^'",)


def test_lenient_bits() -> None:
    """What sloppy writers do and the parser takes: a byte order mark, blank lines, a bare
    parameter (vCard 2.1 style), VERSION not first, no N in 3.0, names with _."""
    data = (
        b"\xef\xbb\xbf\r\nBEGIN:VCARD\r\nUID:1\r\n\r\nVERSION:3.0\r\nTEL;CELL:123\r\n"
        b"FN:x\r\nX-SOME_THING:y\r\nEND:VCARD\r\n\r\n"
    )
    parsed = parse(data)
    assert parsed.find("TEL")[0].param("TYPE") == ("CELL",)
    assert parsed.find("X-SOME_THING")[0].text == "y"
    assert parsed.data == data


def test_values_keep_their_escapes_and_texts_resolve_them() -> None:
    parsed = parse(card("4.0", "NOTE:a\\,b\\;c\\\\d\\ne\\Nf\\:g", "N:O\\;Brien;Pat;;;"))
    note = parsed.find("NOTE")[0]
    assert note.value == "a\\,b\\;c\\\\d\\ne\\Nf\\:g"
    assert note.text == "a,b;c\\d\ne\nf:g"
    assert parsed.find("N")[0].texts == ("O;Brien;Pat;;;",)


def test_size_limit() -> None:
    data = card("4.0")
    assert parse(data, max_size=len(data)).data == data
    with pytest.raises(TooLarge) as refused:
        parse(data, max_size=len(data) - 1)
    assert refused.value.condition == "max-resource-size"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "does not start with BEGIN:VCARD"),
        (b"hello world\r\n", "does not start with BEGIN:VCARD"),
        (b"\x00\x01garbage", "control character U+0000"),
        (card("4.0", "NOTE:café").replace("é".encode(), b"\xe9"), "not UTF-8 (octet 54)"),
        (card("4.0", "NOTE:a\x1bb"), "control character U+001B on line 5"),
        (card("4.0", "NOTE:a\rb"), "control character U+000D"),
        (card("4.0", "NOTE:a\x7f"), "control character U+007F"),
        (card("4.0").replace(b"BEGIN:VCARD\r\n", b""), "does not start with BEGIN:VCARD"),
        (card("4.0").replace(b"END:VCARD\r\n", b""), "no END:VCARD"),
        (card("4.0").replace(b"VERSION:4.0\r\n", b""), "no VERSION"),
        (card("4.0", "VERSION:4.0"), "more than one VERSION"),
        (card("4.0").replace(b"FN:Someone\r\n", b""), "no FN"),
        (card("4.0").replace(b"UID:u1\r\n", b""), "no UID"),
        (card("4.0", "UID:u2"), "more than one UID"),
        (card("4.0", uid=" "), "empty UID"),
        (card("4.0") + card("4.0", uid="u2"), "more than one vCard"),
        (card("4.0") + b"trailing:junk\r\n", "content after END:VCARD"),
        (card("3.0", "AGENT:", "BEGIN:VCARD", "END:VCARD"), "BEGIN:VCARD inside the vCard"),
        (card("4.0", "END:VCALENDAR"), "END:VCALENDAR inside the vCard"),
        (card("4.0").replace(b"BEGIN:VCARD", b"BEGIN:VCALENDAR"), "does not start with BEGIN"),
        (b" BEGIN:VCARD\r\n", "a continuation with no line before it"),
        (card("4.0", "NOTE"), "line 5: expected ':'"),
        (card("4.0", 'NOTE;X="open:a'), "unterminated quoted parameter value"),
        (card("4.0", 'NOTE;X=a"b":a'), "a quote inside a parameter value"),
        (card("4.0", "NOTE;=a:b"), "no parameter name"),
        (card("4.0", ".NOTE:b"), "no property name"),
    ],
)
def test_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidVCard) as refused:
        parse(data)
    assert reason in str(refused.value)
    assert refused.value.condition == "valid-address-data"


@pytest.mark.parametrize("version", ["2.1", "5.0", ""])
def test_other_versions_are_unsupported_address_data(version: str) -> None:
    # vCard 2.1 syntax (quoted-printable, bare parameters) does not matter: the version does.
    data = card(version, "NOTE;ENCODING=QUOTED-PRINTABLE:caf=C3=A9=\r\n", "TEL;WORK;VOICE:1")
    with pytest.raises(UnsupportedVersion) as refused:
        parse(data)
    assert refused.value.condition == "supported-address-data"
    assert isinstance(refused.value, VCardError)
