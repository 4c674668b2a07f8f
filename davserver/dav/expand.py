"""The expand-property REPORT (RFC 3253 §3.8): the properties of the request's resource,
where a property names other resources by ``D:href``, each replaced by a ``D:response``
with the properties asked of it (Apple's clients ask a principal this way for the
principals behind its properties). A named resource outside the tree, or in another
user's (but principals the requester could find by search, where the caller allows), is
answered with a status only, never looked at."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

from . import multistatus
from .context import Context
from .errors import DAVError
from .paths import destination_raw_path, href
from .props import PropRequest
from .xml import MULTISTATUS_CLOSE, MULTISTATUS_OPEN, escape, status_line

MAX_DEPTH = 3
"""How deep properties are expanded (each level one more round of lookups)."""
MAX_LOOKUPS = 200
"""How many resources one request may look up (beyond them: 507 statuses)."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """A ``D:property`` of the request: a name, and what to ask of the resources its
    value names (nothing: the value as it is)."""

    name: str
    children: tuple[Wanted, ...] = ()


def parse_wanted(parent: etree._Element, depth: int = 0) -> tuple[Wanted, ...]:
    """The ``D:property`` children of ``parent``; 400 for one without a name, or nested
    deeper than :data:`MAX_DEPTH`."""
    out = []
    for el in parent.iterfind("{DAV:}property"):
        name = el.get("name", "").strip()
        if not name:
            raise DAVError(400, "expand-property: a property without a name")
        if depth >= MAX_DEPTH and el.find("{DAV:}property") is not None:
            raise DAVError(400, "expand-property nested too deep")
        namespace = el.get("namespace", "DAV:")
        out.append(Wanted(f"{{{namespace}}}{name}", parse_wanted(el, depth + 1)))
    return tuple(out)


def _status(link: str, code: int) -> etree._Element:
    return etree.fromstring(
        f'<D:response xmlns:D="DAV:"><D:href>{escape(link)}</D:href>'
        f"<D:status>{status_line(code)}</D:status></D:response>"
    )


class _Expansion:
    """One request's expansion, bounded in the lookups it makes."""

    def __init__(self, ctx: Context, may_see: Callable[[str], bool]) -> None:
        self.ctx = ctx
        self.may_see = may_see
        self.left = MAX_LOOKUPS

    async def response(self, path: str, wanted: tuple[Wanted, ...]) -> etree._Element:
        """The response element of the resource at ``path``, its properties expanded."""
        ctx = self.ctx
        self.left -= 1
        names = tuple(dict.fromkeys(w.name for w in wanted))
        request = PropRequest("prop", names)
        res = await ctx.storage.stat(path, dead_props=request.needs_dead_props)
        if res is None:
            return _status(href(ctx.prefix, path, False), 404)
        renderer = ctx.renderer(request)
        await ctx.annotate(renderer, [res])
        text = MULTISTATUS_OPEN + renderer.render(res) + MULTISTATUS_CLOSE
        response = etree.fromstring(text.encode())[0]
        for want in wanted:
            if not want.children:
                continue
            for prop in response.iterfind(f"{{DAV:}}propstat/{{DAV:}}prop/{want.name}"):
                links = [el.text or "" for el in prop.iterfind("{DAV:}href")]
                for child in list(prop):
                    prop.remove(child)
                for link in links:
                    prop.append(await self.expanded(link.strip(), want.children))
        return response

    async def expanded(self, link: str, wanted: tuple[Wanted, ...]) -> etree._Element:
        """The response of the resource ``link`` names, or a status where it cannot be
        seen (or the request's lookups are spent)."""
        ctx = self.ctx
        try:
            raw = destination_raw_path(link, ctx.request.host)
            path = ctx.storage_path(raw) if ctx.contains(raw) else None
        except DAVError:
            path = None
        if path is None:
            return _status(link, 404)
        if not self.may_see(path):
            return _status(link, 403)
        if self.left <= 0:
            return _status(link, 507)
        return await self.response(path, wanted)


async def expand_property(
    ctx: Context, root: etree._Element, may_see: Callable[[str], bool] | None = None
) -> web.StreamResponse:
    """The request's resource with the properties asked, expanded (``may_see``: which
    named resources are looked at; by default those the requester may enter)."""
    wanted = parse_wanted(root)
    if not wanted:
        raise DAVError(400, "expand-property names no property")
    if len(wanted) > ctx.settings.max_props:
        raise DAVError(413, f"{len(wanted)} properties asked for")
    response = await _Expansion(ctx, may_see or ctx.may_enter).response(ctx.path, wanted)
    return multistatus.complete(etree.tostring(response, encoding="unicode"))
