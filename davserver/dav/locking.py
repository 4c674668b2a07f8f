"""LOCK and UNLOCK (RFC 4918 §9.10, §9.11), the If header check every request passes
through, and the 423 every write gets when it lacks a lock's token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from davserver.locks.manager import Depth, Lock, LockConflict

from . import ifheader
from .body import read_limited
from .errors import DAVError
from .identity import author
from .lockinfo import lockdiscovery, owner_element, parse_lockinfo, parse_timeout
from .paths import destination_raw_path, href
from .xml import XML_DECL, XMLError, parse

if TYPE_CHECKING:
    from davserver.mounts.dav import DavMount

# The lock tokens a request submitted in its If header.
SUBMITTED = web.RequestKey("davserver.submitted_tokens", frozenset)


async def check_if_header(mount: DavMount, request: web.Request, path: str) -> None:
    """Evaluate the If header: 412 when no list holds; remember the tokens it submits."""
    lists = ifheader.parse(request.headers["If"])

    async def state_of(tag: str | None) -> ifheader.ResourceState | None:
        target = path if tag is None else _tagged_path(mount, request, tag)
        if target is None:
            return None
        res = await mount.storage.stat(target)
        tokens = frozenset(lock.token for lock in mount.locks.covering(mount.prefix, target))
        return ifheader.ResourceState(res.etag if res else None, tokens)

    if not await ifheader.evaluate(lists, state_of):
        raise DAVError(412, "no list of the If header holds")
    request[SUBMITTED] = frozenset(ifheader.submitted_tokens(lists))


def _tagged_path(mount: DavMount, request: web.Request, tag: str) -> str | None:
    """The storage path a resource tag names, or None when it is not in this mount."""
    try:
        raw = destination_raw_path(tag, request.host)
        return mount.storage_path(raw) if mount.contains(raw) else None
    except DAVError:
        return None


def require_unlocked(
    mount: DavMount, request: web.Request, path: str, *, member: bool = False, tree: bool = False
) -> None:
    """423 unless the request submitted the tokens that let it change ``path``.

    ``member``: the change adds or removes ``path`` in its parent, which a lock on the
    parent protects too. ``tree``: everything below ``path`` changes as well.
    Each spot that changes needs the token of every exclusive lock that covers it; where
    only shared locks cover it, any one of their tokens will do (every holder may write).
    """
    ns = mount.prefix
    spots = [path]
    if member and path:
        spots.append(path.rpartition("/")[0])
    if tree:
        spots.extend(lock.root for lock in mount.locks.below(ns, path))
    submitted = request.get(SUBMITTED, frozenset())
    missing: dict[str, Lock] = {}
    for spot in spots:
        covering = mount.locks.covering(ns, spot)
        exclusive = [lk for lk in covering if lk.scope == "exclusive"]
        if exclusive:
            missing.update((lk.root, lk) for lk in exclusive if lk.token not in submitted)
        elif covering and not any(lk.token in submitted for lk in covering):
            missing.update((lk.root, lk) for lk in covering)
    if missing:
        hrefs = "".join(
            f"<D:href>{href(ns, lk.root, lk.collection)}</D:href>" for lk in missing.values()
        )
        raise DAVError(423, "locked", condition="lock-token-submitted", inner=hrefs)


def _answer(mount: DavMount, lock: Lock, status: int) -> web.Response:
    body = (
        XML_DECL
        + '<D:prop xmlns:D="DAV:">'
        + lockdiscovery([lock], mount.prefix)
        + "</D:prop>\n"
    )
    headers = {"Lock-Token": f"<{lock.token}>"} if status in (200, 201) else {}
    return web.Response(
        status=status,
        body=body.encode(),
        content_type="application/xml",
        charset="utf-8",
        headers=headers,
    )


async def lock(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Take a new lock (201 when it creates an empty resource) or refresh one (no body)."""
    settings = mount.settings
    timeout = parse_timeout(
        request.headers.get("Timeout"), settings.lock_timeout, settings.lock_timeout_max
    )
    body = await read_limited(request, settings.max_xml_size)
    res = await mount.storage.stat(path)
    if not body.strip():
        return await _refresh(mount, request, path, timeout)
    try:
        root = parse(body)
    except XMLError as exc:
        raise DAVError(400, str(exc)) from exc
    scope = parse_lockinfo(root)
    depth = request.headers.get("Depth", "infinity").strip().lower()
    if depth not in ("0", "infinity"):
        raise DAVError(400, "LOCK Depth must be 0 or infinity")
    lock_depth: Depth = "0" if depth == "0" else "infinity"
    if res is None:
        require_unlocked(mount, request, path, member=True)
        parent = await mount.storage.stat(path.rpartition("/")[0])
        if parent is None or not parent.is_collection:
            raise DAVError(409, "the parent collection does not exist")
    try:
        new = await mount.locks.create(
            mount.prefix, path, scope=scope, depth=lock_depth,
            owner=owner_element(body, root), timeout=timeout, principal=author(request),
            collection=res is not None and res.is_collection,
        )  # fmt: skip
    except LockConflict as exc:
        link = href(mount.prefix, exc.lock.root, exc.lock.collection)
        raise DAVError(
            423, "conflicting lock", condition="no-conflicting-lock",
            inner=f"<D:href>{link}</D:href>",
        ) from exc  # fmt: skip
    if res is None:
        try:
            message = f"LOCK /{path} (new empty resource)"
            async with mount.storage.change(author=author(request), message=message) as change:
                await change.write(path, b"")
        except BaseException:
            await mount.locks.release([new])
            raise
        return _answer(mount, new, 201)
    return _answer(mount, new, 200)


async def _refresh(
    mount: DavMount, request: web.Request, path: str, timeout: int
) -> web.StreamResponse:
    if "If" not in request.headers:
        raise DAVError(400, "a LOCK without a body refreshes a lock named in the If header")
    submitted = request.get(SUBMITTED, frozenset())
    held = [lk for lk in mount.locks.covering(mount.prefix, path) if lk.token in submitted]
    if not held:
        raise DAVError(412, "the If header names no lock on this resource")
    fresh = [await mount.locks.refresh(lk, timeout) for lk in held]
    return _answer(mount, fresh[0], 200)


async def unlock(mount: DavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Release the lock named by Lock-Token: 204; 409 when it does not cover this URL."""
    token = request.headers.get("Lock-Token", "").strip()
    if not (token.startswith("<") and token.endswith(">")):
        raise DAVError(400, "UNLOCK needs a Lock-Token header")
    held = mount.locks.get(token[1:-1])
    if held is None or not held.covers(path):
        raise DAVError(
            409, "the token names no lock on this resource",
            condition="lock-token-matches-request-uri",
        )  # fmt: skip
    await mount.locks.release([held])
    return web.Response(status=204)
