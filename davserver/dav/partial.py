"""Partial updates of a file: SabreDAV's ``PATCH`` with ``X-Update-Range`` (advertised as
``sabredav-partialupdate`` in the ``DAV:`` header) and Apache's ``PUT`` with
``Content-Range``. Each one is one atomic write (one commit on git): a failure or a crash
leaves the old bytes or the new.

``X-Update-Range`` takes ``bytes=a-b`` (bytes a to b inclusive, b - a + 1 of them),
``bytes=a-`` (from a on), ``bytes=-n`` (the last n bytes) or ``append``; the body's
``Content-Length`` must match the range. A start past the end of the file is 416 with
``Content-Range: bytes */<size>``.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from davserver.backends.base import (
    AlreadyExists,
    FileChange,
    RangeNotSatisfiable,
    Resource,
)

from . import checksums, quota
from .context import Context
from .errors import DAVError
from .preconditions import expectation
from .props import http_date
from .write import put_target, request_body

UPDATE_TYPE = "application/x-sabredav-partialupdate"
_UPDATE_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)\Z")


def update_range(value: str | None, length: int) -> int | None:
    """The offset an ``X-Update-Range`` names for a body of ``length`` bytes (None: the
    end of the file; negative: before the end). 400 when malformed, 416 when the range
    and the body's length disagree."""
    if value is None:
        raise DAVError(400, "PATCH needs an X-Update-Range header")
    value = value.strip()
    if value.lower() == "append":
        return None
    found = _UPDATE_RANGE.match(value)
    if found is None or not (found[1] or found[2]):
        raise DAVError(
            400, f"X-Update-Range {value!r} is not bytes=a-b, bytes=a-, bytes=-n or append"
        )
    first, last = found[1], found[2]
    if not first:  # the last n bytes
        if int(last) != length:
            raise DAVError(416, f"X-Update-Range names {last} bytes, the body has {length}")
        return -length
    start = int(first)
    if last and int(last) - start + 1 != length:
        raise DAVError(416, f"X-Update-Range {value!r} does not span the body's {length} bytes")
    return start


def content_range(value: str, length: int) -> int:
    """The offset a PUT's ``Content-Range`` names (400 when malformed or when the body's
    length disagrees)."""
    found = _CONTENT_RANGE.match(value.strip())
    if found is None:
        raise DAVError(400, f"Content-Range {value!r} is not bytes a-b/length")
    start, end, total = int(found[1]), int(found[2]), found[3]
    if end < start or end - start + 1 != length:
        raise DAVError(400, f"Content-Range {value!r} does not span the body's {length} bytes")
    if total != "*" and end >= int(total):
        raise DAVError(400, f"Content-Range {value!r} ends past the length it gives")
    return start


def unsatisfiable(exc: RangeNotSatisfiable) -> web.Response:
    """416 with the size of the file, as RFC 9110 §15.5.17 asks."""
    return web.Response(
        status=416, headers={"Content-Range": f"bytes */{exc.size}"}, text=f"{exc}\n"
    )


async def apply(
    ctx: Context, offset: int | None, length: int, *, create: bool, method: str
) -> tuple[Resource, bool] | web.Response:
    """Write the request's body at ``offset`` of the file (one change); the new resource
    and whether it was created, or the 416 answer."""
    request, path = ctx.request, ctx.path
    body = await request_body(request)
    quotas = ctx.tree.services.get(quota.SERVICE)
    charge: AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if quotas is not None and quotas.trees(path):
        current = await ctx.storage.stat(path)
        size = current.size if current is not None and not current.is_collection else 0
        end = size + length if offset is None else (size if offset < 0 else offset + length)
        charge = quotas.charge(path, max(0, end - size))
    try:
        async with (
            charge,
            ctx.storage.change(author=ctx.author, message=f"{method} /{path}") as change,
        ):
            if not isinstance(change, FileChange):
                raise DAVError(405, "this tree takes no partial updates")
            return await change.update(
                path, offset, body, length, expect=expectation(ctx, path), create=create
            )
    except RangeNotSatisfiable as exc:
        return unsatisfiable(exc)
    except ValueError as exc:
        raise DAVError(400, str(exc)) from exc
    except AlreadyExists as exc:
        raise DAVError(405, "cannot write into a collection") from exc


async def patch(ctx: Context) -> web.StreamResponse:
    """SabreDAV's partial update: 204 with the new ETag."""
    request, path = ctx.request, ctx.path
    if "X-Recalculate-Hash" in request.headers and "X-Update-Range" not in request.headers:
        return await recalculate(ctx)
    if request.content_type != UPDATE_TYPE:
        raise DAVError(415, f"a partial update is sent as {UPDATE_TYPE}")
    length = request.content_length
    if length is None:
        raise DAVError(411, "a partial update needs a Content-Length")
    offset = update_range(request.headers.get("X-Update-Range"), length)
    current = await put_target(ctx, path)
    if current is None:
        return web.Response(status=404, text="404 Not Found: nothing to update\n")
    done = await apply(ctx, offset, length, create=False, method="PATCH")
    if isinstance(done, web.Response):
        return done
    res, _ = done
    return web.Response(
        status=204, headers={"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    )


async def recalculate(ctx: Context) -> web.StreamResponse:
    """Nextcloud's ``X-Recalculate-Hash: sha1|md5`` (rclone asks it after an upload that
    carried no checksum): the file's checksum in an ``OC-Checksum`` header."""
    name = ctx.request.headers["X-Recalculate-Hash"].strip().lower()
    if name not in checksums.ALGORITHMS.values():
        raise DAVError(400, f"X-Recalculate-Hash {name!r}: md5 or sha1")
    service = ctx.tree.services.get(checksums.SERVICE)
    res = await ctx.storage.stat(ctx.path)
    if res is None or res.is_collection or service is None:
        return web.Response(status=404, text="404 Not Found\n")
    found = await service.of(ctx.storage, [res])
    sums = found.get(res.etag)
    if sums is None:
        return web.Response(status=404, text="404 Not Found\n")
    return web.Response(status=204, headers={"OC-Checksum": checksums.header(sums, name)})


async def put_range(ctx: Context) -> web.StreamResponse | None:
    """Apache's partial PUT: ``Content-Range: bytes a-b/length`` writes the body into the
    file from byte a (a new file from byte 0); 204, or 201 when it made the file. None
    (the next PUT handler) without a Content-Range."""
    request, path = ctx.request, ctx.path
    value = request.headers.get("Content-Range")
    if value is None:
        return None
    length = request.content_length
    if length is None:
        raise DAVError(411, "a partial PUT needs a Content-Length")
    offset = content_range(value, length)
    await put_target(ctx, path)
    done = await apply(ctx, offset, length, create=True, method="PUT")
    if isinstance(done, web.Response):
        return done
    res, created = done
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    return web.Response(status=201 if created else 204, headers=headers)
