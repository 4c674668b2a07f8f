"""Locking (RFC 4918 class 2): LOCK and UNLOCK (§9.10, §9.11) and the 423 every write
gets when it lacks a lock's token. The feature that offers them, and drops the locks of
what is deleted or moved away, is :class:`davserver.dav.core.Locking`."""

from __future__ import annotations

from aiohttp import web

from davserver.backends.base import PreconditionFailed, check_name
from davserver.locks.manager import Depth, Lock, LockConflict

from .body import read_limited
from .context import Context
from .errors import DAVError
from .lockinfo import lockdiscovery, owner_element, parse_lockinfo, parse_timeout
from .paths import href
from .preconditions import submitted
from .xml import XML_DECL, XMLError, parse_request


def require_unlocked(ctx: Context, path: str, *, member: bool = False, tree: bool = False) -> None:
    """423 unless the request submitted the tokens that let it change ``path``.

    ``member``: the change adds or removes ``path`` in its parent, which a lock on the
    parent protects too. ``tree``: everything below ``path`` changes as well.
    Each spot that changes needs the token of every exclusive lock that covers it; where
    only shared locks cover it, any one of their tokens will do (every holder may write).
    """
    ns = ctx.prefix
    locks = ctx.locks
    spots = [path]
    if member and path:
        spots.append(path.rpartition("/")[0])
    if tree:
        spots.extend(lock.root for lock in locks.below(ns, path))
    tokens = submitted(ctx)
    missing: dict[str, Lock] = {}
    for spot in spots:
        covering = locks.covering(ns, spot)
        exclusive = [lk for lk in covering if lk.scope == "exclusive"]
        if exclusive:
            missing.update((lk.root, lk) for lk in exclusive if lk.token not in tokens)
        elif covering and not any(lk.token in tokens for lk in covering):
            missing.update((lk.root, lk) for lk in covering)
    if missing:
        hrefs = "".join(
            f"<D:href>{href(ns, lk.root, lk.collection)}</D:href>" for lk in missing.values()
        )
        raise DAVError(423, "locked", condition="lock-token-submitted", inner=hrefs)


def _answer(ctx: Context, lock: Lock, status: int) -> web.Response:
    body = XML_DECL + '<D:prop xmlns:D="DAV:">' + lockdiscovery([lock], ctx.prefix) + "</D:prop>\n"
    headers = {"Lock-Token": f"<{lock.token}>"} if status in (200, 201) else {}
    return web.Response(
        status=status,
        body=body.encode(),
        content_type="application/xml",
        charset="utf-8",
        headers=headers,
    )


async def lock(ctx: Context) -> web.StreamResponse:
    """Take a new lock (201 when it creates an empty resource) or refresh one (no body)."""
    settings, request, path, locks = ctx.settings, ctx.request, ctx.path, ctx.locks
    timeout = parse_timeout(
        request.headers.get("Timeout"), settings.lock_timeout, settings.lock_timeout_max
    )
    body = await read_limited(request, settings.max_xml_size)
    if not body.strip():
        return await _refresh(ctx, timeout)
    res = await ctx.storage.stat(path)
    try:
        root = await parse_request(body)
    except XMLError as exc:
        raise DAVError(400, str(exc)) from exc
    scope = parse_lockinfo(root)
    depth = request.headers.get("Depth", "infinity").strip().lower()
    if depth not in ("0", "infinity"):
        raise DAVError(400, "LOCK Depth must be 0 or infinity")
    lock_depth: Depth = "0" if depth == "0" else "infinity"
    if res is None:
        # The name the empty resource would get is checked before the lock is taken, so a
        # refused one leaves nothing behind, not even in the lock store.
        check_name(path)
        require_unlocked(ctx, path, member=True)
        parent = await ctx.storage.stat(path.rpartition("/")[0])
        if parent is None or not parent.is_collection:
            raise DAVError(409, "the parent collection does not exist")
    try:
        new = await locks.create(
            ctx.prefix, path, scope=scope, depth=lock_depth,
            owner=owner_element(body, root), timeout=timeout, principal=ctx.author,
            collection=res is not None and res.is_collection,
        )  # fmt: skip
    except LockConflict as exc:
        link = href(ctx.prefix, exc.lock.root, exc.lock.collection)
        raise DAVError(
            423, "conflicting lock", condition="no-conflicting-lock",
            inner=f"<D:href>{link}</D:href>",
        ) from exc  # fmt: skip
    if res is None:
        try:
            message = f"LOCK /{path} (new empty resource)"
            async with ctx.storage.change(author=ctx.author, message=message) as change:
                await change.write(path, b"", expect=_nothing_there)
        except BaseException:
            await locks.release([new])
            raise
        return _answer(ctx, new, 201)
    return _answer(ctx, new, 200)


def _nothing_there(current: object) -> None:
    """A lock on an unmapped URL creates an empty resource, and replaces nothing."""
    if current is not None:
        raise PreconditionFailed("the resource was created meanwhile")


async def _refresh(ctx: Context, timeout: int) -> web.StreamResponse:
    if "If" not in ctx.request.headers:
        raise DAVError(400, "a LOCK without a body refreshes a lock named in the If header")
    tokens = submitted(ctx)
    held = [lk for lk in ctx.locks.covering(ctx.prefix, ctx.path) if lk.token in tokens]
    if not held:
        raise DAVError(412, "the If header names no lock on this resource")
    fresh = [await ctx.locks.refresh(lk, timeout) for lk in held]
    return _answer(ctx, fresh[0], 200)


async def unlock(ctx: Context) -> web.StreamResponse:
    """Release the lock named by Lock-Token: 204; 409 when it does not cover this URL."""
    token = ctx.request.headers.get("Lock-Token", "").strip()
    if not (token.startswith("<") and token.endswith(">")):
        raise DAVError(400, "UNLOCK needs a Lock-Token header")
    held = ctx.locks.get(token[1:-1])
    if held is None or held.namespace != ctx.prefix or not held.covers(ctx.path):
        raise DAVError(
            409, "the token names no lock on this resource",
            condition="lock-token-matches-request-uri",
        )  # fmt: skip
    await ctx.locks.release([held])
    return web.Response(status=204)
