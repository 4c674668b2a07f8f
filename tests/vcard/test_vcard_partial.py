"""davserver.vcard.partial: address-data with a prop list (RFC 6352 §10.4.2)."""

from __future__ import annotations

from vcard_samples import APPLE_CONTACT, DAVX5_CONTACT, EVOLUTION, JPEG_B64, card

from davserver.vcard import PropRequest, convert, parse, partial


def test_rfc_example() -> None:
    stored = card(
        "3.0",
        "NICKNAME:me",
        "EMAIL:daboo@example.com",
        "NOTE:not asked for",
        "TEL:123",
        uid="34222-232@example.com",
        fn="Cyrus Daboo",
    )
    asked = [PropRequest(n) for n in ("VERSION", "UID", "NICKNAME", "EMAIL", "FN")]
    assert partial(parse(stored), asked) == (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:34222-232@example.com\r\nFN:Cyrus Daboo\r\n"
        b"NICKNAME:me\r\nEMAIL:daboo@example.com\r\nEND:VCARD\r\n"
    )


def test_version_always_and_nothing_else_unasked() -> None:
    assert partial(parse(card("4.0", "NOTE:x")), [PropRequest("TEL")]) == (
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nEND:VCARD\r\n"
    )


def test_no_prop_list_is_the_whole_card() -> None:
    parsed = parse(APPLE_CONTACT)
    assert partial(parsed, []) is parsed.data


def test_kept_lines_are_copied_as_stored() -> None:
    parsed = parse(APPLE_CONTACT)
    out = partial(parsed, [PropRequest("photo"), PropRequest("ITEM1.X-ABLABEL")])
    photo = parsed.find("PHOTO")[0]
    assert photo.source.encode() in out  # folded exactly as stored
    assert b"item1.X-ABLabel:_$!<Other>!$_\r\n" in out
    assert b"EMAIL" not in out


def test_group_prefix() -> None:
    parsed = parse(APPLE_CONTACT)
    assert b"item1.EMAIL" in partial(parsed, [PropRequest("EMAIL")])
    assert b"item1.EMAIL" in partial(parsed, [PropRequest("item1.EMAIL")])
    assert b"EMAIL" not in partial(parsed, [PropRequest("item2.EMAIL")])
    out = partial(parsed, [PropRequest("ITEM2.ADR")])
    assert b"item2.ADR" in out and b"X-ABADR" not in out


def test_novalue() -> None:
    parsed = parse(APPLE_CONTACT)
    out = partial(parsed, [PropRequest("PHOTO", novalue=True), PropRequest("EMAIL", novalue=True)])
    assert out == (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\n"
        b"item1.EMAIL;type=INTERNET;type=pref:\r\n"
        b"PHOTO;ENCODING=b;TYPE=JPEG:\r\n"
        b"END:VCARD\r\n"
    )
    assert JPEG_B64[:20].encode() not in out


def test_asked_with_and_without_value_gives_the_value() -> None:
    parsed = parse(card("4.0", "NOTE:x"))
    out = partial(parsed, [PropRequest("NOTE", novalue=True), PropRequest("NOTE")])
    assert b"NOTE:x\r\n" in out


def test_partial_of_a_converted_card() -> None:
    three = convert(parse(DAVX5_CONTACT), "3.0")
    out = partial(three, [PropRequest("PHOTO", novalue=True), PropRequest("X-ANNIVERSARY")])
    assert out == (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nX-ANNIVERSARY:2010-06-12\r\n"
        b"PHOTO;ENCODING=b;TYPE=JPEG:\r\nEND:VCARD\r\n"
    )


def test_bare_lf_storage_stays_lf() -> None:
    out = partial(parse(EVOLUTION), [PropRequest("EMAIL"), PropRequest("TEL", novalue=True)])
    assert out == (
        b"BEGIN:VCARD\nVERSION:3.0\n"
        b"EMAIL;TYPE=WORK;X-EVOLUTION-UI-SLOT=1:mario@example.it\n"
        b"TEL;TYPE=WORK;TYPE=VOICE;X-EVOLUTION-UI-SLOT=1:\n"
        b"END:VCARD\n"
    )


def test_long_novalue_line_is_folded() -> None:
    long_param = "X-P=" + "a" * 100
    out = partial(parse(card("4.0", f"NOTE;{long_param}:v")), [PropRequest("NOTE", novalue=True)])
    assert all(len(line) <= 75 for line in out.split(b"\r\n"))
    assert parse(out.replace(b"VERSION:4.0\r\n", b"VERSION:4.0\r\nUID:1\r\nFN:x\r\n")).find("NOTE")[
        0
    ].param("X-P") == ("a" * 100,)
