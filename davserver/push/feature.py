"""WebDAV-Push as a feature of a DAV tree (plain WebDAV or CalDAV): the ``webdav-push``
compliance token, the properties of push-enabled collections, registration by POST of a
``push-register`` body and removal by DELETE of the registration URL, and the delivery of
a message to every subscription a change concerns.

The feature hears of the tree's changes made in its own process (a change is heard once,
by the process that made it, whichever worker that is), and hands them to its
:class:`~.dispatch.Dispatcher` without waiting. One process of all those sharing the state
(the leader of the mount's polling: the state folder's processes, or every host's) also
looks for outside changes of the subscribed collections, and now and then drops the
subscriptions whose owners the access rules no longer let subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from davserver.dav.body import read_xml
from davserver.dav.context import CURRENT, Context, Tree
from davserver.dav.errors import DAVError
from davserver.dav.features import Feature, Handler, LiveProperty
from davserver.dav.paths import href
from davserver.dav.props import PropRenderer, http_date
from davserver.state.leaders import Leaders
from davserver.state.secrets import Secrets
from davserver.state.subscriptions import LimitReached, Subscription, SubscriptionStore

from .dispatch import Dispatcher
from .endpoints import EndpointPolicy, EndpointRefused, GuardedResolver
from .keys import PushKeys, load_keys
from .names import (
    COMPLIANCE,
    DONT_NOTIFY,
    NS,
    PARAMETER,
    PUSH_NOT_AVAILABLE,
    PUSH_REGISTER,
    SUPPORTED_TRIGGERS,
    TOPIC,
    TRANSPORTS,
)
from .register import invalid, parse_register
from .sender import Sender
from .settings import PushSettings
from .targets import Target
from .triggers import NOBODY, Quiet

if TYPE_CHECKING:
    from davserver.backends.base import Resource
    from davserver.events import ChangeEvent, EventBus

log = logging.getLogger("davserver.push")

PURGE_EVERY = 300.0
"""Seconds between removals of expired subscriptions (by the polling process)."""
_QUOTED = re.compile(r'"([^"]*)"')
_REGISTRATION = re.compile(rf"[?&]{PARAMETER}=([A-Za-z0-9_-]{{1,64}})(?:&|$)")
_LEVEL = {0: "0", 1: "1"}


def quiet_of(header: str | None, owner: str) -> Quiet:
    """Whom a ``Push-Dont-Notify`` header spares: the registrations whose URLs it lists
    (quoted), or every registration of the requesting user (``*``)."""
    if not header:
        return NOBODY
    if header.strip() == "*":
        return Quiet(owner=owner)
    ids = {m[1] for url in _QUOTED.findall(header) if (m := _REGISTRATION.search(url))}
    return Quiet(frozenset(ids)) if ids else NOBODY


Entitled = Callable[[str], Awaitable[bool | None]]
"""Whether a user ("": anonymous) may still subscribe on a tree under its access rules;
None when that cannot be told now (a directory that does not answer)."""


class Push(Feature):
    """WebDAV-Push on the tree at ``prefix``: which collections, and how, ``target`` says;
    subscriptions live in ``store`` and the keys in ``kept`` (shared by every process of
    the state), ``leaders`` say which process polls; ``entitled`` tells whose
    subscriptions are to be dropped since the rules or the accounts changed."""

    compliance = (COMPLIANCE,)

    def __init__(
        self,
        prefix: str,
        target: Target,
        store: SubscriptionStore,
        settings: PushSettings,
        kept: Secrets,
        leaders: Leaders,
        entitled: Entitled | None = None,
    ) -> None:
        self.prefix = prefix
        self.target = target
        self.store = store
        self.settings = settings
        self.entitled = entitled
        self.policy = EndpointPolicy(settings.allow_hosts)
        self._keys: PushKeys | None = None
        self._dispatcher: Dispatcher | None = None
        self._sender: Sender | None = None
        self._resolver: GuardedResolver | None = None
        self._bus: EventBus | None = None
        self._poller: asyncio.Task[None] | None = None
        self._kept = kept
        self._leaders = leaders
        self._leading = prefix
        """The name of the mount's polling among the leaders' jobs: its prefix (the
        name of the lock file of one host's processes since before there were leaders,
        so old and new workers of a reload never poll at once)."""

    # -- what the tree offers --------------------------------------------------------------

    def methods(self) -> Mapping[str, Handler]:
        """POST (registration) and DELETE (of registration URLs)."""
        return {"POST": self.register, "DELETE": self.unregister}

    def properties(self) -> Mapping[str, LiveProperty]:
        """transports, topic and supported-triggers of push-enabled collections."""
        return {
            TRANSPORTS: LiveProperty(self._transports),
            TOPIC: LiveProperty(self._topic),
            SUPPORTED_TRIGGERS: LiveProperty(self._triggers),
        }

    def _transports(self, r: PropRenderer, res: Resource) -> str | None:
        if self._keys is None or not self.target.takes(res):
            return None
        key = self._keys.public_key
        return (
            f'<P:transports xmlns:P="{NS}"><P:web-push>'
            f'<P:vapid-public-key type="p256ecdsa">{key}</P:vapid-public-key>'
            "</P:web-push></P:transports>"
        )

    def _topic(self, r: PropRenderer, res: Resource) -> str | None:
        if self._keys is None or not self.target.takes(res):
            return None
        return f'<P:topic xmlns:P="{NS}">{self._keys.topic(self.prefix, res.path)}</P:topic>'

    def _triggers(self, r: PropRenderer, res: Resource) -> str | None:
        if not self.target.takes(res):
            return None
        level = _LEVEL.get(self.target.content_level, "infinite")
        depth = _LEVEL.get(self.target.property_depth, "infinite")
        return (
            f'<P:supported-triggers xmlns:P="{NS}">'
            f"<P:content-update><D:sync-level>{level}</D:sync-level></P:content-update>"
            f"<P:property-update><D:depth>{depth}</D:depth></P:property-update>"
            "</P:supported-triggers>"
        )

    # -- registration ----------------------------------------------------------------------

    async def register(self, ctx: Context) -> web.StreamResponse | None:
        """POST of a ``push-register`` body: 201 with the registration URL for a new
        subscription, 204 for an update of the same endpoint's; 403 with the draft's
        precondition when it cannot be."""
        root = await read_xml(ctx.request, ctx.settings.max_xml_size)
        if root is None or root.tag != PUSH_REGISTER:
            return None
        res = await ctx.storage.stat(ctx.path)
        if res is None:
            raise DAVError(404, f"{ctx.path!r} does not exist")
        if not self.target.takes(res):
            raise DAVError(403, "not a collection push is offered on", condition=PUSH_NOT_AVAILABLE)
        asked = parse_register(root)
        await self._check_endpoint(asked.endpoint)
        content = min(asked.content, self.target.content_level)
        properties = min(asked.properties, self.target.property_depth)
        now = time.time()
        longest = now + self.settings.max_expiry
        expires = min(asked.expires or longest, longest)
        if expires <= now:
            raise invalid("expires lies in the past")
        owner = ctx.user or ""
        sub = Subscription(
            secrets.token_urlsafe(16), self.prefix, ctx.path, owner, asked.endpoint,
            asked.public_key, asked.auth, content, properties, expires,
        )  # fmt: skip
        try:
            stored, new = await self.store.register(sub, self.settings.max_subscriptions)
        except LimitReached as exc:
            raise DAVError(403, str(exc), condition=PUSH_NOT_AVAILABLE) from exc
        location = f"{href(self.prefix, ctx.path, True)}?{PARAMETER}={stored.id}"
        log.info("push: %s %s %r on %s, until %s", "registered" if new else "renewed",
                 stored.id, owner, ctx.path, http_date(expires))  # fmt: skip
        return web.Response(
            status=201 if new else 204,
            headers={"Location": location, "Expires": http_date(expires)},
        )

    async def _check_endpoint(self, endpoint: str) -> None:
        """Refuse (invalid-subscription) an endpoint the rules forbid or that does not
        resolve to an address they allow."""
        try:
            host, port = self.policy.check_url(endpoint)
        except EndpointRefused as exc:
            raise invalid(f"push endpoint refused: {exc}") from exc
        resolver = self._resolver
        if resolver is None:
            raise DAVError(503, "push is not ready")
        try:
            await asyncio.wait_for(resolver.resolve(host, port, socket.AF_UNSPEC), 10)
        except (OSError, TimeoutError) as exc:
            raise invalid(f"push endpoint refused: {exc}") from exc

    async def unregister(self, ctx: Context) -> web.StreamResponse | None:
        """DELETE of a registration URL: 204, or 404 when it names no live registration
        of the requester on this collection (never the collection's own DELETE)."""
        query = ctx.request.rel_url.query
        if PARAMETER not in query:
            return None
        sub = await self.store.get(query[PARAMETER])
        mine = sub is not None and (sub.mount, sub.path, sub.owner) == (
            self.prefix,
            ctx.path,
            ctx.user or "",
        )
        if sub is None or not mine or not await self.store.delete(sub.id):
            raise DAVError(404, "no such push registration")
        log.info("push: unregistered %s on %s", sub.id, ctx.path)
        return web.Response(status=204)

    # -- changes ---------------------------------------------------------------------------

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Hear of the tree's changes made in this process (and of the others', which only
        tell the outside-change watcher what the server did)."""
        self._bus = bus
        bus.subscribe(tree.prefix, self._on_changes)
        bus.subscribe(tree.prefix, self._on_remote_changes, remote=True)

    async def _on_changes(self, events: Sequence[ChangeEvent]) -> None:
        self.target.heard(events)
        events = self.target.news(events)
        if self._dispatcher is None or not events:
            return
        ctx = CURRENT.get()
        quiet = NOBODY
        if ctx is not None and ctx.tree.prefix == self.prefix:
            quiet = quiet_of(ctx.request.headers.get(DONT_NOTIFY), ctx.user or "")
        inside = [e for e in events if not e.outside]
        if inside:
            self._dispatcher.add(inside, quiet)
        outside = [e for e in events if e.outside]
        if outside:
            self._dispatcher.add(outside, NOBODY)

    async def _on_remote_changes(self, events: Sequence[ChangeEvent]) -> None:
        self.target.heard(events)

    # -- life --------------------------------------------------------------------------------

    async def open(self, tree: Tree) -> None:
        """Load (or make) the keys, start delivering and polling."""
        keys = await load_keys(self._kept)
        self._keys = keys
        self._resolver = GuardedResolver(self.policy)
        self._sender = Sender(keys, self.policy, self.settings)
        await self._sender.open()
        self._dispatcher = Dispatcher(
            self.prefix, self.store, keys, self._sender, self.target.token,
            self.settings.merge_window,
        )  # fmt: skip
        self._dispatcher.start()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Look for outside changes of the subscribed collections, every poll interval,
        when this process leads the mount's polling; at the first and now and then drop
        what expired and what its owner may no longer have."""
        bus = self._bus
        purged = -math.inf
        leading = False
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                if not await self._leaders.take(self._leading):
                    if leading:  # another process polls now: what this one learnt ages
                        leading = False
                        self.target.restart()
                    continue
                leading = True
                if bus is not None:
                    await bus.catch_up()  # the other processes' changes are not outside ones
                collections = await self.store.collections(self.prefix)
                if collections:
                    await self.target.poll(collections)
                if time.monotonic() - purged > PURGE_EVERY:
                    purged = time.monotonic()
                    await self.store.purge()
                    await self._drop_unentitled()
            except Exception as exc:
                log.warning("push: looking for outside changes of %r failed: %s", self.prefix,
                            exc)  # fmt: skip

    async def _drop_unentitled(self) -> None:
        """Drop the subscriptions of the users the rules no longer let subscribe here (an
        account removed, access lowered, a group left): they were checked when made, and
        would otherwise go on telling their owner of changes until they expire."""
        if self.entitled is None:
            return
        for owner in await self.store.owners(self.prefix):
            if await self.entitled(owner) is False:
                count = await self.store.drop_owner(self.prefix, owner)
                log.info("push: %d subscriptions of %r on %r dropped: it may no longer "
                         "subscribe there", count, owner or "anonymous", self.prefix)  # fmt: skip

    async def close(self) -> None:
        """Stop polling and delivering."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._dispatcher is not None:
            await self._dispatcher.stop()
            self._dispatcher = None
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
        self.target.close()
        await self._leaders.release(self._leading)
