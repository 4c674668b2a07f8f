"""A vCard given in the other version (RFC 6352 §5.1.1: address-data ``version`` and GET's
Accept). Only answers are converted; what is stored is never rewritten. Same version in,
the card itself out.

Every property keeps its place, group and name as written (parameter names come out
upper-cased); what differs between the versions is mapped, each mapping both ways unless
marked, so 3.0 → 4.0 → 3.0 gives back the same meaning::

    vCard 3.0                                 vCard 4.0
    PHOTO;ENCODING=b;TYPE=JPEG:<base64>       PHOTO:data:image/jpeg;base64,<base64>
    PHOTO;VALUE=uri;TYPE=PNG:<uri>            PHOTO;MEDIATYPE=image/png:<uri>
      (PHOTO, LOGO, SOUND, KEY)
    TYPE=...,PREF                             PREF=1
    X-ADDRESSBOOKSERVER-KIND:group            KIND:group
    X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:x     MEMBER:urn:uuid:x
    X-ANNIVERSARY:2010-06-12                  ANNIVERSARY:20100612
    X-GENDER:M (when in 4.0 syntax)           GENDER:M
    BDAY:1996-04-15                           BDAY:19960415
    BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15    BDAY:--0415
    GEO:37.38;-122.08                         GEO:geo:37.38,-122.08
    TZ:-05:00                                 TZ;VALUE=utc-offset:-0500
    TZ;VALUE=text:Europe/Berlin               TZ:Europe/Berlin
    TEL:+1-555                             <- TEL;VALUE=uri:tel:+1-555
    ADR + LABEL;TYPE=<the ADR's>:...       <- ADR;LABEL="..."
    CHARSET=... dropped                    ->

Everything else, X- properties included, passes through as it is: both versions allow
names and parameters they do not define, and clients skip what they do not know. What
cannot be said in the target version makes the whole conversion fail with
:class:`~.errors.ConversionError` naming the properties: a 4.0 date of reduced accuracy
(``1996-04``, ``---15``), a GEO with altitude or uncertainty, a TZ or TEL that is
another URI, a parameter value with a newline or a quote, an ENCODING other than b.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from . import dates, media
from .errors import ConversionError, UnsupportedVersion
from .lines import Unrepresentable, render
from .parse import VERSIONS, Property, VCard, param_values, parse
from .values import escape, split_raw, unescape

_APPLE_KIND = "X-ADDRESSBOOKSERVER-KIND"
_APPLE_MEMBER = "X-ADDRESSBOOKSERVER-MEMBER"
_RENAMED_TO_4 = {_APPLE_KIND: "KIND", _APPLE_MEMBER: "MEMBER", "X-ANNIVERSARY": "ANNIVERSARY"}
_RENAMED_TO_3 = {
    "KIND": _APPLE_KIND,
    "MEMBER": _APPLE_MEMBER,
    "ANNIVERSARY": "X-ANNIVERSARY",
    "GENDER": "X-GENDER",
}
_SEXES = {"", "M", "F", "O", "N", "U"}
_DATES = {"BDAY", "ANNIVERSARY"}
_NUMBER = r"[+-]?\d+(?:\.\d+)?"


@dataclass(slots=True)
class _Line:
    """A property on its way to the other version."""

    written: str
    name: str
    params: list[tuple[str, list[str]]]
    value: str

    @classmethod
    def of(cls, prop: Property) -> _Line:
        # TYPE="work,home" is two types (see parse.param_values).
        params = [(p.name, list(param_values([p], p.name) or ())) for p in prop.params]
        return cls(prop.written_name, prop.name, params, prop.value)

    def get(self, name: str) -> list[str] | None:
        found = [v for n, values in self.params if n == name for v in values]
        return found if any(n == name for n, _ in self.params) else None

    def pop(self, name: str) -> list[str] | None:
        found = self.get(name)
        self.params = [(n, values) for n, values in self.params if n != name]
        return found

    def put(self, name: str, values: list[str]) -> None:
        """Parameter ``name`` set to ``values`` (removed if none) where it first was, or
        last if it was not there."""
        at = next((i for i, (n, _) in enumerate(self.params) if n == name), len(self.params))
        self.pop(name)
        if values:
            self.params.insert(at, (name, values))

    def lower(self, name: str) -> str | None:
        """The first value of parameter ``name``, lower-cased."""
        values = self.get(name)
        return values[0].lower() if values else None

    def rename(self, name: str) -> None:
        group, dot, _ = self.written.rpartition(".")
        self.written, self.name = f"{group}{dot}{name}", name


def convert(card: VCard, version: str) -> VCard:
    """``card`` as a vCard ``version``. Raises :class:`~.errors.UnsupportedVersion` for a
    version other than 3.0 and 4.0, :class:`~.errors.ConversionError` when it cannot be
    said faithfully."""
    if version not in VERSIONS:
        raise UnsupportedVersion(f"vCard {version} (3.0 and 4.0 are supported)")
    if version == card.version:
        return card
    step = _to_four if version == "4.0" else _to_three
    out = ["BEGIN:VCARD\r\n", f"VERSION:{version}\r\n"]
    failed: dict[str, None] = {}
    for prop in card.properties:
        if prop.name == "VERSION":
            continue
        try:
            out += [render(x.written, x.params, x.value, version) for x in step(_Line.of(prop))]
        except Unrepresentable:
            failed[prop.name] = None
    if failed:
        raise ConversionError(version, tuple(failed))
    out.append("END:VCARD\r\n")
    return parse("".join(out).encode())


def _to_four(line: _Line) -> Iterator[_Line]:
    if line.name in _RENAMED_TO_4:
        line.rename(_RENAMED_TO_4[line.name])
    elif line.name == "X-GENDER" and split_raw(line.value, ";")[0].strip().upper() in _SEXES:
        line.rename("GENDER")
    if line.name in _DATES:
        _date_to_four(line)
    elif line.name in media.MEDIA_PROPERTIES:
        _media_to_four(line)
    elif line.name == "GEO":
        parts = split_raw(line.value, ";")
        if len(parts) == 2 and all(_is_number(p) for p in parts):
            line.value = f"geo:{parts[0].strip()},{parts[1].strip()}"
    elif line.name == "TZ":
        _tz_to_four(line)
    if line.pop("ENCODING") is not None:
        raise Unrepresentable(f"ENCODING on {line.name}")
    line.pop("CHARSET")
    types = line.get("TYPE") or []
    kept = [t for t in types if t.lower() != "pref"]
    line.put("TYPE", kept)
    if len(kept) < len(types) and line.get("PREF") is None:
        line.params.append(("PREF", ["1"]))
    yield line


def _to_three(line: _Line) -> Iterator[_Line]:
    if line.name in _RENAMED_TO_3:
        line.rename(_RENAMED_TO_3[line.name])
    label = None
    if line.name in ("BDAY", "X-ANNIVERSARY"):
        _date_to_three(line)
    elif line.name in media.MEDIA_PROPERTIES:
        _media_to_three(line)
    elif line.name == "GEO":
        _geo_to_three(line)
    elif line.name == "TZ":
        _tz_to_three(line)
    elif line.name == "TEL" and line.lower("VALUE") == "uri":
        if not line.value.lower().startswith("tel:"):
            raise Unrepresentable("a TEL that is not a tel: URI")
        line.pop("VALUE")
        line.value = escape(unquote(line.value[4:]))
    elif line.name == "ADR":
        label = line.pop("LABEL")
    if line.get("PREF") == ["1"]:
        line.pop("PREF")
        line.put("TYPE", [*(line.get("TYPE") or []), "PREF"])
    yield line
    if label is not None:
        # vCard 3.0 has the delivery label as a property of its own beside the ADR.
        group, dot, _ = line.written.rpartition(".")
        types = line.get("TYPE")
        params = [("TYPE", types)] if types else []
        yield _Line(f"{group}{dot}LABEL", "LABEL", params, escape(",".join(label)))


def _is_number(text: str) -> bool:
    return re.fullmatch(_NUMBER, text.strip()) is not None


def _date_to_four(line: _Line) -> None:
    if line.lower("VALUE") == "text":
        return
    omit = line.get(dates.OMIT_YEAR)
    converted = dates.to_four(line.value, omit[0] if omit else None)
    line.pop("VALUE")
    if converted is None:
        line.params.append(("VALUE", ["text"]))
        return
    line.value, omitted = converted
    if omitted:
        line.pop(dates.OMIT_YEAR)


def _date_to_three(line: _Line) -> None:
    if line.lower("VALUE") == "text":
        return
    converted = dates.to_three(line.value)
    if converted is None:
        return
    line.value, omit_year, is_date_time = converted
    line.pop("VALUE")
    if is_date_time:
        line.params.append(("VALUE", ["date-time"]))
    if omit_year:
        line.params.append((dates.OMIT_YEAR, [omit_year]))


def _media_to_four(line: _Line) -> None:
    encoding = line.lower("ENCODING")
    if encoding in ("b", "base64"):
        line.pop("ENCODING")
        line.pop("VALUE")
        types = line.get("TYPE") or []
        mediatype = media.media_type(line.name, types[0]) if types and types[0] else media.UNTYPED
        line.value = media.data_uri(mediatype, line.value)
    elif encoding is None and line.lower("VALUE") in ("uri", "url"):
        line.pop("VALUE")
        types = line.get("TYPE") or []
        if types and types[0]:
            line.params.append(("MEDIATYPE", [media.media_type(line.name, types[0])]))
    else:
        return
    line.put("TYPE", types[1:])


def _media_to_three(line: _Line) -> None:
    if line.get("ENCODING") is not None or line.lower("VALUE") not in (None, "uri"):
        return  # inline data written the 3.0 way already, or a KEY as text
    line.pop("VALUE")
    mediatype = (line.pop("MEDIATYPE") or [""])[0]
    types = line.pop("TYPE") or []
    # Some writers escape the comma of a data: URI; a URI never holds a backslash.
    uri = unescape(line.value)
    if uri.lower().startswith("data:"):
        mediatype, line.value = media.split_data_uri(uri)
        line.params.insert(0, ("ENCODING", ["b"]))
    else:
        line.params.insert(0, ("VALUE", ["uri"]))
    if mediatype and mediatype.lower() != media.UNTYPED:
        types.insert(0, media.format_name(line.name, mediatype))
    if types:
        line.params.insert(1, ("TYPE", types))  # where Apple has it, after ENCODING


def _geo_to_three(line: _Line) -> None:
    if not line.value.lower().startswith("geo:"):
        return
    found = re.fullmatch(rf"(?i)geo:({_NUMBER}),({_NUMBER})", line.value.strip())
    if found is None:
        raise Unrepresentable("a geo: URI with more than latitude and longitude")
    line.value = f"{found.group(1)};{found.group(2)}"


def _tz_to_four(line: _Line) -> None:
    value_type = line.lower("VALUE")
    if value_type == "text":
        line.pop("VALUE")
    elif value_type in (None, "utc-offset"):
        found = re.fullmatch(r"([+-])(\d\d):?(\d\d)", line.value.strip())
        if found is not None:
            line.pop("VALUE")
            line.params.append(("VALUE", ["utc-offset"]))
            line.value = "".join(found.groups())


def _tz_to_three(line: _Line) -> None:
    value_type = line.lower("VALUE")
    if value_type == "utc-offset":
        found = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", line.value.strip())
        if found is None:
            raise Unrepresentable(f"the UTC offset {line.value}")
        sign, hours, minutes = found.groups()
        line.pop("VALUE")
        line.value = f"{sign}{hours}:{minutes or '00'}"
    elif value_type in (None, "text"):
        line.pop("VALUE")
        line.params.append(("VALUE", ["text"]))
    else:
        raise Unrepresentable("a TZ that is a URI")
