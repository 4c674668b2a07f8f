"""CalDAV (RFC 4791, with RFC 6578 sync and RFC 6764 discovery) as a feature of a DAV tree:
principals, calendar homes and calendars over a :class:`~.store.layout.CalendarStore`.

It adds the calendar methods (validated PUT, MKCALENDAR, extended MKCOL, COPY and MOVE
under CalDAV's rules), the calendar REPORTs, the live properties of principals, homes and
calendars, ``/.well-known/caldav``, and keeps the calendar index current from the tree's
change events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav.context import Context, ServiceKey, Tree
from davserver.dav.exports import SERVICE as EXPORTS
from davserver.dav.features import (
    Discovery,
    Feature,
    Handler,
    Layout,
    LiveProperty,
    Report,
)
from davserver.dav.paths import href
from davserver.dav.props import LiveRenderer, PropRenderer
from davserver.ical.timezone import timezone_problem
from davserver.runtime.threads import offload
from davserver.state.shares import Shares

from . import copymove, delegation, mkcalendar, principals, put, report, sharing
from .export import CollectionExport
from .members import indexed_members
from .names import c, dav
from .props import (
    INDEXED,
    SUPPORTED_COMPONENTS,
    components_xml,
    indexed_values,
    live_table,
    principal_table,
    supported_reports,
)
from .services import CALENDARS, SETTINGS, SHARES, CalDavSettings
from .store.follow import follow, uncache
from .store.layout import CALENDARS as CALENDAR_SPACE
from .store.layout import PRINCIPALS, CalendarStore, owner, place

if TYPE_CHECKING:
    from davserver.events import ChangeEvent, EventBus


VIRTUAL = frozenset({"root", "principals", "principal", "proxy", "groups", "group", "none"})
"""The kinds of place that are made up, not stored."""
DISCOVERY = (
    dav("current-user-principal"),
    dav("principal-URL"),
    c("calendar-home-set"),
    c("calendar-user-address-set"),
)


def default_calendars() -> dict[str, dict[str, bytes]]:
    """The calendars every home starts with: one for events (and free-busy objects), one
    for tasks (Apple's Reminders want a calendar of tasks only, CLIENTS.md #18)."""

    def props(name: str, components: tuple[str, ...]) -> dict[str, bytes]:
        return {
            dav("displayname"): f'<D:displayname xmlns:D="DAV:">{name}</D:displayname>'.encode(),
            SUPPORTED_COMPONENTS: components_xml(components, standalone=True).encode(),
        }

    return {
        "calendar": props("Calendar", ("VEVENT", "VFREEBUSY")),
        "tasks": props("Tasks", ("VTODO",)),
    }


class CalDavLayout(Layout):
    """Each user's principal and calendars are theirs; anonymous requests act as the
    mount's default user."""

    def __init__(self, default_user: str) -> None:
        self.default_user = default_user

    def owner(self, path: str) -> str | None:
        """The user of ``principals/<user>``, ``calendars/<user>/...`` and
        ``addressbooks/<user>/...``."""
        return owner(path)

    def principal(self, user: str | None) -> str | None:
        """The authenticated user, else the default one."""
        return user or self.default_user

    def home(self, shared: str, user: str) -> str | None:
        """A shared calendar is listed in the user's calendar home, a shared address
        book in their address-book home; a delegated home, and the principal a delegate
        reads, nowhere."""
        if place(shared).kind not in sharing.SHAREABLE:
            return None
        return f"{shared.partition('/')[0]}/{user}"

    def read_only(self, path: str) -> bool:
        """The mount root and the principals are made up, not stored: nothing changes them
        (the groups of delegates change by their own PROPPATCH: delegation.py)."""
        return place(path).kind in VIRTUAL

    def principal_path(self, user: str) -> str | None:
        """``principals/<user>``."""
        return f"{PRINCIPALS}/{user}"


class CalDav(Feature):
    """Calendars over the tree's :class:`CalendarStore` (its storage)."""

    compliance: tuple[str, ...] = ("3", "calendar-access", "extended-mkcol")

    def __init__(
        self,
        prefix: str,
        store: CalendarStore,
        settings: CalDavSettings,
        shares: Shares | None = None,
    ) -> None:
        self.prefix = prefix
        self.store = store
        self.shares = shares
        self.settings = settings
        self.layout = CalDavLayout(settings.default_user)
        sample = live_table(prefix, settings.default_user, settings.max_resource_size)
        self._properties = {
            name: LiveProperty(render, protected=name != dav("displayname"))
            for name, render in sample.items()
        }
        self._properties.update({name: LiveProperty(_worked_out) for name in INDEXED})
        if shares is not None:
            # Apple's clients offer sharing and delegation only on servers that announce it.
            self.compliance = (*self.compliance, "calendarserver-sharing", "calendar-proxy")
            self._properties.update(
                {
                    name: LiveProperty(sharing.render_nothing)
                    for name in sharing.NAMES | delegation.NAMES
                }
            )
            shares.imply(prefix, delegation.implied)
        self._offer = self._discovery()

    def methods(self) -> Mapping[str, Handler]:
        """Validated PUT, COPY/MOVE under CalDAV's rules, MKCALENDAR, extended MKCOL."""
        return {
            "PUT": put.put,
            "COPY": copymove.copy_or_move,
            "MOVE": copymove.copy_or_move,
            "MKCOL": mkcalendar.mkcol,
            "MKCALENDAR": mkcalendar.mkcalendar,
            "POST": sharing.post,
            "PROPPATCH": delegation.proppatch,
        }

    def reports(self) -> Mapping[str, Report]:
        """calendar-multiget, calendar-query, free-busy-query, sync-collection, and the
        principal reports."""
        return {**report.REPORTS, **principals.REPORTS}

    def properties(self) -> Mapping[str, LiveProperty]:
        """The CalDAV live properties (their renderers are per user: user_properties)."""
        return self._properties

    def user_properties(self, principal: str | None) -> Mapping[str, LiveRenderer]:
        """The live properties for requests of ``principal``."""
        user = principal or self.settings.default_user
        settings = self.settings
        return live_table(self.prefix, user, settings.max_resource_size, settings.addresses)

    def well_known(self) -> Mapping[str, str]:
        """RFC 6764: ``/.well-known/caldav`` leads to the tree's root."""
        return {"caldav": ""}

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The calendar store and the settings, for the handlers."""
        return {
            CALENDARS: self.store,
            SETTINGS: self.settings,
            EXPORTS: CollectionExport(),
            SHARES: self.shares,
        }

    def discovery(self) -> Discovery:
        """current-user-principal, principal-URL and calendar-home-set of this tree, for
        other trees to answer with (a client may start at the server root), with the
        user's principal as owner and no reports (a WebDAV tree answers none)."""
        return self._offer

    def _discovery(self) -> Discovery:
        found: dict[str | None, dict[str, LiveRenderer]] = {}

        def offer(user: str | None) -> Mapping[str, LiveRenderer]:
            known = found.get(user)
            if known is not None:
                return known
            principal = self.layout.principal(user) or self.settings.default_user
            settings = self.settings
            table = live_table(
                self.prefix, principal, settings.max_resource_size, settings.addresses
            )
            # Of the requester, whatever resource of the other tree is asked about.
            table.update(
                principal_table(
                    self.prefix, principal, by_resource=False, addresses=settings.addresses
                )
            )
            props = {name: table[name] for name in DISCOVERY}
            link = href(self.prefix, f"{PRINCIPALS}/{principal}", True)
            owner = f"<D:owner><D:href>{link}</D:href></D:owner>"
            props[dav("owner")] = lambda r, res: owner
            props[dav("supported-report-set")] = lambda r, res: supported_reports(())
            if len(found) < 1024:
                found[user] = props
            return props

        return offer

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Fill in ctag and sync-token of the calendars in ``batch`` from the index, and
        the sharing properties."""
        wanted = renderer.request.names
        if self.shares is not None and not sharing.NAMES.isdisjoint(wanted):
            renderer.values.update(await sharing.values(ctx, self.shares, batch))
        if self.shares is not None and not delegation.NAMES.isdisjoint(wanted):
            renderer.values.update(await delegation.values(ctx, self.shares, batch))
        if not any(name in INDEXED for name in wanted):
            return
        for res in batch:
            where = place(res.path)
            if where.kind == "calendar" and res.is_collection and where.calendar:
                await self.store.refresh(where.calendar)
                seq = await self.store.index.token(where.calendar)
                epoch = await self.store.index.epoch()
                renderer.values.update(indexed_values(res.path, seq, epoch))

    async def decline(self, ctx: Context) -> web.StreamResponse | None:
        """A sharee's DELETE of a shared calendar or address book ends their share."""
        return await sharing.decline(ctx)

    async def check_props(
        self, ctx: Context, res: Resource, props: Mapping[str, bytes]
    ) -> Mapping[str, str]:
        """A calendar's ``calendar-timezone`` must be one VTIMEZONE (RFC 4791 §5.2.2)."""
        value = props.get(c("calendar-timezone"))
        if value is None or place(res.path).kind != "calendar":
            return {}
        text = "".join(etree.fromstring(value).itertext())
        if await offload(timezone_problem, text) is None:
            return {}
        return {c("calendar-timezone"): c("valid-calendar-data")}

    async def members(
        self, ctx: Context, renderer: PropRenderer, res: Resource
    ) -> AsyncIterator[str] | None:
        """The members of a calendar, from the index (see caldav/members.py)."""
        return await indexed_members(self.store, "calendar", renderer, res)

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Keep the calendar index current from the tree's change events; of the changes
        other processes made (they wrote the index), drop what memory holds."""
        bus.subscribe(tree.prefix, self._on_changes)
        bus.subscribe(tree.prefix, self._on_remote_changes, remote=True)

    async def _on_remote_changes(self, events: Sequence[ChangeEvent]) -> None:
        uncache(self.store, CALENDAR_SPACE, events)

    async def _on_changes(self, events: Sequence[ChangeEvent]) -> None:
        await follow(self.store, CALENDAR_SPACE, events)
        if self.shares is not None:
            # A share is of one collection: one deleted or moved away ends it (a new one
            # made at its place later is not shared).
            for event in events:
                if event.kind in ("deleted", "moved") and event.is_collection:
                    await self.shares.drop_below(self.prefix, event.path)


def _worked_out(r: PropRenderer, res: Resource) -> str | None:
    """ctag and sync-token come from :meth:`CalDav.annotate` (the renderer's values)."""
    return None
