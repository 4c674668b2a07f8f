"""A DAV tree: features composed over one storage, answering the requests below a prefix.

The mount decodes the request's path, applies the owner-only rule of its layout, checks
the ``If`` header, and hands a :class:`~davserver.dav.context.Context` to the handler
the features provide for the method; refusals become answers here.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from davserver.access import READ_METHODS
from davserver.auth.basic import challenge
from davserver.auth.ldap import DirectoryUnavailable
from davserver.backends.base import Storage, StorageError
from davserver.dav import csrf
from davserver.dav.context import CURRENT, Context, DavSettings, ServiceKey
from davserver.dav.errors import DAVError
from davserver.dav.features import Feature, FeatureSet, Layout
from davserver.dav.identity import GRANTS, USER
from davserver.dav.paths import normalize, strip_query
from davserver.dav.preconditions import check_if_header
from davserver.events import EventBus
from davserver.locks.manager import LockManager
from davserver.runtime import metrics
from davserver.state.errors import StateUnavailable
from davserver.state.shares import NO_GRANTS

log = logging.getLogger("davserver.dav")

LOOKS_ONLY = READ_METHODS | {"MKCOL", "MKCALENDAR"}
"""Methods that change nothing already at their path: allowed to reach the handler on the
shared places of an owner-only tree (where creating is refused with the protocol's own
precondition)."""
READS_SOURCE = READ_METHODS | {"COPY"}
"""Methods that change nothing at their own path (COPY's destination is checked apart):
what a read-only share allows."""
_PATHS_KEPT = 4096
"""Decoded raw paths a tree remembers, at most (then it starts over)..."""
_PATH_KEPT_LENGTH = 512
"""...each at most this long (a long one is decoded each time)."""


class DavMount:
    """Answers DAV requests below ``prefix`` from ``storage``, with ``features``."""

    def __init__(
        self,
        prefix: str,
        storage: Storage,
        settings: DavSettings,
        locks: LockManager,
        features: Sequence[Feature],
        bus: EventBus,
        layout: Layout | None = None,
    ) -> None:
        self.prefix = prefix
        self.storage = storage
        self.settings = settings
        self.locks = locks
        self.features = FeatureSet(features, layout, settings)
        self.services: Mapping[ServiceKey[Any], Any] = self.features.services
        self._bus = bus
        self._paths: dict[str, str] = {}
        """Storage paths of raw paths decoded lately (clients ask for the same ones again;
        a path refused is not kept, and is refused again each time)."""
        storage.listen(functools.partial(bus.publish, prefix))
        for feature in self.features.features:
            feature.subscribe(bus, self)

    # -- Tree ---------------------------------------------------------------------------

    def storage_path(self, raw_path: str) -> str:
        """The storage path of a raw URL path under this mount (which must contain it)."""
        known = self._paths.get(raw_path)
        if known is not None:
            return known
        rel = strip_query(raw_path)[len(self.prefix) :]
        path = normalize(rel, self.storage.reserved_names, self.storage.reserved_prefixes)
        if len(raw_path) <= _PATH_KEPT_LENGTH:
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[raw_path] = path
        return path

    def contains(self, raw_path: str) -> bool:
        """Whether a raw path lies under this mount's prefix."""
        p = self.prefix
        return raw_path.startswith(p) and (len(raw_path) == len(p) or raw_path[len(p)] == "/")

    # -- Mount --------------------------------------------------------------------------

    def options_headers(self) -> dict[str, str]:
        """What OPTIONS answers anywhere in the tree: DAV classes and methods."""
        return {
            "DAV": self.features.dav_header,
            "MS-Author-Via": "DAV",
            "Allow": self.features.allow,
        }

    def fixed_options(self) -> web.Response:
        """The answer to an OPTIONS the access rules refuse: Windows asks it before it
        sends credentials. It is the same for every path and reaches no storage."""
        return web.Response(headers=self.options_headers())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one request to its feature's handler and map refusals to answers."""
        if request.method not in self.features.handlers:
            return web.Response(status=405, headers={"Allow": self.features.allow})
        try:
            coding = request.headers.get("Content-Encoding", "").strip().lower()
            if coding and coding != "identity":
                # Refused before the body is read: aiohttp would inflate it on the fly, so
                # what is stored would not be what the client sent, and a small body could
                # inflate to any size.
                raise DAVError(415, f"Content-Encoding {coding!r} is not decoded here")
            await self._catch_up(request)
            if "#" in request.raw_path:
                raise DAVError(400, "a request target cannot carry a fragment")
            if request.method not in READ_METHODS:
                csrf.check(request)
            path = self.storage_path(request.raw_path)
            user = request.get(USER)
            principal = self.features.principal(user)
            # Shares are put in the request for owner-only trees only (app.Router._grant).
            grants = request.get(GRANTS, NO_GRANTS) if self.settings.owner_only else NO_GRANTS
            ctx = Context(request, path, self, user, principal, grants)
            CURRENT.set(ctx)
            if self.settings.owner_only and request.method != "OPTIONS":
                if ctx.principal is None:
                    return challenge()  # owner-only trees have accounts (config.py)
                if request.method == "DELETE" and ctx.shared_root(path):
                    # A sharee's DELETE of what is shared with them turns the share down;
                    # nothing of the owner's changes (refused below where no feature can).
                    declined = await self.features.decline(ctx)
                    if declined is not None:
                        return declined
                ctx.check_owner(
                    path,
                    write=request.method not in LOOKS_ONLY,
                    changes=request.method not in READS_SOURCE,
                )
            if "If" in request.headers:
                await check_if_header(ctx)
            response = await self.features.dispatch(ctx)
            if response is None:
                raise DAVError(405, f"{request.method} does not apply here")
            return response
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
            level = logging.WARNING if exc.status >= 500 else logging.INFO
            if exc.status >= 500:
                self._fault(type(exc).__name__)
            log.log(
                level, "%s %s refused: %s %s", request.method, request.raw_path, exc.status, exc
            )
            return web.Response(status=exc.status, text=f"{exc.status} {type(exc).__name__}\n")
        except sqlite3.Error as exc:
            log.warning("%s %s: the state folder cannot be used: %s", request.method,
                        request.raw_path, exc)  # fmt: skip
            self._fault("StateUnavailable")
            return web.Response(status=503, text="503 Service Unavailable: state unavailable\n")
        except StateUnavailable as exc:
            log.warning("%s %s: %s", request.method, request.raw_path, exc)
            return web.Response(status=503, text="503 Service Unavailable: state unavailable\n")
        except DirectoryUnavailable as exc:
            # Whom a group holds (a share or a delegation to a group, a group's principal).
            log.warning("%s %s: 503, the directory cannot be asked: %s", request.method,
                        request.raw_path, exc)  # fmt: skip
            return web.Response(
                status=503, text="503 Service Unavailable\n", headers={"Retry-After": "10"}
            )

    async def _catch_up(self, request: web.Request) -> None:
        """What other processes changed (workers, hosts): locks reloaded, caches dropped.
        A write first makes sure it heard of every lock granted elsewhere before it, and
        cannot go on without (503). A read that cannot catch up (the shared state is
        unreachable) goes on from what this process holds: whatever it needs of the
        state itself answers 503 on its own."""
        write = request.method not in READ_METHODS
        try:
            await self.locks.sync(settle=write)
            await self._bus.catch_up()
        except (sqlite3.Error, StateUnavailable) as exc:
            if write:
                raise
            log.warning("%s %s: answered without catching up: %s", request.method,
                        request.raw_path, exc)  # fmt: skip

    def _fault(self, kind: str) -> None:
        """Count a request the store could not serve."""
        if metrics.active is not None:
            metrics.active.storage_faults.labels(self.prefix or "/", kind).inc()

    async def open(self) -> None:
        """Open the storage, then the features."""
        await self.storage.open()
        for feature in self.features.features:
            await feature.open(self)

    async def close(self) -> None:
        """Close the features, then the storage."""
        for feature in self.features.features:
            await feature.close()
        await self.storage.close()
