"""The calendar REPORTs: calendar-multiget (RFC 4791 §7.9) here, calendar-query
(query.py), free-busy-query (freebusy.py) and sync-collection (sync.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import destination_raw_path

from .freebusy import free_busy_query
from .items import IndexedRenderer, ItemRenderer, missing
from .names import c, dav
from .query import query
from .sync import sync_collection

if TYPE_CHECKING:
    from davserver.dav.features import Report

BATCH = 256
"""hrefs of a multiget rendered per batch (a multiget of at most this many is answered
whole rather than streamed)."""


def _path_of(ctx: Context, link: str) -> str | None:
    try:
        raw = destination_raw_path(link.strip(), ctx.request.host)
        return ctx.storage_path(raw) if ctx.contains(raw) else None
    except DAVError:
        return None


async def multiget(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The named calendar objects with the properties asked for, in the order asked."""
    return await answer_multiget(ctx, root, ItemRenderer(ctx, root))


async def answer_multiget(
    ctx: Context, root: etree._Element, items: IndexedRenderer
) -> web.StreamResponse:
    """The items a multiget names (its ``D:href`` elements), rendered by ``items``, in
    the order asked (CardDAV's addressbook-multiget too)."""
    links = [el.text or "" for el in root.iterfind(dav("href"))]
    if not links:
        raise DAVError(400, f"{etree.QName(root).localname} names no href")
    targets = [(link, _path_of(ctx, link)) for link in links]
    # An href into another user's tree is answered 403, not looked at.
    allowed = [p is not None and ctx.may_enter(p) for _, p in targets]

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(targets), BATCH):
            batch = targets[i : i + BATCH]
            ok = allowed[i : i + BATCH]
            paths = [p for (_, p), good in zip(batch, ok, strict=True) if good and p is not None]
            rendered = iter(await items.render(paths) if paths else [])
            yield "".join(
                next(rendered) if good else missing(link.strip(), 404 if p is None else 403)
                for (link, p), good in zip(batch, ok, strict=True)
            )

    if len(targets) > BATCH:
        return await multistatus.stream(ctx.request, responses())
    # One batch (what clients send): the whole answer in one write, headers included.
    return multistatus.complete("".join([part async for part in responses()]))


async def empty(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """An empty 207, for reports clients send without checking support (InfCloud's
    expand-property), which must not fail."""
    return multistatus.complete("")


REPORTS: Mapping[str, Report] = {
    c("calendar-multiget"): multiget,
    c("calendar-query"): query,
    c("free-busy-query"): free_busy_query,
    dav("sync-collection"): sync_collection,
    dav("expand-property"): empty,
}
