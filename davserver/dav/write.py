"""PUT, DELETE and MKCOL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from davserver.backends.base import AlreadyExists, DeleteFailure, Resource

from . import conditions, multistatus
from .body import has_body, read_limited
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


def request_body(request: web.Request) -> bytes | AsyncIterator[bytes] | None:
    """How an upload's body is taken: None when it is small enough to be read whole
    (``await request.read()``), else the stream of its chunks."""
    length = request.content_length
    if length is not None and length <= SMALL_BODY:
        return None
    return request.content.iter_chunked(STREAM_CHUNK)


async def put(ctx: Context) -> web.StreamResponse:
    """Store the body atomically: 201 created, 204 replaced."""
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
    body = request_body(request) or await request.read()
    try:
        async with ctx.storage.change(author=ctx.author, message=f"PUT /{path}") as change:
            res, created = await change.write(path, body, expected, expect=expectation(ctx, path))
    except ValueError as exc:
        raise DAVError(400, str(exc)) from exc
    except AlreadyExists as exc:
        raise DAVError(405, "cannot PUT to a collection") from exc
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
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
    async with ctx.storage.change(author=ctx.author, message=f"DELETE /{path}") as change:
        failures = await change.delete(path, expect=expectation(ctx, path))
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
