"""The REPORTs of address books: addressbook-multiget (RFC 6352 §8.7) and sync-collection
(RFC 6578) with CalDAV's code and the vCard renderer, addressbook-query (query.py), and
expand-property on principals. Each answers None outside its place, so the calendars'
reports answer there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.caldav import sync
from davserver.caldav.report import answer_multiget
from davserver.caldav.store.layout import ADDRESSBOOKS, place
from davserver.dav.context import Context
from davserver.dav.expand import expand_property

from .items import CardRenderer
from .names import cr
from .query import query

if TYPE_CHECKING:
    from davserver.dav.features import Report


async def multiget(ctx: Context, root: etree._Element) -> web.StreamResponse | None:
    """The named vCards with the properties asked for, in the order asked."""
    if place(ctx.path).space != ADDRESSBOOKS:
        return None
    return await answer_multiget(ctx, root, CardRenderer(ctx, root))


async def sync_collection(ctx: Context, root: etree._Element) -> web.StreamResponse | None:
    """What changed in an address book since a sync token (everything, without one)."""
    where = place(ctx.path)
    if where.kind != "addressbook" or not where.book:
        return None
    return await sync.answer(ctx, root, where.book, CardRenderer(ctx, root))


async def expand(ctx: Context, root: etree._Element) -> web.StreamResponse | None:
    """expand-property of a principal (elsewhere CalDAV's empty answer stands)."""
    if place(ctx.path).kind != "principal":
        return None
    return await expand_property(ctx, root)


REPORTS: Mapping[str, Report] = {
    cr("addressbook-multiget"): multiget,
    cr("addressbook-query"): query,
    "{DAV:}sync-collection": sync_collection,
    "{DAV:}expand-property": expand,
}
