"""Streamed uploads, gathered into pieces big enough to be worth a trip to a worker thread."""

from __future__ import annotations

from collections.abc import AsyncIterator

PIECE = 1 << 20
"""Bytes gathered before a piece is handed on."""


async def pieces(body: AsyncIterator[bytes], size: int = PIECE) -> AsyncIterator[bytes]:
    """The bytes of ``body`` in pieces of at least ``size`` bytes (the last one may be
    shorter); never more than one piece in memory."""
    pending: list[bytes] = []
    buffered = 0
    async for chunk in body:
        pending.append(chunk)
        buffered += len(chunk)
        if buffered >= size:
            yield b"".join(pending)
            pending, buffered = [], 0
    if pending:
        yield b"".join(pending)
