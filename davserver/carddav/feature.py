"""CardDAV (RFC 6352, with RFC 6578 sync and RFC 6764 discovery) as a feature of a
``caldav`` tree, after CalDAV: address-book homes, address books and vCards in the
mount's :class:`~davserver.caldav.store.layout.CalendarStore`, beside the calendars.

It shares what CalDAV has: the principals (which gain ``addressbook-home-set``), the
owner-only layout, the index and its change log (so sync tokens and ctags work as they
do for calendars), the sync-collection and multiget code. Its handlers answer for paths
in the address-book space and return None elsewhere, so CalDAV's answer for the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from davserver.backends.base import Resource
from davserver.caldav.members import indexed_members
from davserver.caldav.props import INDEXED, indexed_values
from davserver.caldav.store.follow import follow, uncache
from davserver.caldav.store.layout import ADDRESSBOOKS, CalendarStore, place
from davserver.dav.context import Context, ServiceKey, Tree
from davserver.dav.features import Discovery, Feature, Handler, LiveProperty, Report
from davserver.dav.props import LiveRenderer, PropRenderer

from . import copymove, get, mkcol, put, report
from .props import ADDRESSBOOK_HOME_SET, home_set, live_table
from .search import Search
from .services import SEARCH, SETTINGS, STORE, CardDavSettings

if TYPE_CHECKING:
    from davserver.events import ChangeEvent, EventBus

DEFAULT_BOOK = "contacts"


def default_addressbooks() -> dict[str, dict[str, bytes]]:
    """The address book every home starts with."""
    name = b'<D:displayname xmlns:D="DAV:">Contacts</D:displayname>'
    return {DEFAULT_BOOK: {"{DAV:}displayname": name}}


class CardDav(Feature):
    """Address books over the tree's store."""

    compliance = ("addressbook",)

    def __init__(self, prefix: str, store: CalendarStore, settings: CardDavSettings) -> None:
        self.prefix = prefix
        self.store = store
        self.settings = settings
        sample = live_table(prefix, settings.default_user, settings.max_resource_size)
        self._properties = {name: LiveProperty(render) for name, render in sample.items()}
        self._properties.update({name: LiveProperty(_worked_out) for name in INDEXED})
        self._offers: dict[str | None, Mapping[str, LiveRenderer]] = {}
        self._search = Search()

    def methods(self) -> Mapping[str, Handler]:
        """Validated PUT, extended MKCOL, COPY/MOVE under CardDAV's rules, GET in the
        vCard version asked for."""
        return {
            "PUT": put.put,
            "MKCOL": mkcol.mkcol,
            "COPY": copymove.copy_or_move,
            "MOVE": copymove.copy_or_move,
            "GET": get.get,
            "HEAD": get.get,
        }

    def reports(self) -> Mapping[str, Report]:
        """addressbook-multiget, addressbook-query, sync-collection, expand-property."""
        return report.REPORTS

    def properties(self) -> Mapping[str, LiveProperty]:
        """The CardDAV live properties (their renderers are per user: user_properties)."""
        return self._properties

    def user_properties(self, principal: str | None) -> Mapping[str, LiveRenderer]:
        """The live properties for requests of ``principal``."""
        user = principal or self.settings.default_user
        return live_table(self.prefix, user, self.settings.max_resource_size)

    def well_known(self) -> Mapping[str, str]:
        """RFC 6764: ``/.well-known/carddav`` leads to the tree's root."""
        return {"carddav": ""}

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The store, the settings and the search strings, for the handlers."""
        return {STORE: self.store, SETTINGS: self.settings, SEARCH: self._search}

    def discovery(self) -> Discovery:
        """addressbook-home-set of this tree, for other trees to answer with (CalDAV
        offers the principal's properties)."""
        return self._offer

    def _offer(self, user: str | None) -> Mapping[str, LiveRenderer]:
        found = self._offers.get(user)
        if found is None:
            found = {
                ADDRESSBOOK_HOME_SET: home_set(self.prefix, user or self.settings.default_user)
            }
            if len(self._offers) < 1024:
                self._offers[user] = found
        return found

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Fill in ctag and sync-token of the address books in ``batch`` from the index."""
        if not any(name in INDEXED for name in renderer.request.names):
            return
        for res in batch:
            where = place(res.path)
            if where.kind == "addressbook" and res.is_collection and where.book:
                await self.store.refresh(where.book)
                seq = await self.store.index.token(where.book)
                epoch = await self.store.index.epoch()
                renderer.values.update(indexed_values(res.path, seq, epoch))

    async def members(
        self, ctx: Context, renderer: PropRenderer, res: Resource
    ) -> AsyncIterator[str] | None:
        """The members of an address book, from the index (see caldav/members.py)."""
        return await indexed_members(self.store, "addressbook", renderer, res)

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Keep the index of the address books current from the tree's change events; of
        the changes other processes made (they wrote the index), drop what memory holds."""
        bus.subscribe(tree.prefix, self._on_changes)
        bus.subscribe(tree.prefix, self._on_remote_changes, remote=True)

    async def _on_changes(self, events: Sequence[ChangeEvent]) -> None:
        await follow(self.store, ADDRESSBOOKS, events)

    async def _on_remote_changes(self, events: Sequence[ChangeEvent]) -> None:
        uncache(self.store, ADDRESSBOOKS, events)


def _worked_out(r: PropRenderer, res: Resource) -> str | None:
    """ctag and sync-token come from :meth:`CardDav.annotate` (the renderer's values)."""
    return None
