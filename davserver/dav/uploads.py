"""Resumable uploads over partial updates: the protocol of the web file manager, which
scripts can speak too (docs/browser.md, "Uploads").

A client picks a random upload id (8 to 64 letters, digits, ``-`` or ``_``) and sends
the file in pieces to the file's own URL with ``?upload=<id>``:

- ``PATCH`` with ``Content-Type: application/x-sabredav-partialupdate``,
  ``X-Update-Range: bytes=<offset>-<last>`` and ``X-Upload-Length: <bytes of the whole
  file>``: the piece is added at ``offset``, which must be the bytes received so far
  (else 416 with ``X-Upload-Offset: <received>``). 202 with ``X-Upload-Offset`` until
  the last piece; with the last one the whole file is stored in one write (one commit on
  git), checked like a PUT (conditional headers, locks, quota: an ``If-Match`` or
  ``If-None-Match`` belongs on the last piece), and the answer is the PUT's (201 or 204
  with the ETag).
- ``HEAD`` answers ``X-Upload-Offset`` (404 when there is no such upload): where to go
  on after the connection was cut.
- ``DELETE`` abandons it.

Pieces wait in the state folder (``state/uploads.py``), never in the tree: the stored
file appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from davserver.backends.base import AlreadyExists, Resource
from davserver.state.uploads import Busy, Upload, UploadStore

from . import quota
from .context import Context, ServiceKey
from .errors import DAVError
from .partial import UPDATE_TYPE, update_range
from .paths import href
from .preconditions import expectation
from .props import http_date
from .write import put_target

_ID = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")
SERVICE: ServiceKey[UploadStore] = ServiceKey("uploads")
PIECE = 256 << 10


def upload_id(request: web.Request) -> str | None:
    """The upload a request is about (None: it is no upload); 400 for a bad id."""
    if "?" not in request.raw_path:  # no query to parse (every HEAD and DELETE asks)
        return None
    value = request.query.get("upload")
    if value is None:
        return None
    if not _ID.match(value):
        raise DAVError(400, "an upload id is 8 to 64 letters, digits, - or _")
    return value


def _offset_headers(received: int, length: int) -> dict[str, str]:
    return {"X-Upload-Offset": str(received), "X-Upload-Length": str(length)}


async def piece(ctx: Context) -> web.StreamResponse | None:
    """PATCH ?upload=<id>: one piece (None: not an upload)."""
    upload = upload_id(ctx.request)
    if upload is None:
        return None
    request, path = ctx.request, ctx.path
    if request.content_type != UPDATE_TYPE:
        raise DAVError(415, f"a piece is sent as {UPDATE_TYPE}")
    size = request.content_length
    if size is None:
        raise DAVError(411, "a piece needs a Content-Length")
    offset = update_range(request.headers.get("X-Update-Range"), size)
    try:
        length = int(request.headers.get("X-Upload-Length", ""))
    except ValueError as exc:
        raise DAVError(400, "a piece needs X-Upload-Length: the bytes of the whole file") from exc
    if offset is None or offset < 0 or length < 0:
        raise DAVError(400, "a piece names its offset: bytes=<offset>-<last>")
    store = ctx.service(SERVICE)
    key = store.key(ctx.prefix, path, ctx.author, upload)
    found = await store.find(key)
    if found is None:
        if offset != 0:
            return _unsatisfiable(0, length)
        current = await put_target(ctx, path)
        quotas = ctx.tree.services.get(quota.SERVICE)
        if quotas is not None:
            room = await quotas.room(path)
            before = current.size if current is not None else 0
            if room is not None and length - before > room:
                raise quota.refusal("", room)
        await store.start(key, Upload(ctx.prefix, path, ctx.author, length))
        received = 0
    else:
        started, received = found
        if started.length != length:
            raise DAVError(409, f"this upload is {started.length} bytes long, not {length}")
    if offset != received:
        return _unsatisfiable(received, length)
    if received + size > length:
        raise DAVError(416, "the piece runs past the length of the upload")
    try:
        received = await store.append(key, offset, request.content.iter_chunked(PIECE))
    except Busy as exc:
        raise DAVError(409, str(exc)) from exc
    if received != offset + size:  # another piece came first, or this one was cut
        return _unsatisfiable(received, length)
    if received < length:
        return web.Response(status=202, headers=_offset_headers(received, length))
    try:
        res, created = await _store(ctx, store, key, length)
    finally:
        await store.drop(key)
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    headers.update(_offset_headers(length, length))
    if created:
        headers["Location"] = str(
            request.url.with_path(href(ctx.prefix, path, False), encoded=True).with_query(None)
        )
    return web.Response(status=201 if created else 204, headers=headers)


async def _store(ctx: Context, store: UploadStore, key: str, length: int) -> tuple[Resource, bool]:
    """The whole file, written like a PUT (one change)."""
    path = ctx.path
    await put_target(ctx, path)
    quotas = ctx.tree.services.get(quota.SERVICE)
    delta = length
    if quotas is not None and quotas.trees(path):
        current = await ctx.storage.stat(path)
        delta -= current.size if current is not None and not current.is_collection else 0
    try:
        charge: AbstractAsyncContextManager[None] = (
            quotas.charge(path, delta) if quotas is not None else contextlib.nullcontext()
        )
        async with charge, ctx.storage.change(author=ctx.author, message=f"PUT /{path}") as change:
            return await change.write(path, store.read(key), length, expect=expectation(ctx, path))
    except ValueError as exc:
        raise DAVError(400, str(exc)) from exc
    except AlreadyExists as exc:
        raise DAVError(405, "cannot PUT to a collection") from exc


def _unsatisfiable(received: int, length: int) -> web.Response:
    headers = {"Content-Range": f"bytes */{received}", **_offset_headers(received, length)}
    return web.Response(status=416, headers=headers, text="416: go on from X-Upload-Offset\n")


async def status(ctx: Context) -> web.StreamResponse | None:
    """HEAD ?upload=<id>: the bytes received (None: not an upload)."""
    upload = upload_id(ctx.request)
    if upload is None or ctx.request.method != "HEAD":
        return None
    store = ctx.service(SERVICE)
    found = await store.find(store.key(ctx.prefix, ctx.path, ctx.author, upload))
    if found is None:
        return web.Response(status=404)
    started, received = found
    return web.Response(status=200, headers=_offset_headers(received, started.length))


async def cancel(ctx: Context) -> web.StreamResponse | None:
    """DELETE ?upload=<id>: abandon the upload (None: not an upload)."""
    upload = upload_id(ctx.request)
    if upload is None:
        return None
    store = ctx.service(SERVICE)
    await store.drop(store.key(ctx.prefix, ctx.path, ctx.author, upload))
    return web.Response(status=204)
