"""CalDAV (RFC 4791, with RFC 6578 sync and RFC 6764 discovery) as a feature of a DAV tree:
principals, calendar homes and calendars over a :class:`~.store.layout.CalendarStore`.

It adds the calendar methods (validated PUT, MKCALENDAR, extended MKCOL, COPY and MOVE
under CalDAV's rules), the calendar REPORTs, the live properties of principals, homes and
calendars, ``/.well-known/caldav``, and keeps the calendar index current from the tree's
change events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from davserver.ical.summary import Summary

from . import copymove, mkcalendar, put, report
from .export import CalendarExport
from .names import c, dav
from .props import (
    INDEXED,
    SUPPORTED_COMPONENTS,
    components_xml,
    indexed_values,
    live_table,
    supported_reports,
)
from .services import CALENDARS, SETTINGS, CalDavSettings
from .store.layout import MADE_WITH_HOME, PRINCIPALS, CalendarStore, Place, item_of, place

if TYPE_CHECKING:
    from davserver.events import ChangeEvent, EventBus


DISCOVERY = (
    dav("current-user-principal"),
    dav("principal-URL"),
    c("calendar-home-set"),
    c("calendar-user-address-set"),
)


def default_calendars() -> dict[str, dict[str, bytes]]:
    """The calendars every home starts with: one for events, one for tasks."""

    def props(name: str, component: str) -> dict[str, bytes]:
        return {
            dav("displayname"): f'<D:displayname xmlns:D="DAV:">{name}</D:displayname>'.encode(),
            SUPPORTED_COMPONENTS: components_xml((component,), standalone=True).encode(),
        }

    return {"calendar": props("Calendar", "VEVENT"), "tasks": props("Tasks", "VTODO")}


class CalDavLayout(Layout):
    """Each user's principal and calendars are theirs; anonymous requests act as the
    mount's default user."""

    def __init__(self, default_user: str) -> None:
        self.default_user = default_user

    def owner(self, path: str) -> str | None:
        """The user of ``principals/<user>`` and ``calendars/<user>/...``."""
        return place(path).user

    def principal(self, user: str | None) -> str | None:
        """The authenticated user, else the default one."""
        return user or self.default_user


class CalDav(Feature):
    """Calendars over the tree's :class:`CalendarStore` (its storage)."""

    compliance = ("3", "calendar-access", "extended-mkcol")

    def __init__(self, prefix: str, store: CalendarStore, settings: CalDavSettings) -> None:
        self.prefix = prefix
        self.store = store
        self.settings = settings
        self.layout = CalDavLayout(settings.default_user)
        sample = live_table(prefix, settings.default_user, settings.max_resource_size)
        self._properties = {
            name: LiveProperty(render, protected=name != dav("displayname"))
            for name, render in sample.items()
        }
        self._properties.update({name: LiveProperty(_worked_out) for name in INDEXED})
        self._offer = self._discovery()

    def methods(self) -> Mapping[str, Handler]:
        """Validated PUT, COPY/MOVE under CalDAV's rules, MKCALENDAR, extended MKCOL."""
        return {
            "PUT": put.put,
            "COPY": copymove.copy_or_move,
            "MOVE": copymove.copy_or_move,
            "MKCOL": mkcalendar.mkcol,
            "MKCALENDAR": mkcalendar.mkcalendar,
        }

    def reports(self) -> Mapping[str, Report]:
        """calendar-multiget, calendar-query, free-busy-query, sync-collection."""
        return report.REPORTS

    def properties(self) -> Mapping[str, LiveProperty]:
        """The CalDAV live properties (their renderers are per user: user_properties)."""
        return self._properties

    def user_properties(self, principal: str | None) -> Mapping[str, LiveRenderer]:
        """The live properties for requests of ``principal``."""
        return live_table(
            self.prefix, principal or self.settings.default_user, self.settings.max_resource_size
        )

    def well_known(self) -> Mapping[str, str]:
        """RFC 6764: ``/.well-known/caldav`` leads to the tree's root."""
        return {"caldav": ""}

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The calendar store and the settings, for the handlers."""
        return {CALENDARS: self.store, SETTINGS: self.settings, EXPORTS: CalendarExport()}

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
            table = live_table(self.prefix, principal, self.settings.max_resource_size)
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
        """Fill in ctag and sync-token of the calendars in ``batch`` from the index."""
        wanted = renderer.request.names
        if not any(name in INDEXED for name in wanted):
            return
        for res in batch:
            where = place(res.path)
            if where.kind == "calendar" and res.is_collection and where.calendar:
                await self.store.refresh(where.calendar)
                seq = await self.store.index.token(where.calendar)
                epoch = await self.store.index.epoch()
                renderer.values.update(indexed_values(res.path, seq, epoch))

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Keep the calendar index current from the tree's change events; of the changes
        other processes made (they wrote the index), drop what memory holds."""
        bus.subscribe(tree.prefix, self._on_changes)
        bus.subscribe(tree.prefix, self._on_remote_changes, remote=True)

    async def _on_remote_changes(self, events: Sequence[ChangeEvent]) -> None:
        index = self.store.index
        for event in events:
            for path in (event.path, event.to):
                where = place(path) if path is not None else None
                if where is None:
                    continue
                if where.calendar:
                    index.uncache(where.calendar)
                elif where.kind == "home" and where.user:
                    index.uncache_home(where.user)

    async def _on_changes(self, events: Sequence[ChangeEvent]) -> None:
        index, store = self.store.index, self.store
        for event in events:
            where = place(event.path)
            if event.kind == "moved":
                await self._forget(where)
                if event.to is not None:
                    self._touch_tree(place(event.to))
            elif where.kind == "item" and where.calendar and where.name:
                if event.kind == "props":
                    continue  # the index keeps no dead properties
                if event.kind == "deleted":
                    store.bodies.drop(f"{where.calendar}/{where.name}")
                    await index.update(where.calendar, {}, [where.name])
                elif isinstance(event.note, Summary) and event.resource is not None:
                    item = item_of(event.resource, event.note)
                    await index.update(where.calendar, {where.name: item}, [])
                else:
                    store.mark_stale(where.calendar)
            elif event.kind == "deleted":
                await self._forget(where)
            elif where.kind == "calendar" and where.calendar and event.kind == "props":
                if event.note is not MADE_WITH_HOME:
                    await index.update(where.calendar, {}, [], touched=True)
            else:
                self._touch_tree(where)

    async def _forget(self, where: Place) -> None:
        """What the index knew of a deleted (or moved away) calendar or home."""
        if where.kind == "calendar" and where.calendar:
            await self.store.index.forget(where.calendar)
        elif where.kind == "home" and where.user:
            await self.store.index.forget_home(where.user)
        elif where.kind in ("item", "other") and where.calendar:
            self.store.mark_stale(where.calendar)

    def _touch_tree(self, where: Place) -> None:
        """A calendar (or something in it) appeared by a copy or a move: list it again."""
        if where.calendar:
            self.store.mark_stale(where.calendar)


def _worked_out(r: PropRenderer, res: Resource) -> str | None:
    """ctag and sync-token come from :meth:`CalDav.annotate` (the renderer's values)."""
    return None
