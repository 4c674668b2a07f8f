"""Content-Encoding for static files: Accept-Encoding negotiation and on-the-fly gzip."""

from __future__ import annotations

import functools
import zlib
from typing import BinaryIO

from aiohttp import web

from davserver.runtime.threads import offload

GZIP_CHUNK = 256 << 10
_GZIP_LEVEL = 6
# Precompressed siblings: (coding, file suffix), in order of preference.
SIBLINGS = (("br", ".br"), ("gzip", ".gz"))


@functools.lru_cache(maxsize=256)
def accepted(header: str) -> frozenset[str]:
    """The codings an Accept-Encoding value allows (q > 0), ``*`` standing for any other.

    Codings the client lists with q=0 are left out even when ``*`` is there.
    """
    allowed: set[str] = set()
    refused: set[str] = set()
    for item in header.lower().split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip()
        if not coding:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        (allowed if q > 0 else refused).add(coding)
    if "*" in allowed:
        allowed.update(c for c, _ in SIBLINGS if c not in refused)
    if "x-gzip" in allowed and "gzip" not in refused:
        allowed.add("gzip")
    return frozenset(allowed - refused)


def gzip_bytes(data: bytes) -> bytes:
    """``data`` as one gzip member (deterministic: no name, no time stamp)."""
    comp = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def _next_gzip_chunk(file: BinaryIO, comp: zlib._Compress) -> tuple[bytes, bool]:
    """Read and compress the next piece of ``file``; True once the file is exhausted."""
    data = file.read(GZIP_CHUNK)
    if not data:
        return comp.flush(), True
    return comp.compress(data), False


async def stream_gzip(
    request: web.BaseRequest, file: BinaryIO, headers: dict[str, str]
) -> web.StreamResponse:
    """Send an open file gzip-compressed as it is read (chunked, never whole in memory)."""
    try:
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        if request.method != "HEAD":
            comp = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)
            done = False
            while not done:
                chunk, done = await offload(_next_gzip_chunk, file, comp)
                if chunk:
                    await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await offload(file.close)


def is_compressible(content_type: str, patterns: tuple[str, ...]) -> bool:
    """Whether a type matches one of ``patterns`` (``text/*`` style or exact)."""
    base = content_type.partition(";")[0].strip().lower()
    for pattern in patterns:
        if pattern.endswith("/*"):
            if base.startswith(pattern[:-1]):
                return True
        elif base == pattern:
            return True
    return False
