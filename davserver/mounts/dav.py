"""A WebDAV tree over one storage backend: method dispatch and error mapping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from davserver.access import READ_METHODS
from davserver.auth.basic import challenge
from davserver.backends.base import Resource, Storage, StorageError
from davserver.dav import copymove, locking, propfind, proppatch, read, write
from davserver.dav.errors import DAVError
from davserver.dav.identity import USER
from davserver.dav.paths import normalize, strip_query
from davserver.dav.propfind import wants_minimal
from davserver.dav.props import LIVE, PROTECTED, LiveRenderer, PropRenderer, PropRequest
from davserver.locks.manager import LockManager

log = logging.getLogger("davserver.dav")

Handler = Callable[["DavMount", web.Request, str], Awaitable[web.StreamResponse]]

METHODS: dict[str, Handler] = {
    "OPTIONS": read.options,
    "GET": read.get,
    "HEAD": read.get,
    "PUT": write.put,
    "DELETE": write.delete,
    "MKCOL": write.mkcol,
    "COPY": copymove.copy_or_move,
    "MOVE": copymove.copy_or_move,
    "PROPFIND": propfind.propfind,
    "PROPPATCH": proppatch.proppatch,
    "LOCK": locking.lock,
    "UNLOCK": locking.unlock,
}
ALLOW = ", ".join(METHODS)
LOOKS_ONLY = READ_METHODS | {"MKCOL", "MKCALENDAR"}
"""Methods that change nothing already at their path: allowed to reach the handler on the
shared places of an owner-only tree (where creating is refused with the protocol's own
precondition)."""


@dataclass(frozen=True, slots=True)
class DavSettings:
    """Per-mount protocol settings (see docs/configuration.md)."""

    depth_infinity: bool = False
    max_xml_size: int = 1 << 20
    inline_limit: int = 64 << 10
    lock_timeout: int = 3600
    lock_timeout_max: int = 86400
    owner_only: bool = False
    """Each user's tree (``/<mount>/<user>/``) is theirs alone."""
    default_charset: str = "utf-8"
    """The charset named in the Content-Type of text files (davserver.dav.charset)."""


class DavMount:
    """Answers WebDAV requests below ``prefix`` from ``storage``."""

    def __init__(
        self, prefix: str, storage: Storage, settings: DavSettings, locks: LockManager
    ) -> None:
        self.prefix = prefix
        self.storage = storage
        self.settings = settings
        self.locks = locks
        self.methods = dict(METHODS)
        self.live = LIVE
        self.protected = PROTECTED
        self.discovery: DavMount | None = None
        """The CalDAV mount whose principal and home this mount points clients to."""
        self.options_headers = {
            "DAV": "1, 2",
            "MS-Author-Via": "DAV",
            "Allow": ALLOW,
        }

    def storage_path(self, raw_path: str) -> str:
        """The storage path of a raw URL path under this mount (which must contain it)."""
        rel = strip_query(raw_path)[len(self.prefix) :]
        return normalize(rel, self.storage.reserved_names, self.storage.reserved_prefixes)

    def contains(self, raw_path: str) -> bool:
        """Whether a raw path lies under this mount's prefix."""
        p = self.prefix
        return raw_path.startswith(p) and (len(raw_path) == len(p) or raw_path[len(p)] == "/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one request to its method handler and map refusals to answers."""
        handler = self.methods.get(request.method)
        if handler is None:
            return web.Response(status=405, headers={"Allow": self.options_headers["Allow"]})
        try:
            if "#" in request.raw_path:
                raise DAVError(400, "a request target cannot carry a fragment")
            path = self.storage_path(request.raw_path)
            if self.settings.owner_only and request.method != "OPTIONS":
                if self.requester(request) is None:
                    return challenge()  # owner-only trees have accounts (config.py)
                self.check_owner(request, path, write=request.method not in LOOKS_ONLY)
            if "If" in request.headers:
                await locking.check_if_header(self, request, path)
            return await handler(self, request, path)
        except DAVError as exc:
            log.info(
                "%s %s refused: %s %s",
                request.method,
                request.raw_path,
                exc.status,
                exc.reason or exc.condition or "",
            )
            return exc.response()
        except StorageError as exc:
            log.info("%s %s refused: %s %s", request.method, request.raw_path, exc.status, exc)
            return web.Response(status=exc.status, text=f"{exc.status} {type(exc).__name__}\n")

    def requester(self, request: web.Request) -> str | None:
        """The user whose tree a request may enter in an owner-only mount (None: nobody's)."""
        return request.get(USER)

    def owner(self, path: str) -> str | None:
        """The user whose tree ``path`` lies in (owner-only mounts); None for the places
        every user shares, such as the mount's root."""
        if not self.settings.owner_only or not path:
            return None
        return path.partition("/")[0]

    def may_enter(self, request: web.Request, path: str) -> bool:
        """Whether the request's user may see ``path`` (for members listed or hrefs named
        in a request whose own path was allowed)."""
        owner = self.owner(path)
        return owner is None or owner == self.requester(request)

    def check_owner(self, request: web.Request, path: str, *, write: bool) -> None:
        """Refuse (403) a path in another user's tree, and a change to a shared place, in
        an owner-only mount."""
        if not self.settings.owner_only:
            return
        if write and self.owner(path) is None:
            raise DAVError(403, "the shared part of an owner-only tree cannot be changed")
        if not self.may_enter(request, path):
            raise DAVError(403, f"{path!r} belongs to another user")

    def renderer(self, request: web.Request, prop_request: PropRequest) -> PropRenderer:
        """The renderer of this mount's properties for one request."""
        live = self.live
        if self.discovery is not None:
            live = {**live, **self.discovery.discovery_props(request)}
        return PropRenderer(
            self.prefix,
            prop_request,
            live=live,
            minimal=wants_minimal(request),
            locks=functools.partial(self.locks.covering, self.prefix),
        )

    def discovery_props(self, request: web.Request) -> dict[str, LiveRenderer]:
        """Properties that lead a client from any resource to the user's calendars."""
        return {}

    async def annotate(self, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Work out, before rendering, property values that need I/O (none for WebDAV)."""

    async def open(self) -> None:
        """Open the storage."""
        await self.storage.open()

    async def close(self) -> None:
        """Close the storage."""
        await self.storage.close()
