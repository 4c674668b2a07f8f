"""PUT, DELETE and MKCOL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from davserver.backends.base import AlreadyExists, DeleteFailure, FileChange, Resource

from . import checksums, conditions, multistatus, quota
from .body import arrived, has_body, read_limited
from .context import Context
from .errors import DAVError
from .locking import require_unlocked
from .paths import href
from .preconditions import expectation
from .props import http_date
from .xml import status_line

# Bodies up to this size are read at once and written in one step; larger ones stream.
SMALL_BODY = 256 << 10
STREAM_CHUNK = 256 << 10


def _expected_length(request: web.Request) -> int | None:
    """The length a chunked upload announces (macOS Finder's X-Expected-Entity-Length)."""
    value = request.headers.get("X-Expected-Entity-Length")
    if value is None or request.content_length is not None:
        return request.content_length
    try:
        return int(value)
    except ValueError as exc:
        raise DAVError(400, "X-Expected-Entity-Length is not a number") from exc


async def put_target(ctx: Context, path: str) -> Resource | None:
    """What a PUT replaces (None: it creates), once the checks every PUT passes hold:
    not a collection (405), the conditional headers (412), the locks (423)."""
    current = await ctx.storage.stat(path)
    if current is not None and current.is_collection:
        raise DAVError(405, "cannot PUT to a collection")
    if conditions.evaluate(ctx.request.headers, current, safe_method=False) is not None:
        raise DAVError(412, "precondition failed")
    require_unlocked(ctx, path, member=current is None)
    return current


async def request_body(request: web.Request) -> bytes | AsyncIterator[bytes]:
    """An upload's body: whole when it is small enough (at once when all of it came with
    the head, the usual case), else the stream of its chunks."""
    length = request.content_length
    if length is not None and length <= SMALL_BODY:
        return arrived(request) or await request.read()
    return request.content.iter_chunked(STREAM_CHUNK)


MTIME_RANGE = (0.0, 253402300799.0)
"""Modification times a client may set: from 1970 to the end of year 9999."""


def client_mtime(value: str) -> float:
    """A modification time a client sends (``X-OC-Mtime``, ``{DAV:}lastmodified``):
    seconds since the epoch; 400 for anything else."""
    try:
        mtime = float(value.strip())
    except ValueError as exc:
        raise DAVError(400, f"{value!r} is not a time in seconds since 1970") from exc
    if not MTIME_RANGE[0] <= mtime <= MTIME_RANGE[1]:
        raise DAVError(400, f"{value!r} is not a time in seconds since 1970")
    return mtime


async def put(ctx: Context) -> web.StreamResponse:
    """Store the body atomically: 201 created, 204 replaced. ``X-OC-Mtime`` sets the
    file's modification time; an ``OC-Checksum`` is checked before anything is stored
    (400 when the body does not match) and the checksums are kept."""
    request, path = ctx.request, ctx.path
    if "Content-Range" in request.headers:
        raise DAVError(400, "partial PUT with Content-Range is not supported")
    h = request.headers
    if (
        ctx.locks.may_have_locks(ctx.prefix)
        # What put_target's verdicts depend on (If-Modified-Since concerns GET and HEAD
        # only), and a header whose 400 must keep coming after its 405.
        or "If-Match" in h
        or "If-None-Match" in h
        or "If-Unmodified-Since" in h
        or "X-Expected-Entity-Length" in h
    ):
        await put_target(ctx, path)
    # Otherwise put_target could only refuse a collection, and the write below does that
    # itself (AlreadyExists): a small PUT is then one trip to the disk instead of two.
    expected = _expected_length(request)
    mtime = client_mtime(h["X-OC-Mtime"]) if "X-OC-Mtime" in h else None
    service = ctx.tree.services.get(checksums.SERVICE) if "OC-Checksum" in h else None
    announced = checksums.parse_header(h["OC-Checksum"]) if service is not None else None
    hasher = checksums.Hasher() if service is not None else None
    body = await request_body(request)
    quotas = ctx.tree.services.get(quota.SERVICE)
    charge: AbstractAsyncContextManager[None] = contextlib.nullcontext()
    old_size = -1  # for a body of unknown length: counted once stored
    if quotas is not None and quotas.trees(path):
        old = await ctx.storage.stat(path)
        before = old.size if old is not None and not old.is_collection else 0
        if expected is not None:
            charge = quotas.charge(path, expected - before)
        elif not isinstance(body, bytes):
            room = await quotas.room(path)
            body = quota.limited(body, (room or 0) + before)
            old_size = before
    try:
        if hasher is not None:
            if isinstance(body, bytes):
                await hasher.feed(body)
                checksums.check(hasher.sums(), announced)
            else:
                body = checksums.hashed(body, hasher, announced)
        async with charge, ctx.storage.change(author=ctx.author, message=f"PUT /{path}") as change:
            expect = expectation(ctx, path)
            if mtime is not None and isinstance(change, FileChange):
                res, created = await change.write(path, body, expected, expect=expect, mtime=mtime)
            else:
                mtime = None
                res, created = await change.write(path, body, expected, expect=expect)
        if quotas is not None and old_size >= 0:
            await quotas.adjust(path, res.size - old_size)
    except ValueError as exc:
        raise DAVError(400, str(exc)) from exc
    except AlreadyExists as exc:
        raise DAVError(405, "cannot PUT to a collection") from exc
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    if mtime is not None:
        headers["X-OC-MTime"] = "accepted"
    if service is not None and hasher is not None:
        sums = hasher.sums()
        await service.remember(res.etag, sums)
        headers["OC-Checksum"] = checksums.header(sums)
    if created:
        headers["Location"] = str(
            request.url.with_path(href(ctx.prefix, path, False), encoded=True)
        )
    return web.Response(status=201 if created else 204, headers=headers)


async def mkcol(ctx: Context) -> web.StreamResponse:
    """Create a collection: 201; 405 when something is there; 415 with a body."""
    request, path = ctx.request, ctx.path
    if has_body(request) and await read_limited(request, ctx.settings.max_xml_size):
        raise DAVError(415, "MKCOL with a body is not supported here")
    if await ctx.storage.stat(path) is not None:
        raise DAVError(405, "something already exists there")
    require_unlocked(ctx, path, member=True)
    try:
        async with ctx.storage.change(author=ctx.author, message=f"MKCOL /{path}") as change:
            await change.mkcol(path)
    except AlreadyExists as exc:
        raise DAVError(405, "something already exists there") from exc
    return web.Response(status=201)


async def delete(ctx: Context) -> web.StreamResponse:
    """Delete a resource and everything below it: 204, or 207 naming what stayed."""
    request, path = ctx.request, ctx.path
    res = await ctx.storage.stat(path)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    if not path:
        raise DAVError(403, "the root of a mount cannot be deleted")
    if res.is_collection and request.headers.get("Depth", "infinity").lower() != "infinity":
        raise DAVError(400, "DELETE of a collection needs Depth: infinity")
    if conditions.evaluate(request.headers, res, safe_method=False) is not None:
        raise DAVError(412, "precondition failed")
    require_unlocked(ctx, path, member=True, tree=True)
    quotas = ctx.tree.services.get(quota.SERVICE)
    counted = quotas is not None and bool(quotas.trees(path))
    size = (res.size if not res.is_collection else await quotas.size(path)) if quotas else 0
    async with ctx.storage.change(author=ctx.author, message=f"DELETE /{path}") as change:
        failures = await change.delete(path, expect=expectation(ctx, path))
    if quotas is not None and counted:
        if failures:  # some of it stayed: count what is left when next needed
            await quotas.adjust(path, -size + await quotas.size(path))
        else:
            await quotas.adjust(path, -size)
    if not failures:
        return web.Response(status=204)
    return multistatus.complete(failure_responses(ctx.prefix, failures))


def failure_responses(prefix: str, failures: Sequence[DeleteFailure]) -> str:
    """The ``<D:response>`` elements of members a DELETE (or an overwrite) left behind."""
    return "".join(
        f"<D:response><D:href>{href(prefix, f.path, False)}</D:href>"
        f"<D:status>{status_line(f.status)}</D:status></D:response>"
        for f in failures
    )
