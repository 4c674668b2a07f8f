"""PROPFIND (RFC 4918 §9.1), streamed for collections."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from davserver.backends.base import Resource, Storage
from davserver.runtime.threads import offload

from . import multistatus
from .body import has_body, read_limited
from .errors import DAVError
from .props import ALLPROP_REQUEST, PropRequest, parse_propfind
from .xml import XMLError, parse

if TYPE_CHECKING:
    from .context import Context
    from .props import PropRenderer


def parse_depth(request: web.Request, default: str = "infinity") -> str:
    """The Depth header as "0", "1" or "infinity"; 400 for anything else."""
    depth = request.headers.get("Depth", default).strip().lower()
    if depth not in ("0", "1", "infinity"):
        raise DAVError(400, f"invalid Depth {depth!r}")
    return depth


def propfind_depth(request: web.Request, *, infinity: bool) -> str:
    """A PROPFIND's Depth; infinity (also what a missing header means) is 403
    ``propfind-finite-depth`` unless ``infinity`` allows it."""
    depth = parse_depth(request)
    if depth == "infinity" and not infinity:
        raise DAVError(403, "Depth: infinity is disabled", condition="propfind-finite-depth")
    return depth


def wants_minimal(request: web.Request) -> bool:
    """Brief: t or Prefer: return=minimal (Apple writes return-minimal), which drop the 404
    propstats."""
    prefer = request.headers.get("Prefer", "").replace(" ", "").lower()
    brief = request.headers.get("Brief", "").lower() == "t"
    return brief or "return=minimal" in prefer or "return-minimal" in prefer


# Bodies up to this size have their reading remembered (see _parse_body).
_REMEMBERED_BODY = 4096


async def read_prop_request(request: web.Request, limit: int, max_props: int) -> PropRequest:
    """What the PROPFIND body asks (allprop when there is none); 400 when malformed, 413
    when it names more than ``max_props`` properties (each named once)."""
    if not has_body(request):
        return ALLPROP_REQUEST
    data = await read_limited(request, limit)
    # Bodies that are short enough are remembered; a long one is parsed afresh, and its
    # names gathered, off the event loop (100,000 names take some 40 ms).
    if len(data) <= _REMEMBERED_BODY:
        found = _parse_body(data)
    else:
        found = await offload(_parse_body.__wrapped__, data)
    if len(found.names) > max_props:
        raise DAVError(413, f"{len(found.names)} properties asked for; at most {max_props}")
    return found


@functools.lru_cache(maxsize=128)
def _parse_body(data: bytes) -> PropRequest:
    """A PROPFIND body's request. Clients send the same few bodies over and over, so the
    answers are remembered (PropRequest is immutable; refusals raise, so are not)."""
    if not data.strip():
        return ALLPROP_REQUEST
    try:
        root = parse(data)
    except XMLError as exc:
        raise DAVError(400, str(exc)) from exc
    return parse_propfind(root)


async def walk(
    storage: Storage,
    path: str,
    *,
    infinite: bool,
    dead_props: bool,
    visible: Callable[[str], bool] | None = None,
) -> AsyncIterator[list[Resource]]:
    """The members below a collection, batch by batch, depth first when ``infinite``;
    members for which ``visible`` is false are left out, and not walked into."""
    pending = [path]
    while pending:
        current = pending.pop()
        async for batch in storage.children(current, dead_props=dead_props):
            if visible is not None:
                batch = [r for r in batch if visible(r.path)]
            yield batch
            if infinite:
                pending.extend(r.path for r in reversed(batch) if r.is_collection)


async def shared_with_me(ctx: Context, renderer: PropRenderer, path: str, dead: bool) -> list[str]:
    """The responses of the collections shared with the requester that are listed in
    ``path`` (their home: ``Layout.home``), under their owner's URLs: what a client that
    lists the home finds them by."""
    principal = ctx.principal
    if not ctx.grants.roots or principal is None or ctx.owner(path) != principal:
        return []
    found = []
    for root in sorted(ctx.grants.roots):
        if ctx.features.home(root, principal) == path:
            res = await ctx.storage.stat(root, dead_props=dead)
            if res is not None and res.is_collection:
                found.append(res)
    if not found:
        return []
    await ctx.annotate(renderer, found)
    return [renderer.render(res) for res in found]


async def propfind(ctx: Context) -> web.StreamResponse:
    """Report the requested properties of a resource and, by Depth, its members."""
    request, path, settings, storage = ctx.request, ctx.path, ctx.settings, ctx.storage
    depth = propfind_depth(request, infinity=settings.depth_infinity)
    prop_request = await read_prop_request(request, settings.max_xml_size, settings.max_props)
    dead = prop_request.needs_dead_props
    res = await storage.stat(path, dead_props=dead)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    renderer = ctx.renderer(prop_request)
    if prop_request.needs_quota:
        renderer.quota = await storage.quota(path)
    await ctx.annotate(renderer, [res])
    if depth == "0" or not res.is_collection:
        return multistatus.complete(renderer.render(res))

    async def responses() -> AsyncIterator[str]:
        yield renderer.render(res)
        # Below a path that has an owner (the requester: the mount checked) every member
        # has that owner too (features.Layout): no check per member.
        shared = settings.owner_only and ctx.owner(path) is None
        visible = ctx.may_enter if shared else None
        infinite = depth == "infinity"
        indexed = None if infinite or shared else await ctx.members(renderer, res)
        if indexed is not None:
            async for part in indexed:
                yield part
        else:
            walked = walk(storage, path, infinite=infinite, dead_props=dead, visible=visible)
            async for batch in walked:
                await ctx.annotate(renderer, batch)
                async for part in multistatus.render_in_slices(renderer.render, batch):
                    yield part
        if not infinite:
            for part in await shared_with_me(ctx, renderer, path, dead):
                yield part

    return await multistatus.stream(request, responses())
