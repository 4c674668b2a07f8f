"""HTTP Basic authentication: the credentials of a request, and the challenge."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

REALM = "davserver"


def credentials(request: web.Request) -> tuple[str, str | None] | None:
    """The user name and password of a ``Basic`` Authorization header; None when the
    request has no such header, a None password for another scheme (nothing to check).
    A header that cannot be decoded gives empty strings, which no account matches."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else (name, "")


def challenge() -> web.Response:
    """The 401 that asks a client to authenticate."""
    return web.Response(
        status=401,
        text="401 Unauthorized\n",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )
