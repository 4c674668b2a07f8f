"""PHOTO, LOGO, SOUND and KEY between vCard 3.0 and 4.0. In 3.0 inline data is base64 with
``ENCODING=b`` and its format in TYPE (``PHOTO;ENCODING=b;TYPE=JPEG:...``), and a link is
``VALUE=uri``; in 4.0 the value is a URI, inline data a ``data:`` URI (RFC 2397), and a
link's media type is in MEDIATYPE."""

from __future__ import annotations

import base64
from urllib.parse import unquote_to_bytes

from .lines import Unrepresentable

MEDIA_PROPERTIES = {"PHOTO": "image", "LOGO": "image", "SOUND": "audio", "KEY": "application"}
"""The properties whose value is media, and the top-level type their 3.0 formats name."""

_KEY_TYPES = {"X509": "application/pkix-cert", "PGP": "application/pgp-keys"}
_KEY_FORMATS = {media: name for name, media in _KEY_TYPES.items()}
UNTYPED = "application/octet-stream"
"""The media type of inline data whose 3.0 line names no format."""


def media_type(prop: str, fmt: str) -> str:
    """The media type of a 3.0 format name (``JPEG`` of a PHOTO is image/jpeg)."""
    if "/" in fmt:
        return fmt.lower()
    if prop == "KEY" and fmt.upper() in _KEY_TYPES:
        return _KEY_TYPES[fmt.upper()]
    return f"{MEDIA_PROPERTIES[prop]}/{fmt.lower()}"


def format_name(prop: str, media: str) -> str:
    """The 3.0 format name of a media type (the way back of :func:`media_type`)."""
    media = media.lower()
    if prop == "KEY" and media in _KEY_FORMATS:
        return _KEY_FORMATS[media]
    top, _, sub = media.partition("/")
    return sub.upper() if top == MEDIA_PROPERTIES[prop] and sub else media


def data_uri(media: str, payload: str) -> str:
    """A ``data:`` URI of base64 ``payload`` (whitespace dropped)."""
    return f"data:{media};base64,{''.join(payload.split())}"


def split_data_uri(uri: str) -> tuple[str, str]:
    """(media type, or "" when it names none; the data as base64) of a ``data:`` URI.
    Raises :class:`Unrepresentable` for a malformed one."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise Unrepresentable("a data: URI without a comma")
    parts = header.split(";")
    if len(parts) > 1 and parts[-1].lower() == "base64":
        return parts[0], "".join(payload.split())
    return parts[0], base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
