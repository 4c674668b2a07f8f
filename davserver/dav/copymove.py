"""COPY and MOVE (RFC 4918 §9.8, §9.9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import conditions, multistatus
from .errors import DAVError
from .identity import author
from .locking import require_unlocked
from .paths import destination_raw_path, href
from .xml import status_line

if TYPE_CHECKING:
    from davserver.mounts.dav import DavMount


def _overwrite(request: web.Request) -> bool:
    value = request.headers.get("Overwrite", "T").strip().upper()
    if value not in ("T", "F"):
        raise DAVError(400, "Overwrite must be T or F")
    return value == "T"


def destination(mount: DavMount, request: web.Request) -> str:
    """The storage path the Destination header names; 502 outside this mount."""
    header = request.headers.get("Destination")
    if not header:
        raise DAVError(400, "Destination header missing")
    raw = destination_raw_path(header, request.host)
    if not mount.contains(raw):
        raise DAVError(502, "Destination is outside this WebDAV tree")
    return mount.storage_path(raw)


async def copy_or_move(mount: DavMount, request: web.Request, src: str) -> web.StreamResponse:
    """Copy or move ``src`` to the Destination: 201 new, 204 overwritten."""
    is_move = request.method == "MOVE"
    dst = destination(mount, request)
    mount.check_owner(request, dst, write=True)
    overwrite = _overwrite(request)
    storage = mount.storage
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
        require_unlocked(mount, request, src, member=True, tree=True)
    require_unlocked(mount, request, dst, member=True, tree=target is not None)
    message = f"{request.method} /{src} -> /{dst}"
    async with storage.change(author=author(request), message=message) as change:
        # A file onto a file needs no delete first: the backends replace it atomically, so
        # a full disk or a crash leaves the old destination, not nothing.
        if target is not None and (target.is_collection or res.is_collection):
            failures = await change.delete(dst)
            if failures:
                return multistatus.complete(
                    "".join(
                        f"<D:response><D:href>{href(mount.prefix, f.path, False)}</D:href>"
                        f"<D:status>{status_line(f.status)}</D:status></D:response>"
                        for f in failures
                    )
                )
        if is_move:
            await change.move(src, dst)
        else:
            await change.copy(src, dst, recursive=depth == "infinity")
        if target is not None:
            await mount.locks.release_tree(mount.prefix, dst)
    if is_move:
        await mount.locks.release_tree(mount.prefix, src)
    return web.Response(status=204 if target is not None else 201)
