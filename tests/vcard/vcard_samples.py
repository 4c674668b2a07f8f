"""vCards the way the CardDAV clients write them (CLIENTS.md #23-#26), for the vCard tests:
Apple's 3.0 with item groups, folded inline photos and X-ADDRESSBOOKSERVER groups, DAVx5's
4.0 (ez-vcard) with data: URI photos and KIND:group, Thunderbird's 4.0, Evolution's 3.0."""

from __future__ import annotations

import base64


def _folded(line: str) -> str:
    """``line`` folded the way Apple does (75 octets, CRLF and one space), ASCII only."""
    pieces = [line[:75]] + [line[i : i + 74] for i in range(75, len(line), 74)]
    return "\r\n ".join(pieces)


def _card(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0]) + bytes((i * 37 + 11) % 256 for i in range(300))
"""A few hundred octets that start like a JPEG."""
JPEG_B64 = base64.b64encode(JPEG).decode()

APPLE_UID = "5D5B3E1A-2B5C-4E3B-9F2A-1C2D3E4F5A6B"
DAVX5_UID = "urn:uuid:2b7a4f6c-9d01-4e3b-9f2a-0e7e0c3a5b1d"

APPLE_CONTACT = _card(
    "BEGIN:VCARD",
    "VERSION:3.0",
    "PRODID:-//Apple Inc.//iPhone OS 17.2//EN",
    "N:Appleseed;Johnny;;;",
    "FN:Johnny Appleseed",
    "ORG:Example Fruit Co.;",
    "item1.EMAIL;type=INTERNET;type=pref:johnny@example.com",
    "item1.X-ABLabel:_$!<Other>!$_",
    "TEL;type=CELL;type=VOICE;type=pref:+1 (555) 123-4567",
    "item2.ADR;type=HOME;type=pref:;;1 Orchard Way;Cupertino;CA;95014;United States",
    "item2.X-ABADR:us",
    "BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15",
    _folded(f"PHOTO;ENCODING=b;TYPE=JPEG:{JPEG_B64}"),
    "CATEGORIES:Friends,Work",
    f"UID:{APPLE_UID}",
    f"X-ABUID:{APPLE_UID}:ABPerson",
    "END:VCARD",
)

APPLE_GROUP = _card(
    "BEGIN:VCARD",
    "VERSION:3.0",
    "PRODID:-//Apple Inc.//Mac OS X 14.2//EN",
    "N:Friends",
    "FN:Friends",
    "X-ADDRESSBOOKSERVER-KIND:group",
    f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{APPLE_UID}",
    "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:0E7E0C3A-5B1D-4D0B-8C5E-2B7A4F6C9D01",
    "REV:2024-01-02T10:20:30Z",
    "UID:B1D2F3A4-5C6D-4E7F-8091-A2B3C4D5E6F7",
    "END:VCARD",
)

DAVX5_CONTACT = _card(
    "BEGIN:VCARD",
    "VERSION:4.0",
    "PRODID:DAVx5/4.3.11-ose ez-vcard/0.12.1",
    f"UID:{DAVX5_UID}",
    "FN:Zoë Çelik",
    "N:Çelik;Zoë;;;",
    "NICKNAME:Zo,Zozo",
    "EMAIL;TYPE=home;PREF=1:zoe@example.org",
    "EMAIL;TYPE=work:zoe.celik@example.com",
    "TEL;TYPE=cell:+49 170 1234567",
    'ADR;TYPE=work;LABEL="Hauptstraße 1^n10115 Berlin":;;Hauptstraße 1;Berlin;;10115;Germany',
    "BDAY:--0704",
    "ANNIVERSARY:20100612",
    "GENDER:F",
    "CATEGORIES:Family,Climbing",
    _folded(f"PHOTO:data:image/jpeg;base64,{JPEG_B64}"),
    "REV:20240102T102030Z",
    "END:VCARD",
)

DAVX5_GROUP = _card(
    "BEGIN:VCARD",
    "VERSION:4.0",
    "PRODID:DAVx5/4.3.11-ose ez-vcard/0.12.1",
    "UID:4d7c6a3e-1f2b-4c5d-8e9f-a0b1c2d3e4f5",
    "FN:Climbing",
    "KIND:group",
    f"MEMBER:{DAVX5_UID}",
    "REV:20240102T102030Z",
    "END:VCARD",
)

THUNDERBIRD = _card(
    "BEGIN:VCARD",
    "VERSION:4.0",
    "EMAIL;PREF=1:anna@example.net",
    "FN:Anna Example",
    "N:Example;Anna;;;",
    "NOTE:Met at the conference\\, booth 3\\nAsk about the talk",
    "UID:c3a2f0b4-8d1e-4f5a-9b6c-7d8e9f0a1b2c",
    "END:VCARD",
)

EVOLUTION = (
    b"BEGIN:VCARD\n"
    b"VERSION:3.0\n"
    b"UID:pas-id-65A1B2C3000000AB\n"
    b"FN:Mario Rossi\n"
    b"N:Rossi;Mario;;;\n"
    b"X-EVOLUTION-FILE-AS:Rossi\\, Mario\n"
    b"EMAIL;TYPE=WORK;X-EVOLUTION-UI-SLOT=1:mario@example.it\n"
    b"TEL;TYPE=WORK;TYPE=VOICE;X-EVOLUTION-UI-SLOT=1:+39 06 1234567\n"
    b"ADR;TYPE=WORK:;;Via Roma 1;Roma;;00100;Italia\n"
    b"LABEL;TYPE=WORK:Via Roma 1\\n00100 Roma\\nItalia\n"
    b"REV:2024-01-02T10:20:30Z\n"
    b"END:VCARD\n"
)
"""Evolution's 3.0, here with bare LF line ends as some exporters write them."""

ALL = {
    "apple-contact": APPLE_CONTACT,
    "apple-group": APPLE_GROUP,
    "davx5-contact": DAVX5_CONTACT,
    "davx5-group": DAVX5_GROUP,
    "thunderbird": THUNDERBIRD,
    "evolution": EVOLUTION,
}


def card(version: str, *lines: str, uid: str = "u1", fn: str = "Someone") -> bytes:
    """A small vCard of ``version`` with UID and FN, plus ``lines``."""
    return _card("BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid}", f"FN:{fn}", *lines, "END:VCARD")
