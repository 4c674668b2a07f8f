"""PUT, DELETE and MKCOL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from davserver.backends.base import AlreadyExists, Resource

from . import conditions, multistatus
from .body import has_body, read_limited
from .errors import DAVError
from .identity import author
from .locking import require_unlocked
from .paths import href
from .props import http_date
from .xml import status_line

if TYPE_CHECKING:
    from davserver.mounts.dav import DavMount

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


async def put_target(mount: DavMount, request: web.Request, path: str) -> Resource | None:
    """What a PUT replaces (None: it creates), once the checks every PUT passes hold:
    not a collection (405), the conditional headers (412), the locks (423)."""
    current = await mount.storage.stat(path)
    if current is not None and current.is_collection:
        raise DAVError(405, "cannot PUT to a collection")
    if conditions.evaluate(request.headers, current, safe_method=False) is not None:
        raise DAVError(412, "precondition failed")
    require_unlocked(mount, request, path, member=current is None)
    return current


async def put(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Store the body atomically: 201 created, 204 replaced."""
    if "Content-Range" in request.headers:
        raise DAVError(400, "partial PUT with Content-Range is not supported")
    storage = mount.storage
    h = request.headers
    if (
        mount.locks.may_have_locks(mount.prefix)
        # What put_target's verdicts depend on (If-Modified-Since concerns GET and HEAD
        # only), and a header whose 400 must keep coming after its 405.
        or "If-Match" in h
        or "If-None-Match" in h
        or "If-Unmodified-Since" in h
        or "X-Expected-Entity-Length" in h
    ):
        await put_target(mount, request, path)
    # Otherwise put_target could only refuse a collection, and the write below does that
    # itself (AlreadyExists): a small PUT is then one trip to the disk instead of two.
    expected = _expected_length(request)
    length = request.content_length
    body = (
        await request.read()
        if length is not None and length <= SMALL_BODY
        else request.content.iter_chunked(STREAM_CHUNK)
    )
    try:
        async with storage.change(author=author(request), message=f"PUT /{path}") as change:
            res, created = await change.write(path, body, expected)
    except ValueError as exc:
        raise DAVError(400, str(exc)) from exc
    except AlreadyExists as exc:
        raise DAVError(405, "cannot PUT to a collection") from exc
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    if created:
        headers["Location"] = str(
            request.url.with_path(href(mount.prefix, path, False), encoded=True)
        )
    return web.Response(status=201 if created else 204, headers=headers)


async def mkcol(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Create a collection: 201; 405 when something is there; 415 with a body."""
    if has_body(request) and await read_limited(request, mount.settings.max_xml_size):
        raise DAVError(415, "MKCOL with a body is not supported here")
    if await mount.storage.stat(path) is not None:
        raise DAVError(405, "something already exists there")
    require_unlocked(mount, request, path, member=True)
    async with mount.storage.change(author=author(request), message=f"MKCOL /{path}") as change:
        await change.mkcol(path)
    return web.Response(status=201)


async def delete(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Delete a resource and everything below it: 204, or 207 naming what stayed."""
    res = await mount.storage.stat(path)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    if not path:
        raise DAVError(403, "the root of a mount cannot be deleted")
    if res.is_collection and request.headers.get("Depth", "infinity").lower() != "infinity":
        raise DAVError(400, "DELETE of a collection needs Depth: infinity")
    if conditions.evaluate(request.headers, res, safe_method=False) is not None:
        raise DAVError(412, "precondition failed")
    require_unlocked(mount, request, path, member=True, tree=True)
    async with mount.storage.change(author=author(request), message=f"DELETE /{path}") as change:
        failures = await change.delete(path)
    if not failures:
        await mount.locks.release_tree(mount.prefix, path)
        return web.Response(status=204)
    body = "".join(
        f"<D:response><D:href>{href(mount.prefix, f.path, False)}</D:href>"
        f"<D:status>{status_line(f.status)}</D:status>"
        "</D:response>"
        for f in failures
    )
    return multistatus.complete(body)
