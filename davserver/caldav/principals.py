"""The principal reports of WebDAV ACL (RFC 3744 §9.3-9.5) on a CalDAV tree:
``principal-property-search`` finds users by display name, calendar user address or
e-mail address, ``principal-search-property-set`` names what can be searched, and
``principal-match`` finds the requester's own principal, or the resources whose property
(``owner``, say) names it.

Whom a search may find is the mount's ``principal_search`` setting: every principal,
every principal for authenticated requests (anonymous ones find their own only), or each
requester's own. The principals it may not find are left out as if they did not exist:
the answer is a 207 whatever exists, and says nothing of what it leaves out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.propfind import walk
from davserver.dav.props import PropRenderer, PropRequest, prop_selection
from davserver.dav.xml import MULTISTATUS_OPEN, XML_CONTENT_TYPE, XML_DECL, escape

from .names import c, cs, dav
from .services import calendars, settings
from .store.layout import PRINCIPALS, place

if TYPE_CHECKING:
    from davserver.dav.features import Report

SEARCHABLE = {
    dav("displayname"): "Display name",
    c("calendar-user-address-set"): "Calendar user address",
    cs("email-address-set"): "E-mail address",
}
"""What principal-search-property-set announces (any property of a principal can be
searched; these are the ones that tell users apart)."""
MATCH_TYPES = ("contains", "starts-with", "equals")
"""The ``match-type`` of a ``D:match`` (CalendarServer's extension; ``contains`` is RFC
3744's caseless substring match)."""
_NAMESPACES = MULTISTATUS_OPEN.partition("<D:multistatus")[2].partition(">")[0]
"""The namespace declarations the rendered property elements rely on."""


def _depth_zero(ctx: Context, report: str) -> None:
    """The principal reports are defined for Depth 0 only (RFC 3744 §9: else 400)."""
    depth = ctx.request.headers.get("Depth", "0").strip()
    if depth != "0":
        raise DAVError(400, f"{report} is only defined with Depth: 0, not {depth[:20]!r}")


STRUCTURE = frozenset(
    {
        dav("property-search"), dav("prop"), dav("apply-to-principal-collection-set"),
        dav("self"), dav("principal-property"),
    }
)  # fmt: skip
"""The elements a principal report's body is made of; anything else beside them is taken
for a property asked for (the caldav library puts them beside an empty ``D:prop``)."""


def _asked(root: etree._Element) -> PropRequest:
    """The properties to report of each principal found: those of the ``D:prop`` (none
    without one), and property elements left beside it."""
    stray = tuple(str(el.tag) for el in root if isinstance(el.tag, str) and el.tag not in STRUCTURE)
    if root.find(dav("prop")) is None:
        return PropRequest("prop", stray)
    asked = prop_selection(root)
    if not stray or asked.mode != "prop":
        return asked
    return PropRequest("prop", tuple(dict.fromkeys(asked.names + stray)))


def _values(element: str | None) -> list[str]:
    """The text values of a rendered property element (each ``D:href`` of an address
    set apart, not run together)."""
    if element is None:
        return []
    tree = etree.fromstring(f"<x {_NAMESPACES}>{element}</x>".encode())
    texts = [t.strip() for t in tree.itertext()]
    return [t for t in texts if t]


class Criterion:
    """One ``D:property-search``: its properties must each hold a value that matches."""

    def __init__(self, element: etree._Element) -> None:
        prop = element.find(dav("prop"))
        match = element.find(dav("match"))
        if prop is None or match is None:
            raise DAVError(400, "a property-search needs a prop and a match")
        self.names = [str(p.tag) for p in prop if isinstance(p.tag, str)]
        if not self.names:
            raise DAVError(400, "a property-search names no property")
        self.text = (match.text or "").casefold()
        self.how = match.get("match-type", "contains")
        if self.how not in MATCH_TYPES:
            raise DAVError(400, f"match-type {self.how[:20]!r} is not one of {MATCH_TYPES}")

    def _hit(self, value: str) -> bool:
        value = value.casefold()
        if self.how == "equals":
            return value == self.text
        if self.how == "starts-with":
            return value.startswith(self.text)
        return self.text in value

    def matches(self, renderer: PropRenderer, res: Resource) -> bool:
        """Whether every named property of the principal has a matching value."""
        for name in self.names:
            render = renderer.live.get(name)
            values = _values(render(renderer, res) if render is not None else None)
            if not any(self._hit(v) for v in values):
                return False
        return True


async def findable(ctx: Context) -> list[str]:
    """The users whose principals the request may find."""
    rule = settings(ctx).principal_search
    own = [ctx.principal] if ctx.principal else []
    if rule == "everyone" or (rule == "authenticated" and ctx.user is not None):
        return sorted({*await calendars(ctx).users(), *own})
    return own


async def _principals(ctx: Context, everywhere: bool) -> list[Resource]:
    """The principals the search covers: every findable one from the mount root, the
    principals or (``everywhere``) any resource; a principal itself only from its own URL."""
    where = place(ctx.path)
    users = await findable(ctx)
    if where.kind == "principal" and not everywhere:
        users = [u for u in users if u == where.user]
    elif where.kind not in ("root", "principals") and not everywhere:
        users = []
    found = [await ctx.storage.stat(f"{PRINCIPALS}/{u}") for u in users]
    return [r for r in found if r is not None]


async def _answer(ctx: Context, request: PropRequest, found: list[Resource]) -> web.Response:
    renderer = ctx.renderer(request)
    await ctx.annotate(renderer, found)
    return multistatus.complete("".join(renderer.render(r) for r in found))


async def principal_property_search(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The principals whose properties match the search (all of its criteria, or any
    with ``test="anyof"``), with the properties asked for."""
    _depth_zero(ctx, "principal-property-search")
    criteria = [Criterion(el) for el in root.iterfind(dav("property-search"))]
    test = root.get("test", "allof")
    if test not in ("allof", "anyof"):
        raise DAVError(400, f"test {test[:20]!r} is neither allof nor anyof")
    everywhere = root.find(dav("apply-to-principal-collection-set")) is not None
    candidates = await _principals(ctx, everywhere)
    names = tuple(dict.fromkeys(n for crit in criteria for n in crit.names))
    probe = ctx.renderer(PropRequest("prop", names))
    await ctx.annotate(probe, candidates)
    combine = any if test == "anyof" else all
    found = [
        res
        for res in candidates
        if not criteria or combine(crit.matches(probe, res) for crit in criteria)
    ]
    return await _answer(ctx, _asked(root), found)


async def principal_search_property_set(ctx: Context, root: etree._Element) -> web.Response:
    """The properties a principal-property-search can tell users apart by (§9.5)."""
    _depth_zero(ctx, "principal-search-property-set")
    ns = {"DAV:": "D", c("").strip("{}"): "C", cs("").strip("{}"): "CS"}
    parts = []
    for name, description in SEARCHABLE.items():
        space, local = name[1:].split("}")
        parts.append(
            f"<D:principal-search-property><D:prop><{ns[space]}:{local}/></D:prop>"
            f'<D:description xml:lang="en">{escape(description)}</D:description>'
            "</D:principal-search-property>"
        )
    body = (
        f"{XML_DECL}<D:principal-search-property-set {_NAMESPACES}>{''.join(parts)}"
        "</D:principal-search-property-set>"
    )
    return web.Response(status=200, body=body.encode(), content_type=XML_CONTENT_TYPE,
                        charset="utf-8")  # fmt: skip


async def principal_match(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """``D:self``: the requester's principal, where the request's URL holds it (the mount
    root, the principals, the principal). ``D:principal-property``: the resources below
    the request's URL (at any depth, the ones the requester may see) whose property names
    the requester's principal."""
    _depth_zero(ctx, "principal-match")
    request = _asked(root)
    mine = href(ctx.prefix, f"{PRINCIPALS}/{ctx.principal}", True) if ctx.principal else None
    if root.find(dav("self")) is not None:
        where = place(ctx.path)
        own = where.kind in ("root", "principals") or (
            where.kind == "principal" and where.user == ctx.principal
        )
        res = await ctx.storage.stat(f"{PRINCIPALS}/{ctx.principal}") if own and mine else None
        return await _answer(ctx, request, [res] if res is not None else [])
    holder = root.find(dav("principal-property"))
    named = [str(el.tag) for el in holder if isinstance(el.tag, str)] if holder is not None else []
    if len(named) != 1:
        raise DAVError(
            400, "principal-match needs self or a principal-property naming one property"
        )
    name = named[0]
    start = await ctx.storage.stat(ctx.path)
    if start is None or mine is None:
        return multistatus.complete("")
    renderer = ctx.renderer(request)
    probe = ctx.renderer(PropRequest("prop", (name,)))

    def names_me(res: Resource) -> bool:
        render = probe.live.get(name)
        return mine in _values(render(probe, res) if render is not None else None)

    async def responses() -> AsyncIterator[str]:
        first = [start]
        if names_me(start):
            await ctx.annotate(renderer, first)
            yield renderer.render(start)
        if not start.is_collection:
            return
        shared = ctx.settings.owner_only and ctx.owner(ctx.path) is None
        visible = ctx.may_enter if shared else None
        dead = request.needs_dead_props
        async for batch in walk(ctx.storage, ctx.path, infinite=True, dead_props=dead,
                                visible=visible):  # fmt: skip
            hits = [r for r in batch if names_me(r)]
            await ctx.annotate(renderer, hits)
            async for part in multistatus.render_in_slices(renderer.render, hits):
                yield part

    return await multistatus.stream(ctx.request, responses())


REPORTS: Mapping[str, Report] = {
    dav("principal-property-search"): principal_property_search,
    dav("principal-search-property-set"): principal_search_property_set,
    dav("principal-match"): principal_match,
}
