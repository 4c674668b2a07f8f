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
from davserver.caldav.services import settings as caldav_settings
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
    """expand-property of a principal, a group's, or a user's group of delegates (Apple's
    clients expand its ``group-member-set``); elsewhere CalDAV's empty answer stands."""
    if place(ctx.path).kind not in ("principal", "proxy", "group"):
        return None
    rule = caldav_settings(ctx).principal_search
    others = rule == "everyone" or (rule == "authenticated" and ctx.user is not None)

    def may_see(path: str) -> bool:
        # A principal the requester could find by principal-property-search is expanded
        # as well (a group's members, a user's delegates): no more than the search shows.
        return ctx.may_enter(path) or (others and place(path).kind == "principal")

    return await expand_property(ctx, root, may_see)


REPORTS: Mapping[str, Report] = {
    cr("addressbook-multiget"): multiget,
    cr("addressbook-query"): query,
    "{DAV:}sync-collection": sync_collection,
    "{DAV:}expand-property": expand,
}
