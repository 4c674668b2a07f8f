"""Features: the parts of the DAV protocol a tree is made of, and their composition.

A feature (WebDAV's core, locking, CalDAV; later CardDAV, scheduling, push) contributes
method handlers, live properties, REPORTs, ``DAV:`` compliance tokens, ``/.well-known/``
entries and subscriptions to change events; a mount is a :class:`FeatureSet` over a
storage. Adding a feature is one new class and one more entry in the list a mount is
built from: nothing in the others changes.

Where several features handle one method (or report, or property), the one listed later
is asked first; a handler answers None when the resource is not its business, and the
next one is asked (CalDAV's PUT takes calendar objects, WebDAV's core PUT the rest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource

from . import acl
from .context import Context, DavSettings, ServiceKey, Tree
from .identity import MAY_WRITE
from .propfind import wants_minimal
from .props import LIVE, LiveRenderer, PropRenderer, PropRequest
from .report import report as report_method

if TYPE_CHECKING:
    from davserver.events import EventBus

Handler = Callable[[Context], Awaitable[web.StreamResponse | None]]
"""A method handler; None when the resource is not its feature's business."""
Report = Callable[[Context, etree._Element], Awaitable[web.StreamResponse | None]]
"""A REPORT handler, given the parsed body; None when not its business."""
Discovery = Callable[[str | None], Mapping[str, LiveRenderer]]
"""Properties another tree answers with, for the authenticated user (None: anonymous),
to lead clients to this feature."""

MAX_TABLES = 1024
"""Users whose composed live-property tables are kept."""


@dataclass(frozen=True, slots=True)
class LiveProperty:
    """A live property: how it renders (None where a resource lacks it), and whether a
    client may not set it."""

    render: LiveRenderer
    protected: bool = True
    stored: bool = False
    """Rendered from the resource's dead properties (kept there by the server, as the
    schedule tag is): whoever renders it must have read them."""


class Feature:
    """A part of the protocol; each method says what the feature adds (nothing here)."""

    compliance: tuple[str, ...] = ()
    """Tokens of the ``DAV:`` header."""
    grants_locks = False
    """Whether the feature is the one that locks resources (their properties then show
    the locks)."""

    def methods(self) -> Mapping[str, Handler]:
        """Method handlers by method name."""
        return {}

    def properties(self) -> Mapping[str, LiveProperty]:
        """Live properties by Clark name."""
        return {}

    def reports(self) -> Mapping[str, Report]:
        """REPORT handlers by the Clark name of the body's root element."""
        return {}

    def well_known(self) -> Mapping[str, str]:
        """``/.well-known/<name>`` entries: name → path below the tree's prefix."""
        return {}

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """What the feature keeps for the tree, for handlers to reach (ctx.service)."""
        return {}

    def discovery(self) -> Discovery | None:
        """Properties that other trees answer with to lead clients here."""
        return None

    def user_properties(self, principal: str | None) -> Mapping[str, LiveRenderer]:
        """Live properties whose renderers depend on the requesting user (built once
        per user and kept)."""
        return {}

    def privileges(self, path: str, granted: tuple[str, ...]) -> tuple[str, ...]:
        """The privileges a request has on ``path``, given those the access rules grant
        it (none: never called); a feature whose places allow other operations says so
        (dav/acl.py)."""
        return granted

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Subscribe to the tree's change events."""

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Work out, before a batch renders, property values that need I/O."""

    async def members(
        self, ctx: Context, renderer: PropRenderer, res: Resource
    ) -> AsyncIterator[str] | None:
        """The responses of the members of the collection ``res`` (a PROPFIND of Depth 1)
        when the feature gives them faster than listing and rendering each (from an
        index); None: they are listed and rendered as usual."""
        return None

    async def check_props(
        self, ctx: Context, res: Resource, props: Mapping[str, bytes]
    ) -> Mapping[str, str]:
        """Of the property values a PROPPATCH would store on ``res``, those the feature
        refuses: name → the precondition element that fails (answered 403)."""
        return {}

    async def decline(self, ctx: Context) -> web.StreamResponse | None:
        """The answer to a sharee's DELETE of a collection shared with them (the
        owner-only rule lets nothing else of it through): the feature turns the share
        down for them alone; None: not its business (the DELETE is refused, 403)."""
        return None

    async def open(self, tree: Tree) -> None:
        """Prepare what the feature needs (after the storage opened)."""

    async def close(self) -> None:
        """Release what the feature holds (before the storage closes)."""


class Layout:
    """How users' trees lie in a DAV tree: each user's under the first path segment. A
    path's owner, when it has one, is the owner of everything below it too."""

    def owner(self, path: str) -> str | None:
        """The user whose tree ``path`` lies in (None: a place every user shares)."""
        return path.partition("/")[0] or None

    def principal(self, user: str | None) -> str | None:
        """Whose tree a request of ``user`` (None: anonymous) may enter."""
        return user

    def home(self, shared: str, user: str) -> str | None:
        """Where in ``user``'s tree a collection shared with them (at ``shared``) is
        listed: the top of their tree (None: nowhere)."""
        return user

    def read_only(self, path: str) -> bool:
        """Whether ``path`` is a place no request changes, whoever asks (none here)."""
        return False

    def principal_path(self, user: str) -> str | None:
        """The path of ``user``'s principal resource in the tree (None: the tree has no
        principals)."""
        return None


class FeatureSet:
    """The features of one tree, composed once: method, property and report tables, the
    ``DAV:`` and ``Allow`` headers, and the per-user property tables (with the privileges
    ``settings`` give each user, dav/acl.py)."""

    def __init__(
        self,
        features: Sequence[Feature],
        layout: Layout | None = None,
        settings: DavSettings | None = None,
    ) -> None:
        self.features = list(features)
        self.layout = layout or Layout()
        newest_first = list(reversed(self.features))
        self.handlers: dict[str, list[Handler]] = {}
        self.report_handlers: dict[str, list[Report]] = {}
        for feature in newest_first:
            for method, handler in feature.methods().items():
                self.handlers.setdefault(method, []).append(handler)
            for name, report in feature.reports().items():
                self.report_handlers.setdefault(name, []).append(report)
        if self.report_handlers:
            self.handlers.setdefault("REPORT", []).append(report_method)
        props: dict[str, list[LiveProperty]] = {}
        for feature in newest_first:
            for name, prop in feature.properties().items():
                props.setdefault(name, []).append(prop)
        self.live = {n: _chain([p.render for p in ps]) for n, ps in props.items()}
        self.protected = frozenset(
            n for n, ps in props.items() if any(p.protected for p in ps)
        ).union(acl.NAMES)
        self.stored = frozenset(n for n, ps in props.items() if any(p.stored for p in ps))
        self.locking = any(f.grants_locks for f in self.features)
        self.rules = acl.Rules(
            settings or DavSettings(), self.layout.owner, self.layout.read_only,
            self.layout.principal_path, self.layout.principal(None), self.locking,
            self._privileges,
        )  # fmt: skip
        tokens: list[str] = []
        for feature in self.features:
            tokens.extend(t for t in feature.compliance if t not in tokens)
        self.dav_header = ", ".join(tokens)
        self.allow = ", ".join(self.handlers)
        self.services: dict[ServiceKey[Any], Any] = {}
        for feature in self.features:
            self.services.update(feature.services())
        self.discovery: list[Discovery] = []
        """What other trees offer (set by the server once every tree is built)."""
        self._tables: dict[tuple[str | None, str | None], dict[str, LiveRenderer]] = {}

    def _privileges(self, path: str, granted: tuple[str, ...]) -> tuple[str, ...]:
        for feature in self.features:
            granted = feature.privileges(path, granted)
        return granted

    def well_known(self) -> dict[str, str]:
        """The ``/.well-known/`` entries of every feature."""
        found: dict[str, str] = {}
        for feature in self.features:
            found.update(feature.well_known())
        return found

    def own_discovery(self) -> list[Discovery]:
        """What this tree's features offer other trees."""
        return [d for f in self.features if (d := f.discovery()) is not None]

    def owner(self, path: str) -> str | None:
        """The user whose tree ``path`` lies in (see :class:`Layout`)."""
        return self.layout.owner(path)

    def principal(self, user: str | None) -> str | None:
        """Whose tree a request of ``user`` may enter (see :class:`Layout`)."""
        return self.layout.principal(user)

    def home(self, shared: str, user: str) -> str | None:
        """Where a collection shared with ``user`` is listed (see :class:`Layout`)."""
        return self.layout.home(shared, user)

    async def dispatch(self, ctx: Context) -> web.StreamResponse | None:
        """The answer of the first handler of the request's method that takes it (None:
        no feature handles the method)."""
        for handler in self.handlers.get(ctx.request.method, ()):
            response = await handler(ctx)
            if response is not None:
                return response
        return None

    async def decline(self, ctx: Context) -> web.StreamResponse | None:
        """The first feature's answer to a sharee's DELETE of a shared collection (see
        :meth:`Feature.decline`), or None."""
        for feature in self.features:
            response = await feature.decline(ctx)
            if response is not None:
                return response
        return None

    async def report(self, ctx: Context, root: etree._Element) -> web.StreamResponse | None:
        """The answer of the first report handler of the body's root element that takes it."""
        for handler in self.report_handlers.get(str(root.tag), ()):
            response = await handler(ctx, root)
            if response is not None:
                return response
        return None

    def table(self, user: str | None, level: str | None) -> dict[str, LiveRenderer]:
        """The live properties a request of ``user`` (None: anonymous) sees: the
        features' own, those other trees offer for discovery (where the features have
        none of the name), those that depend on the user, and the user's privileges
        (``level``: the access level the rules gave the request, groups included; None:
        the tree's level for anonymous or authenticated requests). Built once per user
        and level."""
        table = self._tables.get((user, level))
        if table is None:
            table = {}
            for offer in self.discovery:
                table.update(offer(user))
            table.update(self.live)
            principal = self.principal(user)
            own: dict[str, list[LiveRenderer]] = {}
            for feature in reversed(self.features):
                for name, render in feature.user_properties(principal).items():
                    own.setdefault(name, []).append(render)
            table.update({name: _chain(renders) for name, renders in own.items()})
            table.update(self.rules.properties(user, principal, level))
            if len(self._tables) < MAX_TABLES:
                self._tables[(user, level)] = table
        return table

    def renderer(self, ctx: Context, prop_request: PropRequest) -> PropRenderer:
        """The renderer of this tree's properties for one request."""
        locks = ctx.locks
        prefix = ctx.prefix
        return PropRenderer(
            prefix,
            prop_request,
            live=self.table(ctx.user, _level(ctx.request)),
            minimal=wants_minimal(ctx.request),
            locks=(lambda path: locks.covering(prefix, path)) if self.locking else None,
            grants=ctx.grants,
        )

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Let every feature work out the values that need I/O for ``batch``."""
        for feature in self.features:
            await feature.annotate(ctx, renderer, batch)

    async def members(
        self, ctx: Context, renderer: PropRenderer, res: Resource
    ) -> AsyncIterator[str] | None:
        """The first feature's rendering of the members of ``res`` (see
        :meth:`Feature.members`), or None."""
        for feature in self.features:
            found = await feature.members(ctx, renderer, res)
            if found is not None:
                return found
        return None

    async def check_props(
        self, ctx: Context, res: Resource, props: Mapping[str, bytes]
    ) -> dict[str, str]:
        """The property values some feature refuses, with the precondition that fails."""
        refused: dict[str, str] = {}
        for feature in self.features:
            refused.update(await feature.check_props(ctx, res, props))
        return refused


def _chain(renderers: Iterable[LiveRenderer]) -> LiveRenderer:
    """One renderer trying each in turn until one renders."""
    found = list(renderers)
    if len(found) == 1:
        return found[0]

    def render(r: PropRenderer, res: Resource) -> str | None:
        for each in found:
            value = each(r, res)
            if value is not None:
                return value
        return None

    return render


BASE_PROPERTIES = {
    name: LiveProperty(render, protected=name != "{DAV:}displayname")
    for name, render in LIVE.items()
}
"""WebDAV's own live properties (RFC 4918 §15, RFC 4331), as the core feature declares them."""


def _level(request: web.Request) -> str | None:
    """The access level the mount's rules gave ``request`` (they admit only read-only
    and read-write ones), None where no rules were asked."""
    may_write = request.get(MAY_WRITE)
    if may_write is None:
        return None
    return "read-write" if may_write else "read-only"
