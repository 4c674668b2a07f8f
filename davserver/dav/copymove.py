"""COPY and MOVE (RFC 4918 §9.8, §9.9)."""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from davserver.backends.base import AlreadyExists, Resource

from . import conditions, multistatus, quota
from .context import Context
from .errors import DAVError
from .locking import require_unlocked
from .paths import destination_raw_path
from .preconditions import absent, expectation
from .write import failure_responses


def _overwrite(request: web.Request) -> bool:
    value = request.headers.get("Overwrite", "T").strip().upper()
    if value not in ("T", "F"):
        raise DAVError(400, "Overwrite must be T or F")
    return value == "T"


def destination(ctx: Context) -> str:
    """The storage path the Destination header names; 502 outside this tree."""
    header = ctx.request.headers.get("Destination")
    if not header:
        raise DAVError(400, "Destination header missing")
    raw = destination_raw_path(header, ctx.request.host)
    if not ctx.contains(raw):
        raise DAVError(502, "Destination is outside this WebDAV tree")
    return ctx.storage_path(raw)


async def copy_or_move(ctx: Context) -> web.StreamResponse:
    """Copy or move the request's resource to the Destination: 201 new, 204 overwritten."""
    request, src, storage = ctx.request, ctx.path, ctx.storage
    is_move = request.method == "MOVE"
    dst = destination(ctx)
    ctx.check_owner(dst, write=True)
    overwrite = _overwrite(request)
    res = await storage.stat(src)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    depth = request.headers.get("Depth", "infinity").strip().lower()
    if depth not in ("0", "infinity") or (is_move and depth != "infinity" and res.is_collection):
        raise DAVError(400, f"Depth {depth!r} is not allowed for {request.method}")
    if dst == src:
        raise DAVError(403, "source and destination are the same")
    if not src or (res.is_collection and (dst + "/").startswith(src + "/")):
        raise DAVError(409, "the destination lies inside the source")
    if (src + "/").startswith(dst + "/"):
        # Overwriting the destination would delete the source with it.
        raise DAVError(409, "the source lies inside the destination")
    if not dst:
        raise DAVError(403, "the root of a mount cannot be replaced")
    if conditions.evaluate(request.headers, res, safe_method=False) is not None:
        raise DAVError(412, "precondition failed")
    target = await storage.stat(dst)
    if target is not None and not overwrite:
        raise DAVError(412, "the destination exists and Overwrite is F")
    parent = await storage.stat(dst.rpartition("/")[0])
    if parent is None or not parent.is_collection:
        raise DAVError(409, "the destination's parent collection does not exist")
    if is_move:
        require_unlocked(ctx, src, member=True, tree=True)
    require_unlocked(ctx, dst, member=True, tree=target is not None)
    return await _transfer(ctx, src, dst, res, target, overwrite=overwrite, depth=depth)


async def _transfer(
    ctx: Context, src: str, dst: str, res: Resource, target: Resource | None, *,
    overwrite: bool, depth: str,
) -> web.StreamResponse:  # fmt: skip
    """The copy or move itself, its conditions checked again inside the write."""
    is_move = ctx.request.method == "MOVE"
    expect_src = expectation(ctx, src)
    on_dst = expectation(ctx, dst, headers=False)
    expect_dst = on_dst if overwrite else absent(on_dst)
    message = f"{ctx.request.method} /{src} -> /{dst}"
    charge: AbstractAsyncContextManager[None] = contextlib.nullcontext()
    quotas = ctx.tree.services.get(quota.SERVICE)
    if quotas is not None and (quotas.trees(src) or quotas.trees(dst)):
        shallow = not is_move and depth == "0"
        size = res.size if not res.is_collection else 0 if shallow else await quotas.size(src)
        replaced = 0
        if target is not None:
            replaced = target.size if not target.is_collection else await quotas.size(dst)
        charge = quotas.transfer(src if is_move else None, dst, size, replaced)
    try:
        async with charge, ctx.storage.change(author=ctx.author, message=message) as change:
            # A file onto a file needs no delete first: the backends replace it atomically,
            # so a full disk or a crash leaves the old destination, not nothing.
            if target is not None and (target.is_collection or res.is_collection):
                failures = await change.delete(dst, expect=expect_dst)
                if failures:
                    return multistatus.complete(failure_responses(ctx.prefix, failures))
                expect_dst = absent()
            if is_move:
                await change.move(src, dst, expect=expect_src, expect_dst=expect_dst)
            else:
                recursive = depth == "infinity"
                await change.copy(
                    src, dst, recursive=recursive, expect=expect_src, expect_dst=expect_dst
                )
    except AlreadyExists as exc:  # the destination was created meanwhile
        raise DAVError(412, "the destination exists now") from exc
    return web.Response(status=204 if target is not None else 201)
