"""Reading small request bodies (XML) under a size limit."""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from .errors import DAVError
from .xml import XMLError, parse_request


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise DAVError(413, f"body of {length} bytes exceeds the limit of {limit}")
    whole = arrived(request)
    if whole is not None:
        if len(whole) > limit:
            raise DAVError(413, f"body exceeds the limit of {limit} bytes")
        return whole
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise DAVError(413, f"body exceeds the limit of {limit} bytes")
    return bytes(data)


def arrived(request: web.Request) -> bytes | None:
    """The whole body when all of it has arrived already (a small one usually comes with
    the head): taken at once, without iterating over the stream; else None."""
    content = request.content
    return content.read_nowait() if content.is_eof() else None


def has_body(request: web.Request) -> bool:
    """Whether the request announces a body (a length above zero, or chunks)."""
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )


async def read_xml(request: web.Request, limit: int) -> etree._Element | None:
    """The parsed XML body, None when there is none; 400 with the reason when malformed."""
    if not has_body(request):
        return None
    data = await read_limited(request, limit)
    if not data.strip():
        return None
    try:
        return await parse_request(data)
    except XMLError as exc:
        raise DAVError(400, str(exc)) from exc
