"""207 Multi-Status answers, whole or streamed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from aiohttp import web

from .xml import MULTISTATUS_CLOSE, MULTISTATUS_OPEN, XML_CONTENT_TYPE

# Streamed answers are written in pieces of about this many characters.
FLUSH_AT = 64 << 10
SLICE = 0.002
"""Seconds of rendering after which a streamed answer lets other requests run."""

_T = TypeVar("_T")


def complete(responses: str | list[str], trailer: str = "") -> web.Response:
    """A 207 answer holding the given ``<D:response>`` elements, joined or each apart
    (then ``trailer``, such as a sync-token). One join: a sum of the four would copy a
    large answer thrice, a join of the elements first once more."""
    parts = [responses] if isinstance(responses, str) else responses
    return web.Response(
        status=207,
        body="".join((MULTISTATUS_OPEN, *parts, trailer, MULTISTATUS_CLOSE)).encode(),
        content_type=XML_CONTENT_TYPE,
        charset="utf-8",
    )


async def stream(
    request: web.Request, responses: AsyncIterator[str], trailer: str = ""
) -> web.StreamResponse:
    """A 207 answer written as the ``<D:response>`` elements come, never whole in memory."""
    resp = web.StreamResponse(status=207)
    resp.content_type = XML_CONTENT_TYPE
    resp.charset = "utf-8"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    pending = [MULTISTATUS_OPEN]
    size = 0
    async for piece in responses:
        pending.append(piece)
        size += len(piece)
        if size >= FLUSH_AT:
            await resp.write("".join(pending).encode())
            pending, size = [], 0
    pending.append(trailer + MULTISTATUS_CLOSE)
    await resp.write("".join(pending).encode())
    await resp.write_eof()
    return resp


class Slices:
    """Lets the event loop go once a long piece of work (rendering many responses) has
    held it for :data:`SLICE` seconds: call :meth:`tick` after each step."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = time.monotonic()

    async def tick(self) -> None:
        """Yield to the other requests when the slice is used up."""
        if time.monotonic() - self._started >= SLICE:
            await asyncio.sleep(0)
            self._started = time.monotonic()


async def render_in_slices(render: Callable[[_T], str], items: Sequence[_T]) -> AsyncIterator[str]:
    """The renderings of ``items``, handed over (and the event loop let go) every few
    milliseconds: a huge answer (many properties of many members) never holds up the
    other requests for longer than a slice."""
    started = time.monotonic()
    done: list[str] = []
    size = 0
    for item in items:
        piece = render(item)
        done.append(piece)
        size += len(piece)
        # Pieces stay around FLUSH_AT: a larger one (a batch of 512 members is some
        # 400 KB) is a fresh mmap for each of its copies (joined, encoded, chunked,
        # buffered by the transport), page faults included: a tenth of a Depth 1's CPU.
        if size >= FLUSH_AT:
            yield "".join(done)
            done, size = [], 0
        if time.monotonic() - started >= SLICE:
            if done:
                yield "".join(done)
                done, size = [], 0
            await asyncio.sleep(0)
            started = time.monotonic()
    if done:
        yield "".join(done)
