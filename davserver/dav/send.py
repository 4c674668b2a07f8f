"""Sending a stored body: whole, one range or several, from memory or by sendfile."""

from __future__ import annotations

import asyncio
import secrets
from typing import BinaryIO

from aiohttp import web

from davserver.backends.base import Body
from davserver.runtime.threads import offload

from . import conditions, ranges


class _FileResponse(web.StreamResponse):
    """Writes parts of an open file with ``loop.sendfile`` after the headers."""

    def __init__(
        self,
        file: BinaryIO,
        parts: list[tuple[bytes, int, int]],
        trailer: bytes,
        *,
        status: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._file = file
        self._parts = parts
        self._trailer = trailer

    async def prepare(self, request: web.BaseRequest) -> None:
        loop = asyncio.get_running_loop()
        try:
            await super().prepare(request)
            if request.method != "HEAD":
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("connection lost")
                for head, offset, count in self._parts:
                    if head:
                        await self.write(head)
                    try:
                        await loop.sendfile(transport, self._file, offset, count)
                    except RuntimeError as exc:  # asyncio's word for a closing transport
                        if not transport.is_closing():
                            raise
                        raise ConnectionResetError("connection lost") from exc
                if self._trailer:
                    await self.write(self._trailer)
            await self.write_eof()
        finally:
            await offload(self._file.close)


def _parts_plan(
    wanted: list[tuple[int, int]], size: int, content_type: str
) -> tuple[list[tuple[bytes, int, int]], bytes, str, int]:
    """Multipart/byteranges framing: (head, offset, count) per part, the trailer,
    the boundary and the total body length."""
    boundary = secrets.token_hex(12)
    parts: list[tuple[bytes, int, int]] = []
    total = 0
    for start, end in wanted:
        head = (
            f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
        ).encode()
        parts.append((head, start, end - start + 1))
        total += len(head) + end - start + 1
    trailer = f"\r\n--{boundary}--\r\n".encode()
    return parts, trailer, boundary, total + len(trailer)


def respond(
    body: Body, wanted: list[tuple[int, int]] | None, headers: dict[str, str]
) -> web.StreamResponse:
    """The response carrying ``body``, or the ``wanted`` byte ranges of it; its
    Content-Type is ``headers``' when given, else the resource's."""
    res = body.resource
    # The caller's Content-Type (one with a charset) wins over the resource's bare type.
    default = res.content_type or "application/octet-stream"
    content_type = headers.setdefault("Content-Type", default)
    headers["Accept-Ranges"] = "bytes"
    if wanted is None and body.data is not None:  # the common case, in short
        return web.Response(body=body.data, headers=headers)
    size = res.size
    if wanted is None:
        status, parts, trailer = 200, [(b"", 0, size)], b""
        headers["Content-Length"] = str(size)
    elif len(wanted) == 1:
        start, end = wanted[0]
        status, parts, trailer = 206, [(b"", start, end - start + 1)], b""
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
    else:
        parts, trailer, boundary, total = _parts_plan(wanted, size, content_type)
        status = 206
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        headers["Content-Length"] = str(total)
    if body.data is not None:
        data = body.data
        if status == 200:
            payload = data
        else:
            payload = b"".join(head + data[off : off + n] for head, off, n in parts) + trailer
        del headers["Content-Length"]
        return web.Response(status=status, body=payload, headers=headers)
    assert body.file is not None
    return _FileResponse(body.file, parts, trailer, status=status, headers=headers)


def unsatisfiable(size: int) -> web.Response:
    """The 416 answer to a Range that misses the body entirely."""
    return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})


async def close(body: Body) -> None:
    """Close the file of a body that will not be sent."""
    if body.file is not None:
        await offload(body.file.close)


async def ranged(
    request: web.BaseRequest, body: Body, headers: dict[str, str]
) -> web.StreamResponse:
    """The answer to a GET of ``body`` whose conditions hold: the Range it asks for (when
    If-Range still matches), 416 when that range misses, else the whole body."""
    res = body.resource
    wanted = None
    range_header = request.headers.get("Range")
    if range_header is not None and conditions.if_range_holds(
        request.headers.get("If-Range", res.etag), res
    ):
        try:
            wanted = ranges.parse(range_header, res.size)
        except ranges.Unsatisfiable:
            await close(body)
            return unsatisfiable(res.size)
    return respond(body, wanted, headers)
