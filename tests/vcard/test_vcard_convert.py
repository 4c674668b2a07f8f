"""davserver.vcard.convert: vCard 3.0 ↔ 4.0 for address-data version and Accept
(RFC 6352 §5.1.1), and what cannot be converted (supported-address-data-conversion)."""

from __future__ import annotations

import pytest
from vcard_samples import (
    ALL,
    APPLE_CONTACT,
    APPLE_GROUP,
    APPLE_UID,
    DAVX5_CONTACT,
    DAVX5_GROUP,
    DAVX5_UID,
    EVOLUTION,
    JPEG_B64,
    THUNDERBIRD,
    card,
)

from davserver.vcard import ConversionError, UnsupportedVersion, VCard, convert, parse

# (vCard 3.0 line, vCard 4.0 line): each converts exactly into the other.
BOTH_WAYS = [
    ("PHOTO;ENCODING=b;TYPE=JPEG:QUJD", "PHOTO:data:image/jpeg;base64,QUJD"),
    ("LOGO;ENCODING=b;TYPE=PNG:QUJD", "LOGO:data:image/png;base64,QUJD"),
    ("SOUND;ENCODING=b;TYPE=OGG:QUJD", "SOUND:data:audio/ogg;base64,QUJD"),
    ("KEY;ENCODING=b;TYPE=PGP:QUJD", "KEY:data:application/pgp-keys;base64,QUJD"),
    ("KEY;ENCODING=b;TYPE=X509:QUJD", "KEY:data:application/pkix-cert;base64,QUJD"),
    ("PHOTO;ENCODING=b:QUJD", "PHOTO:data:application/octet-stream;base64,QUJD"),
    (
        "PHOTO;ENCODING=b;TYPE=JPEG;X-ABCROP-RECTANGLE=ABClipRect_1&0&0&1&1:QUJD",
        "PHOTO;X-ABCROP-RECTANGLE=ABClipRect_1&0&0&1&1:data:image/jpeg;base64,QUJD",
    ),
    ("PHOTO;VALUE=uri:https://example.com/a.png", "PHOTO:https://example.com/a.png"),
    (
        "PHOTO;VALUE=uri;TYPE=PNG:https://example.com/a.png",
        "PHOTO;MEDIATYPE=image/png:https://example.com/a.png",
    ),
    ("EMAIL;TYPE=WORK,PREF:a@example.com", "EMAIL;TYPE=WORK;PREF=1:a@example.com"),
    ("EMAIL;TYPE=PREF:a@example.com", "EMAIL;PREF=1:a@example.com"),
    ("item1.EMAIL;TYPE=INTERNET:a@example.com", "item1.EMAIL;TYPE=INTERNET:a@example.com"),
    ("X-ADDRESSBOOKSERVER-KIND:group", "KIND:group"),
    ("X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:x", "MEMBER:urn:uuid:x"),
    ("X-ANNIVERSARY:2010-06-12", "ANNIVERSARY:20100612"),
    ("X-GENDER:F;woman", "GENDER:F;woman"),
    ("BDAY:1996-04-15", "BDAY:19960415"),
    ("BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15", "BDAY:--0415"),
    ("BDAY;VALUE=date-time:1953-10-15T23:10:00Z", "BDAY:19531015T231000Z"),
    ("BDAY;VALUE=date-time:1953-10-15T23:10:00+02:00", "BDAY:19531015T231000+0200"),
    ("BDAY;VALUE=text:circa 1800", "BDAY;VALUE=text:circa 1800"),
    ("GEO:37.386013;-122.082932", "GEO:geo:37.386013,-122.082932"),
    ("TZ:-05:00", "TZ;VALUE=utc-offset:-0500"),
    ("TZ;VALUE=text:Europe/Berlin", "TZ:Europe/Berlin"),
    ("item1.X-ABLabel:_$!<Other>!$_", "item1.X-ABLabel:_$!<Other>!$_"),
    ("NOTE;LANGUAGE=de:Grüße\\, Welt\\n", "NOTE;LANGUAGE=de:Grüße\\, Welt\\n"),
    ('X-CUSTOM;X-PARAM="a:b":v', 'X-CUSTOM;X-PARAM="a:b":v'),
    ("RELATED;TYPE=friend:urn:uuid:y", "RELATED;TYPE=friend:urn:uuid:y"),
    ("X-ABShowAs:COMPANY", "X-ABShowAs:COMPANY"),
]

THREE_TO_FOUR = [
    ("NOTE;CHARSET=UTF-8:x", "NOTE:x"),
    ("TEL;TYPE=CELL;TYPE=VOICE:1", "TEL;TYPE=CELL,VOICE:1"),
    ('EMAIL;TYPE="work,home":a@example.com', "EMAIL;TYPE=work,home:a@example.com"),
    ("TEL;type=CELL;type=pref:1", "TEL;TYPE=CELL;PREF=1:1"),
    ("BDAY:19960415", "BDAY:19960415"),
    ("BDAY;VALUE=date:1996-04-15", "BDAY:19960415"),
    ("BDAY:April 15", "BDAY;VALUE=text:April 15"),
    ("X-GENDER:Male", "X-GENDER:Male"),
    ("PHOTO:data:image/png;base64,QUJD", "PHOTO:data:image/png;base64,QUJD"),
    ("PHOTO;ENCODING=BASE64;TYPE=image/gif:QUJD", "PHOTO:data:image/gif;base64,QUJD"),
    ("X-ADDRESSBOOKSERVER-KIND:GROUP", "KIND:GROUP"),
    ("LABEL;TYPE=WORK:Via Roma 1\\nRoma", "LABEL;TYPE=WORK:Via Roma 1\\nRoma"),
    ('PARAM;X-A="^n":v', "PARAM;X-A=^^n:v"),
]

FOUR_TO_THREE = [
    ("TEL;VALUE=uri;TYPE=cell:tel:+1-555-0100", "TEL;TYPE=cell:+1-555-0100"),
    ("TEL;VALUE=uri:tel:+1-555-0100;ext=7", "TEL:+1-555-0100\\;ext=7"),
    (
        'ADR;TYPE=home;LABEL="1 Main St^nSpringfield":;;1 Main St;Springfield;;;',
        "ADR;TYPE=home:;;1 Main St;Springfield;;;\r\nLABEL;TYPE=home:1 Main St\\nSpringfield",
    ),
    ("item2.ADR;LABEL=Here:;;x;;;;", "item2.ADR:;;x;;;;\r\nitem2.LABEL:Here"),
    ("PHOTO:data:image/svg+xml,%3Csvg%2F%3E", "PHOTO;ENCODING=b;TYPE=SVG+XML:PHN2Zy8+"),
    ("PHOTO:data:image/png;base64\\,QUJD", "PHOTO;ENCODING=b;TYPE=PNG:QUJD"),
    ("PHOTO;ENCODING=b;TYPE=JPEG:QUJD", "PHOTO;ENCODING=b;TYPE=JPEG:QUJD"),
    ("KEY;VALUE=text:-----BEGIN PGP", "KEY;VALUE=text:-----BEGIN PGP"),
    ("KIND:individual", "X-ADDRESSBOOKSERVER-KIND:individual"),
    ("BDAY:1996-04-15", "BDAY:1996-04-15"),
    ("BDAY:not a date", "BDAY:not a date"),
    ("TZ;VALUE=utc-offset:+01", "TZ:+01:00"),
    ("EMAIL;PREF=2:a@example.com", "EMAIL;PREF=2:a@example.com"),
    ('X-P;X-A="^^":v', "X-P;X-A=^:v"),
]


def _converted(line: str, source: str, target: str) -> bytes:
    return convert(parse(card(source, line)), target).data


@pytest.mark.parametrize(("three", "four"), BOTH_WAYS)
def test_both_ways(three: str, four: str) -> None:
    assert _converted(three, "3.0", "4.0") == card("4.0", four)
    assert _converted(four, "4.0", "3.0") == card("3.0", three)


@pytest.mark.parametrize(("three", "four"), THREE_TO_FOUR)
def test_three_to_four(three: str, four: str) -> None:
    assert _converted(three, "3.0", "4.0") == card("4.0", four)


@pytest.mark.parametrize(("four", "three"), FOUR_TO_THREE)
def test_four_to_three(four: str, three: str) -> None:
    assert _converted(four, "4.0", "3.0") == card("3.0", three)


@pytest.mark.parametrize(
    ("line", "source", "names"),
    [
        ("BDAY:1996-04", "4.0", ("BDAY",)),
        ("BDAY:1996", "4.0", ("BDAY",)),
        ("BDAY:---15", "4.0", ("BDAY",)),
        ("ANNIVERSARY:T1030", "4.0", ("ANNIVERSARY",)),
        ("BDAY:19531015T23", "4.0", ("BDAY",)),
        ("GEO:geo:37.38,-122.08,30", "4.0", ("GEO",)),
        ("GEO:geo:37.38,-122.08;u=10", "4.0", ("GEO",)),
        ("TZ;VALUE=uri:https://example.com/tz", "4.0", ("TZ",)),
        ("TZ;VALUE=utc-offset:east", "4.0", ("TZ",)),
        ("TEL;VALUE=uri:sip:a@example.com", "4.0", ("TEL",)),
        ('NOTE;X-A="two^nlines":x', "4.0", ("NOTE",)),
        ("NOTE;X-A=\"a ^'quote^'\":x", "4.0", ("NOTE",)),
        ("PHOTO:data:image/png;base64", "4.0", ("PHOTO",)),
        ("NOTE;ENCODING=QUOTED-PRINTABLE:caf=C3=A9", "3.0", ("NOTE",)),
        ("X-A;ENCODING=b:QUJD", "3.0", ("X-A",)),
    ],
)
def test_what_cannot_be_converted(line: str, source: str, names: tuple[str, ...]) -> None:
    target = "3.0" if source == "4.0" else "4.0"
    with pytest.raises(ConversionError) as refused:
        convert(parse(card(source, line, "NOTE:fine", line)), target)
    assert refused.value.properties == names
    assert refused.value.version == target
    assert refused.value.condition == "supported-address-data-conversion"


@pytest.mark.parametrize("name", sorted(ALL))
def test_same_version_is_the_card_itself(name: str) -> None:
    parsed = parse(ALL[name])
    assert convert(parsed, parsed.version) is parsed


@pytest.mark.parametrize("version", ["2.1", "4", ""])
def test_unsupported_target(version: str) -> None:
    with pytest.raises(UnsupportedVersion) as refused:
        convert(parse(APPLE_CONTACT), version)
    assert refused.value.condition == "supported-address-data"


def _lines(vcard: VCard) -> list[str]:
    return vcard.data.decode().replace("\r\n ", "").split("\r\n")


def _well_formed(vcard: VCard, version: str) -> None:
    assert vcard.version == version
    physical = vcard.data.split(b"\r\n")
    assert physical[:2] == [b"BEGIN:VCARD", f"VERSION:{version}".encode()]
    assert physical[-2:] == [b"END:VCARD", b""]
    assert all(len(line) <= 75 for line in physical)


def test_apple_contact_for_davx5_and_back() -> None:
    four = convert(parse(APPLE_CONTACT), "4.0")
    _well_formed(four, "4.0")
    lines = _lines(four)
    assert "item1.EMAIL;TYPE=INTERNET;PREF=1:johnny@example.com" in lines
    assert "TEL;TYPE=CELL,VOICE;PREF=1:+1 (555) 123-4567" in lines
    assert f"PHOTO:data:image/jpeg;base64,{JPEG_B64}" in lines
    assert "BDAY:--0415" in lines
    assert "CATEGORIES:Friends,Work" in lines
    assert f"X-ABUID:{APPLE_UID}:ABPerson" in lines
    three = convert(four, "3.0")
    _well_formed(three, "3.0")
    assert f"PHOTO;ENCODING=b;TYPE=JPEG:{JPEG_B64}" in _lines(three)
    assert "BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15" in _lines(three)
    assert "item1.EMAIL;TYPE=INTERNET,PREF:johnny@example.com" in _lines(three)


def test_groups_both_ways() -> None:
    four = convert(parse(APPLE_GROUP), "4.0")
    assert "KIND:group" in _lines(four)
    assert f"MEMBER:urn:uuid:{APPLE_UID}" in _lines(four)
    three = convert(parse(DAVX5_GROUP), "3.0")
    _well_formed(three, "3.0")
    assert "X-ADDRESSBOOKSERVER-KIND:group" in _lines(three)
    assert f"X-ADDRESSBOOKSERVER-MEMBER:{DAVX5_UID}" in _lines(three)


def test_davx5_contact_for_ios() -> None:
    three = convert(parse(DAVX5_CONTACT), "3.0")
    _well_formed(three, "3.0")
    lines = _lines(three)
    assert "FN:Zoë Çelik" in lines
    assert "EMAIL;TYPE=home,PREF:zoe@example.org" in lines
    assert "ADR;TYPE=work:;;Hauptstraße 1;Berlin;;10115;Germany" in lines
    assert "LABEL;TYPE=work:Hauptstraße 1\\n10115 Berlin" in lines
    assert "BDAY;X-APPLE-OMIT-YEAR=1604:1604-07-04" in lines
    assert "X-ANNIVERSARY:2010-06-12" in lines
    assert "X-GENDER:F" in lines
    assert f"PHOTO;ENCODING=b;TYPE=JPEG:{JPEG_B64}" in lines


def test_thunderbird_and_evolution() -> None:
    assert "EMAIL;TYPE=PREF:anna@example.net" in _lines(convert(parse(THUNDERBIRD), "3.0"))
    four = convert(parse(EVOLUTION), "4.0")
    _well_formed(four, "4.0")
    assert "TEL;TYPE=WORK,VOICE;X-EVOLUTION-UI-SLOT=1:+39 06 1234567" in _lines(four)
    assert "X-EVOLUTION-FILE-AS:Rossi\\, Mario" in _lines(four)


def test_the_stored_card_is_untouched() -> None:
    parsed = parse(DAVX5_CONTACT)
    convert(parsed, "3.0")
    assert parsed.data == DAVX5_CONTACT
