"""REPORT: dispatch by the body's root element; calendar-multiget (RFC 4791 §7.9) here,
calendar-query (query.py), free-busy-query (freebusy.py) and sync-collection (sync.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.body import read_xml
from davserver.dav.errors import DAVError
from davserver.dav.paths import destination_raw_path

from .freebusy import free_busy_query
from .items import ItemRenderer, missing
from .names import c, dav
from .query import query
from .sync import sync_collection

if TYPE_CHECKING:
    from .mount import CalDavMount

BATCH = 256
"""hrefs of a multiget rendered per batch (a multiget of at most this many is answered
whole rather than streamed)."""
Report = Callable[["CalDavMount", web.Request, str, etree._Element], Awaitable[web.StreamResponse]]


def _path_of(mount: CalDavMount, request: web.Request, link: str) -> str | None:
    try:
        raw = destination_raw_path(link.strip(), request.host)
        return mount.storage_path(raw) if mount.contains(raw) else None
    except DAVError:
        return None


async def multiget(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """The named items with the properties asked for, in the order asked."""
    items = ItemRenderer(mount, request, root)
    links = [el.text or "" for el in root.iterfind(dav("href"))]
    if not links:
        raise DAVError(400, "calendar-multiget names no href")
    targets = [(link, _path_of(mount, request, link)) for link in links]
    # An href into another user's calendars is answered 403, not looked at.
    allowed = [p is not None and mount.may_enter(request, p) for _, p in targets]

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
        return await multistatus.stream(request, responses())
    # One batch (what clients send): the whole answer in one write, headers included.
    return multistatus.complete("".join([part async for part in responses()]))


async def empty(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """An empty 207, for reports clients send without checking support (InfCloud's
    expand-property), which must not fail."""
    return multistatus.complete("")


REPORTS: dict[str, Report] = {
    c("calendar-multiget"): multiget,
    c("calendar-query"): query,
    c("free-busy-query"): free_busy_query,
    dav("sync-collection"): sync_collection,
    dav("expand-property"): empty,
}


async def report(mount: CalDavMount, request: web.Request, path: str) -> web.StreamResponse:
    """Dispatch a REPORT by the root element of its body."""
    root = await read_xml(request, mount.settings.max_xml_size)
    if root is None:
        raise DAVError(400, "REPORT needs a body")
    handler = REPORTS.get(root.tag)
    if handler is None:
        raise DAVError(403, f"unsupported report {root.tag}", condition="supported-report")
    return await handler(mount, request, path, root)
