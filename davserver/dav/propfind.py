"""PROPFIND (RFC 4918 §9.1), streamed for collections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from davserver.backends.base import Resource, Storage

from . import multistatus
from .body import read_xml
from .errors import DAVError
from .props import parse_propfind

if TYPE_CHECKING:
    from davserver.mounts.dav import DavMount


def parse_depth(request: web.Request, default: str = "infinity") -> str:
    """The Depth header as "0", "1" or "infinity"; 400 for anything else."""
    depth = request.headers.get("Depth", default).strip().lower()
    if depth not in ("0", "1", "infinity"):
        raise DAVError(400, f"invalid Depth {depth!r}")
    return depth


def wants_minimal(request: web.Request) -> bool:
    """Brief: t or Prefer: return=minimal (Apple writes return-minimal), which drop the 404
    propstats."""
    prefer = request.headers.get("Prefer", "").replace(" ", "").lower()
    brief = request.headers.get("Brief", "").lower() == "t"
    return brief or "return=minimal" in prefer or "return-minimal" in prefer


async def walk(
    storage: Storage, path: str, *, infinite: bool, dead_props: bool
) -> AsyncIterator[list[Resource]]:
    """The members below a collection, batch by batch, depth first when ``infinite``."""
    pending = [path]
    while pending:
        current = pending.pop()
        async for batch in storage.children(current, dead_props=dead_props):
            yield batch
            if infinite:
                pending.extend(r.path for r in reversed(batch) if r.is_collection)


async def propfind(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Report the requested properties of a resource and, by Depth, its members."""
    depth = parse_depth(request)
    if depth == "infinity" and not mount.settings.depth_infinity:
        raise DAVError(403, "Depth: infinity is disabled", condition="propfind-finite-depth")
    prop_request = parse_propfind(await read_xml(request, mount.settings.max_xml_size))
    dead = prop_request.needs_dead_props
    storage = mount.storage
    res = await storage.stat(path, dead_props=dead)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    renderer = mount.renderer(request, prop_request)
    if prop_request.needs_quota:
        renderer.quota = await storage.quota(path)
    await mount.annotate(renderer, [res])
    if depth == "0" or not res.is_collection:
        return multistatus.complete(renderer.render(res))

    async def responses() -> AsyncIterator[str]:
        yield renderer.render(res)
        async for batch in walk(storage, path, infinite=depth == "infinity", dead_props=dead):
            await mount.annotate(renderer, batch)
            yield "".join(renderer.render(r) for r in batch)

    return await multistatus.stream(request, responses())
