"""A folder as a ZIP (``GET /folder/?zip``), streamed as it is made: no temporary copy,
never more than one piece of one file in memory. Files are stored, not compressed (the
CRC is the only work done on the bytes, so a big folder streams at disk speed); the
archive is ZIP64 where it needs to be. Members another user's tree holds (owner-only
trees) are left out, as in listings."""

from __future__ import annotations

import time
import zipfile
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from davserver.backends.base import NotFound, Resource
from davserver.runtime.threads import offload

from .context import Context

PIECE = 1 << 20


class _Sink:
    """What zipfile writes to: bytes collected until the response takes them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


async def _files(ctx: Context, folder: str) -> AsyncIterator[Resource]:
    pending = [folder]
    while pending:
        path = pending.pop()
        try:
            async for batch in ctx.storage.children(path):
                for res in batch:
                    if not ctx.may_enter(res.path):
                        continue
                    if res.is_collection:
                        pending.append(res.path)
                    yield res
        except NotFound:
            continue


async def respond(ctx: Context, folder: Resource) -> web.StreamResponse:
    """Stream the ZIP of ``folder``."""
    name = (folder.name or ctx.prefix.rpartition("/")[2] or "files") + ".zip"
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        }
    )
    await resp.prepare(ctx.request)
    if ctx.request.method == "HEAD":
        await resp.write_eof()
        return resp
    sink = _Sink()
    base = len(folder.path) + 1 if folder.path else 0
    archive = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True)
    async for res in _files(ctx, folder.path):
        arcname = res.path[base:] + ("/" if res.is_collection else "")
        info = zipfile.ZipInfo(arcname, time.gmtime(max(res.mtime, 315532800))[:6])
        if res.is_collection:
            archive.writestr(info, b"")
            await resp.write(sink.take())
            continue
        try:
            body = await ctx.storage.read(res.path, inline_limit=PIECE)
        except NotFound:
            continue
        info.file_size = body.resource.size
        with archive.open(info, "w", force_zip64=body.resource.size > 0x7FFFFFFF) as member:
            if body.data is not None:
                member.write(body.data)
                await resp.write(sink.take())
            else:
                file = body.file
                assert file is not None
                try:
                    while chunk := await offload(file.read, PIECE):
                        member.write(chunk)
                        await resp.write(sink.take())
                finally:
                    await offload(file.close)
        await resp.write(sink.take())
    archive.close()
    await resp.write(sink.take())
    await resp.write_eof()
    return resp
