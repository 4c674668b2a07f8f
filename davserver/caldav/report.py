"""REPORT: calendar-multiget and calendar-query (RFC 4791 §7.8, §7.9) and
sync-collection (RFC 6578)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import icalendar
from aiohttp import web
from lxml import etree

from davserver.backends.base import NotFound
from davserver.backends.calendar import place
from davserver.dav import multistatus
from davserver.dav.body import read_xml
from davserver.dav.errors import DAVError
from davserver.dav.paths import destination_raw_path, href
from davserver.dav.props import PropRenderer, prop_selection
from davserver.dav.xml import status_line

from . import calendar_data, filters
from .names import c, dav
from .props import parse_sync_token, sync_token

if TYPE_CHECKING:
    from .mount import CalDavMount

Report = Callable[["CalDavMount", web.Request, str, etree._Element], Awaitable[web.StreamResponse]]
CALENDAR_DATA = c("calendar-data")
# Items read and filtered per thread-pool call in a calendar-query.
QUERY_BATCH = 64


def _missing(link: str, status: int = 404) -> str:
    status_el = f"<D:status>{status_line(status)}</D:status>"
    return f"<D:response><D:href>{link}</D:href>{status_el}</D:response>"


class ItemRenderer:
    """Renders the responses of calendar objects, with calendar-data when asked for."""

    def __init__(self, mount: CalDavMount, request: web.Request, root: etree._Element) -> None:
        selection = prop_selection(root)
        self.mount = mount
        self.props: PropRenderer = mount.renderer(request, selection)
        element = root.find(f"{dav('prop')}/{CALENDAR_DATA}")
        self.data = calendar_data.parse(element) if element is not None else None

    async def read(self, path: str) -> bytes | None:
        """The stored bytes of an item, or None when it is gone."""
        try:
            body = await self.mount.storage.read(
                path, inline_limit=self.mount.caldav.max_resource_size
            )
        except NotFound:
            return None
        return body.data

    async def response(self, path: str, data: bytes | None = None) -> str:
        """The response for the item at ``path`` (404 when it is gone)."""
        storage = self.mount.storage
        res = await storage.stat(path, dead_props=self.props.request.needs_dead_props)
        if res is None or res.is_collection:
            return _missing(href(self.mount.prefix, path, False))
        if self.data is not None:
            if data is None:
                data = await self.read(path)
            if data is None:
                return _missing(href(self.mount.prefix, path, False))
            loop = asyncio.get_running_loop()
            rendered = (
                calendar_data.render(data, self.data)
                if self.data.verbatim
                else await loop.run_in_executor(None, calendar_data.render, data, self.data)
            )
            self.props.values[(path, CALENDAR_DATA)] = rendered
        await self.mount.annotate(self.props, [res])
        return self.props.render(res)


def _path_of(mount: CalDavMount, request: web.Request, link: str) -> str | None:
    try:
        raw = destination_raw_path(link.strip(), request.host)
        return mount.storage_path(raw) if mount.contains(raw) else None
    except DAVError:
        return None


async def multiget(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """The named items with the properties asked for."""
    items = ItemRenderer(mount, request, root)
    links = [el.text or "" for el in root.iterfind(dav("href"))]
    if not links:
        raise DAVError(400, "calendar-multiget names no href")

    async def responses() -> AsyncIterator[str]:
        for link in links:
            target = _path_of(mount, request, link)
            yield await items.response(target) if target is not None else _missing(link.strip())

    return await multistatus.stream(request, responses())


def _matching(data: list[bytes | None], flt: filters.CompFilter) -> list[bool]:
    """Which of these objects pass the filter (runs in the thread pool)."""
    out = []
    for raw in data:
        if raw is None:
            out.append(False)
            continue
        try:
            out.append(filters.matches(icalendar.Calendar.from_ical(raw), flt))
        except ValueError:
            out.append(False)
    return out


async def query(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """The items of a calendar (or the one item) that pass the filter."""
    flt = filters.parse_filter(root.find(c("filter")))
    items = ItemRenderer(mount, request, root)
    where = place(path)
    if where.kind == "calendar" and where.calendar:
        index = await mount.storage.refresh(where.calendar)
        wanted = flt.component_names()
        names = [n for n, it in index.items() if not wanted or it.component in wanted]
        candidates = [f"{path}/{name}" for name in sorted(names)]
    elif where.kind == "item":
        candidates = [path]
    else:
        candidates = []
    loop = asyncio.get_running_loop()

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(candidates), QUERY_BATCH):
            batch = candidates[i : i + QUERY_BATCH]
            data = [await items.read(p) for p in batch]
            passed = await loop.run_in_executor(None, _matching, data, flt)
            for p, raw, ok in zip(batch, data, passed, strict=True):
                if ok:
                    yield await items.response(p, raw)

    return await multistatus.stream(request, responses())


async def sync_collection(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """What changed in a calendar since a sync token (everything, without one)."""
    where = place(path)
    if where.kind != "calendar" or not where.calendar:
        raise DAVError(403, "sync-collection works on calendars", condition="supported-report")
    store = mount.storage
    await store.refresh(where.calendar)
    given = (root.findtext(dav("sync-token")) or "").strip()
    since = 0
    if given:
        parsed = parse_sync_token(given)
        if parsed is None or parsed > await store.index.newest():
            raise DAVError(403, "unknown sync token", condition="valid-sync-token")
        since = parsed
    changes = await store.index.changes_since(where.calendar, since)
    if not given:
        changes = [ch for ch in changes if not ch[2]]
    limit_text = root.findtext(f"{dav('limit')}/{dav('nresults')}")
    limit = int(limit_text) if limit_text and limit_text.strip().isdigit() else None
    truncated = limit is not None and len(changes) > limit
    if truncated:
        changes = changes[:limit]
        end = changes[-1][0] if changes else since
    else:
        end = max(since, await store.index.token(where.calendar))
    items = ItemRenderer(mount, request, root)

    async def responses() -> AsyncIterator[str]:
        for _seq, name, deleted in changes:
            member = f"{path}/{name}"
            if deleted:
                yield _missing(href(mount.prefix, member, False))
            else:
                yield await items.response(member)
        if truncated:
            link = href(mount.prefix, path, True)
            yield (
                f"<D:response><D:href>{link}</D:href><D:status>{status_line(507)}</D:status>"
                "<D:error><D:number-of-matches-within-limits/></D:error></D:response>"
            )

    trailer = f"<D:sync-token>{sync_token(end)}</D:sync-token>"
    return await multistatus.stream(request, responses(), trailer)


async def empty(
    mount: CalDavMount, request: web.Request, path: str, root: etree._Element
) -> web.StreamResponse:
    """An empty 207, for reports clients send without checking support (InfCloud's
    expand-property), which must not fail."""
    return multistatus.complete("")


REPORTS: dict[str, Report] = {
    c("calendar-multiget"): multiget,
    c("calendar-query"): query,
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
