"""The ``D:response`` elements of indexed items in REPORT answers, rendered in batches
from the index (ETag, size, dates) and the body cache, with the item's data when asked
for (calendar-data here, CardDAV's address-data in davserver/carddav/items.py): the disk
is read only for bodies not in memory, and dead properties."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from itertools import groupby
from operator import itemgetter
from typing import Any

from icalendar import Calendar
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href, member_hrefs
from davserver.dav.props import (
    PropRenderer,
    PropRequest,
    etag_element,
    prop_selection,
    propstat,
)
from davserver.dav.xml import status_line
from davserver.ical.spans import DAY, EARLIEST, LATEST, Span
from davserver.runtime.threads import offload

from . import calendar_data
from .names import c, dav
from .services import calendars, settings
from .store.items import CalendarItems
from .store.layout import CalendarStore, Place, collection_path, place
from .timezones import calendar_zone

Parsed = Mapping[str, Calendar]
"""Calendar objects parsed already in this request, by item name."""
CALENDAR_DATA = c("calendar-data")
GETETAG = dav("getetag")
_OK_OPEN, _OK_CLOSE = propstat("\0", 200).split("\0")
"""A propstat of found properties around them, in two (a response is one f-string)."""
Spans = Sequence[Span] | None
Target = tuple[str, str | None, str]
"""(path, inner collection path or None when not an indexed item, item name)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """An item's data that cannot be given as asked: the propstat that says why."""

    propstat: str


def missing(link: str, status: int = 404) -> str:
    """A response with only a status, for a member that is not there."""
    status_el = f"<D:status>{status_line(status)}</D:status>"
    return f"<D:response><D:href>{link}</D:href>{status_el}</D:response>"


class IndexedRenderer:
    """Renders the responses of the items of indexed collections, with their data when
    asked for; a subclass says which items, and what their data is."""

    data_name = CALENDAR_DATA
    """The property that carries an item's data."""
    others = True
    """Whether a resource that is no indexed item is answered too (else 404)."""

    def __init__(
        self, ctx: Context, root: etree._Element, store: CalendarStore, max_size: int
    ) -> None:
        self.prefix = ctx.prefix
        self.store = store
        self.max_size = max_size
        asked_props = prop_selection(root)
        most = ctx.settings.max_props
        if len(asked_props.names) > most:
            raise DAVError(413, f"{len(asked_props.names)} properties asked for; at most {most}")
        self.props: PropRenderer = ctx.renderer(asked_props)
        data_name = self.data_name
        element = root.find(f"{dav('prop')}/{data_name}")
        self.data = self.parse_data(element) if element is not None else None
        asked = self.props.request
        live = self.props.live
        # Dead properties are read only when a name is neither live nor the data, or is
        # a live one the server keeps among them.
        stored = ctx.features.stored
        self._dead = asked.mode != "prop" or any(
            (n not in live or n in stored) and n != data_name for n in asked.names
        )
        self._fresh: dict[str, CalendarItems] = {}
        # The usual request (sync, query): ETags and maybe calendar-data, rendered here
        # without the general renderer's per-property lookups.
        self._simple = (
            not self._dead
            and asked.mode == "prop"
            and bool(asked.names)
            and set(asked.names) <= {GETETAG, data_name}
            and len(set(asked.names)) == len(asked.names)
        )
        self.plain: Callable[[bytes], str] | None = None
        """A subclass's rendering of an item's data as stored (when that is what is asked
        for): with it, the usual request is answered from the index and the cached bytes
        alone (:meth:`_render_plain`)."""

    def parse_data(self, element: etree._Element) -> Any:
        """What the request's data element asks for."""
        raise NotImplementedError

    def indexed(self, where: Place) -> bool:
        """Whether ``where`` names an item of the collections this renderer answers for."""
        raise NotImplementedError

    async def render_data(
        self,
        targets: list[Target],
        resources: list[Resource | None],
        bodies: list[bytes | None],
        parsed: list[Any],
    ) -> Sequence[str | Refused | None]:
        """The data elements of the items (None where there is none to give, Refused
        where it cannot be given as asked)."""
        raise NotImplementedError

    async def _items(self, calendar: str) -> CalendarItems:
        """The index of ``calendar``, brought up to date once per request."""
        items = self._fresh.get(calendar)
        if items is None:
            items = self._fresh[calendar] = await self.store.refresh(calendar)
        return items

    async def _resources(self, targets: list[Target]) -> list[Resource | None]:
        """The items' resources: from the index (each calendar brought up to date once per
        request), or from the store for dead properties and what is not an item."""
        store = self.store
        out: list[Resource | None] = []
        for path, calendar, name in targets:
            if calendar is None:
                if not self.others:
                    out.append(None)
                    continue
                res = await store.stat(path, dead_props=self._dead)
                out.append(res if res is not None and not res.is_collection else None)
                continue
            items = await self._items(calendar)
            item = items.get(name)
            if item is None:
                out.append(None)
            elif self._dead:
                out.append(await store.stat(path, dead_props=True))
            else:
                out.append(store.item_resource(calendar, name, item))
        return out

    async def _body(self, target: Target, res: Resource | None) -> tuple[Resource, bytes] | None:
        path, calendar, name = target
        if calendar is not None:
            found = await self.store.item_body(calendar, name)
        else:
            body = await self.store.read(path, inline_limit=self.max_size)
            found = (body.resource, body.data) if body.data is not None else None
        if found is None:
            return None
        # The dead properties (when asked for) are on the resource looked up first.
        return (res if self._dead and res is not None else found[0]), found[1]

    async def render(self, paths: list[str]) -> list[str]:
        """The responses of the resources at these paths, in order (404 for those that
        are not there, or are not calendar objects)."""
        targets: list[Target] = []
        # Whether a path names an item, and of which collection, depends on its folder
        # alone (an item is a collection's member: see place): asked once per folder.
        folders: dict[str, str | None] = {}
        for path in paths:
            folder, _, name = path.rpartition("/")
            if folder not in folders:
                where = place(path)
                indexed = self.indexed(where) and where.collection and where.name == name
                folders[folder] = where.collection if indexed else None
            collection = folders[folder] if name else None
            targets.append((path, collection, name) if collection is not None else (path, None, ""))
        return await self.render_targets(targets)

    def known(self, calendar: str, items: CalendarItems) -> None:
        """Take ``items`` as the collection's index, brought up to date by the caller in
        this request (so it is not refreshed twice)."""
        self._fresh[calendar] = items

    async def render_members(
        self, path: str, calendar: str, names: list[str], parsed: Parsed | None = None
    ) -> list[str]:
        """The responses of items of the collection at ``path`` (inner path ``calendar``);
        ``parsed``: objects the caller parsed already, by name (not parsed again)."""
        items = self._fresh.get(calendar)
        if self._simple and self.data is None and items is not None:
            return self._etags(path, items, names)
        targets: list[Target] = [(f"{path}/{n}", calendar, n) for n in names]
        found = [parsed.get(n) for n in names] if parsed else None
        return await self.render_targets(targets, found)

    async def render_targets(
        self, targets: list[Target], parsed: list[Any] | None = None
    ) -> list[str]:
        """The responses of these targets, in order."""
        if (
            self._simple
            and (self.data is None or self.plain is not None)
            and all(calendar is not None for _, calendar, _ in targets)
        ):
            return await self._render_plain(targets)
        resources = await self._resources(targets)
        bodies: list[bytes | None] = [None] * len(targets)
        if self.data is not None:
            cache = self.store.bodies
            misses = []
            for i, ((_, calendar, name), res) in enumerate(zip(targets, resources, strict=True)):
                if res is None:
                    continue
                data = cache.get(f"{calendar}/{name}", res.etag) if calendar is not None else None
                if data is None:
                    misses.append(i)
                else:
                    bodies[i] = data
            fetched = await asyncio.gather(*(self._body(targets[i], resources[i]) for i in misses))
            for i, body in zip(misses, fetched, strict=True):
                resources[i], bodies[i] = body if body is not None else (None, None)
        rendered = await self.render_data(
            targets, resources, bodies, parsed or [None] * len(targets)
        )
        out = []
        values = self.props.values
        slices = multistatus.Slices()  # a thousand properties of each of 256 items: 200 ms
        for (path, _, _), res, text in zip(targets, resources, rendered, strict=True):
            await slices.tick()
            if res is None:
                out.append(missing(href(self.prefix, path, False)))
                continue
            if isinstance(text, Refused):
                out.append(self._refused_response(res, text))
                continue
            if self._simple and (text is not None or self.data is None):
                out.append(self._simple_response(res, text))
                continue
            if text is not None:
                values[(res.path, self.data_name)] = text
            out.append(self.props.render(res))
            if text is not None:
                del values[(res.path, self.data_name)]
        return out

    async def _render_plain(self, targets: list[Target]) -> list[str]:
        """What render_targets gives for indexed items when the request asks for their
        ETags and their data as stored: from the index and the body cache, without a
        resource per item (the bytes not cached are read)."""
        cache = self.store.bodies
        plain = self.plain if self.data is not None else None
        links: list[str] = []
        found: list[tuple[str, str | None] | None] = []  # (ETag, data element once read)
        misses: list[int] = []
        # The targets of a calendar come together: its index is looked up, and the href
        # of its folder made, once for them all.
        for calendar, group in groupby(targets, key=itemgetter(1)):
            members = list(group)
            names = [name for _, _, name in members]
            base = href(self.prefix, members[0][0].rpartition("/")[0], True)
            links += member_hrefs(base, names)
            known = (await self._items(calendar)).lookup(names)
            for name, item in zip(names, known, strict=True):
                if item is None:
                    found.append(None)
                elif plain is None:
                    found.append((item.etag, ""))
                else:
                    data = cache.rendered(f"{calendar}/{name}", item.etag, plain)
                    if data is None:
                        misses.append(len(found))
                    found.append((item.etag, data))
        if misses:
            assert plain is not None
            fetched = await asyncio.gather(*(self._body(targets[i], None) for i in misses))
            for i, got in zip(misses, fetched, strict=True):
                found[i] = (got[0].etag, plain(got[1])) if got is not None else None
        asked = self.props.request.names
        with_etag = GETETAG in asked
        etag_first = asked[0] == GETETAG
        out: list[str] = []
        slices = multistatus.Slices()
        for link, entry in zip(links, found, strict=True):
            if len(out) % 64 == 0:
                await slices.tick()
            if entry is None:
                out.append(missing(link))
                continue
            etag, data = entry
            tag = etag_element(etag) if with_etag else ""
            first, second = (tag, data) if etag_first else (data, tag)
            out.append(
                f"<D:response><D:href>{link}</D:href>"
                f"{_OK_OPEN}{first}{second}{_OK_CLOSE}</D:response>"
            )
        return out

    def _refused_response(self, res: Resource, refused: Refused) -> str:
        """The response of an item whose data cannot be given as asked: the other
        properties, then the data's own propstat."""
        others = tuple(n for n in self.props.request.names if n != self.data_name)
        renderer = dataclasses.replace(self.props, request=PropRequest("prop", others))
        return (
            renderer.render(res).removesuffix("</D:response>") + refused.propstat + "</D:response>"
        )

    def _etags(self, path: str, items: CalendarItems, names: list[str]) -> list[str]:
        """Responses with the getetag alone (a sync or a query asking nothing else) from
        the index, without a resource per item: what _simple_response gives."""
        links = member_hrefs(href(self.prefix, path, True), names)
        out = []
        for link, item in zip(links, items.lookup(names), strict=True):
            if item is None:
                out.append(missing(link))
            else:
                out.append(
                    f"<D:response><D:href>{link}</D:href>{_OK_OPEN}"
                    f"{etag_element(item.etag)}{_OK_CLOSE}</D:response>"
                )
        return out

    def _simple_response(self, res: Resource, text: str | None) -> str:
        """What the general renderer gives for getetag and the data, both found."""
        found = "".join(
            etag_element(res.etag) if name == GETETAG else text or ""
            for name in self.props.request.names
        )
        link = href(self.prefix, res.path, False)
        return f"<D:response><D:href>{link}</D:href>{propstat(found, 200)}</D:response>"


class ItemRenderer(IndexedRenderer):
    """Renders the responses of calendar objects, with calendar-data when asked for;
    expanded or limited data takes floating times in the zone the request set
    (:meth:`in_zone`), else in each calendar's ``calendar-timezone``, else UTC."""

    def __init__(self, ctx: Context, root: etree._Element) -> None:
        super().__init__(ctx, root, calendars(ctx), settings(ctx).max_resource_size)
        spec = self.data
        if spec is not None and spec.verbatim:
            self.plain = calendar_data.verbatim
        self._zones: dict[str, tzinfo | None] = {}
        self._zone_set = False

    def parse_data(self, element: etree._Element) -> calendar_data.CalendarData:
        """A ``C:calendar-data`` element."""
        return calendar_data.parse(element)

    def in_zone(self, zone: tzinfo | None) -> None:
        """Take floating times in ``zone`` (a calendar-query's), whatever the calendar."""
        self._zone_set = True
        if self.data is not None:
            self.data = dataclasses.replace(self.data, zone=zone)

    async def _specs(self, targets: list[Target]) -> list[calendar_data.CalendarData | None]:
        """What is asked of each item's data, with the zone of the item's calendar when
        the answer depends on one."""
        spec = self.data
        if spec is None or self._zone_set or (spec.expand is None and spec.limit is None):
            return [spec] * len(targets)
        rng = spec.expand or spec.limit
        assert rng is not None
        out: list[calendar_data.CalendarData | None] = []
        for _, calendar, _ in targets:
            if calendar is None:
                out.append(spec)
                continue
            if calendar not in self._zones:
                path = collection_path(calendar)
                self._zones[calendar] = await calendar_zone(self.store, path, rng.lo, rng.hi)
            out.append(dataclasses.replace(spec, zone=self._zones[calendar]))
        return out

    def indexed(self, where: Place) -> bool:
        """Calendar objects."""
        return where.kind == "item" and where.calendar is not None

    async def render_data(
        self,
        targets: list[Target],
        resources: list[Resource | None],
        bodies: list[bytes | None],
        parsed: list[Any],
    ) -> Sequence[str | None]:
        """calendar-data, partial or expanded as asked."""
        specs = await self._specs(targets)
        known = self._known_spans(targets, resources)
        return await self._calendar_data(bodies, known, parsed, specs)

    def _known_spans(self, targets: list[Target], resources: list[Resource | None]) -> list[Spans]:
        """For each item, the index's spans when they can stand for its instances in the
        expand range (indexed from the very bytes read, and covering the range)."""
        rng = self.data.expand if self.data is not None else None
        if rng is None:
            return [None] * len(targets)
        out: list[Spans] = []
        index = self.store.index
        # A day's margin: a floating instance's wall time may be that far from UTC.
        lo, hi = rng.lo - DAY, rng.hi + DAY
        covered = (max(lo, EARLIEST.timestamp()), min(hi, LATEST.timestamp()))
        for (_, calendar, name), res in zip(targets, resources, strict=True):
            items = index.cached(calendar) if calendar is not None else None
            item = items.get(name) if items is not None else None
            usable = (
                item is not None and res is not None and item.etag == res.etag
                and item.covers(*covered)
            )  # fmt: skip
            # Only the spans near the range: the expansion tests each of them again.
            out.append(item.spans_near(lo, hi) if usable and item is not None else None)
        return out

    async def _calendar_data(
        self,
        bodies: list[bytes | None],
        known: list[Spans],
        parsed: list[Calendar | None],
        specs: list[calendar_data.CalendarData | None],
    ) -> list[str | None]:
        spec = self.data
        if spec is None:
            return [None] * len(bodies)
        if spec.verbatim:
            return [calendar_data.render(b, spec) if b is not None else None for b in bodies]
        return await offload(_render_all, bodies, known, parsed, specs)


def _render_all(
    bodies: list[bytes | None],
    known: list[Spans],
    parsed: list[Calendar | None],
    specs: list[calendar_data.CalendarData | None],
) -> list[str | None]:
    """calendar-data of several objects (off the event loop); one that fails to parse
    is sent as stored."""
    out: list[str | None] = []
    for body, spans, calendar, spec in zip(bodies, known, parsed, specs, strict=True):
        if body is None or spec is None:
            out.append(None)
            continue
        try:
            out.append(calendar_data.render(body, spec, spans, calendar))
        except ValueError:
            out.append(calendar_data.render(body, calendar_data.CalendarData()))
    return out
