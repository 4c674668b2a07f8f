"""A CalDAV tree: the WebDAV mount with calendar properties, methods and rules."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from davserver.backends.base import Resource
from davserver.backends.calendar import PRINCIPALS, CalendarStore, place
from davserver.dav.identity import author
from davserver.dav.paths import href
from davserver.dav.props import LiveRenderer, PropRenderer, PropRequest
from davserver.locks.manager import LockManager
from davserver.mounts.dav import DavMount, DavSettings

from . import copymove, mkcalendar, put, report
from .names import c, dav
from .props import (
    INDEXED,
    SUPPORTED_COMPONENTS,
    components_xml,
    indexed_values,
    live_table,
    supported_reports,
)


@dataclass(frozen=True, slots=True)
class CalDavSettings:
    """What a ``caldav`` mount adds to the WebDAV settings."""

    default_user: str = "user"
    max_resource_size: int = 10 << 20


def default_calendars() -> dict[str, dict[str, bytes]]:
    """The calendars every new home starts with: one for events, one for tasks."""

    def props(name: str, component: str) -> dict[str, bytes]:
        return {
            dav("displayname"): f'<D:displayname xmlns:D="DAV:">{name}</D:displayname>'.encode(),
            SUPPORTED_COMPONENTS: components_xml((component,), standalone=True).encode(),
        }

    return {"calendar": props("Calendar", "VEVENT"), "tasks": props("Tasks", "VTODO")}


MAX_TABLES = 1024
"""Users whose live-property tables are kept."""

DISCOVERY = (
    dav("current-user-principal"),
    dav("principal-URL"),
    c("calendar-home-set"),
    c("calendar-user-address-set"),
)


class CalDavMount(DavMount):
    """Principals, calendar homes and calendars over a :class:`CalendarStore`."""

    storage: CalendarStore

    def __init__(
        self,
        prefix: str,
        storage: CalendarStore,
        settings: DavSettings,
        locks: LockManager,
        caldav: CalDavSettings,
    ) -> None:
        super().__init__(prefix, storage, settings, locks)
        self.caldav = caldav
        self.methods.update(
            {
                "PUT": put.put,
                "COPY": copymove.copy_or_move,
                "MOVE": copymove.copy_or_move,
                "MKCOL": mkcalendar.mkcol,
                "MKCALENDAR": mkcalendar.mkcalendar,
                "REPORT": report.report,
            }
        )
        self.options_headers = {
            **self.options_headers,
            "DAV": "1, 2, 3, calendar-access, extended-mkcol",
            "Allow": ", ".join(self.methods),
        }
        sample = live_table(prefix, caldav.default_user, caldav.max_resource_size)
        self.protected = (frozenset(sample) - {dav("displayname")}) | INDEXED
        self._tables: dict[str, dict[str, LiveRenderer]] = {}
        self._discovery: dict[str, dict[str, LiveRenderer]] = {}

    def user(self, request: web.Request) -> str:
        """Whose calendars a request sees: the authenticated user, else the default one."""
        name = author(request)
        return name if name != "anonymous" else self.caldav.default_user

    def requester(self, request: web.Request) -> str:
        """The owner-only check's user: the one whose calendars the request sees."""
        return self.user(request)

    def owner(self, path: str) -> str | None:
        """The user whose principal, home, calendars and items ``path`` names (owner-only
        mounts); None for the root, ``principals/`` and ``calendars/``."""
        return place(path).user if self.settings.owner_only else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Create the user's calendar home on their first request, then answer."""
        await self.storage.ensure_home(self.user(request), default_calendars())
        return await super().handle(request)

    def renderer(self, request: web.Request, prop_request: PropRequest) -> PropRenderer:
        """A renderer with the CalDAV live properties for this request's user."""
        renderer = super().renderer(request, prop_request)
        renderer.live = self._live(self.user(request))
        return renderer

    def _live(self, user: str) -> dict[str, LiveRenderer]:
        """The live-property table of a user (built once per user: it is only read)."""
        table = self._tables.get(user)
        if table is None:
            table = live_table(self.prefix, user, self.caldav.max_resource_size)
            if len(self._tables) < MAX_TABLES:
                self._tables[user] = table
        return table

    def discovery_props(self, request: web.Request) -> dict[str, LiveRenderer]:
        """current-user-principal, principal-URL and calendar-home-set of this mount, for
        other mounts to answer with (a client may start at the server root), with the
        user's principal as owner and no reports (a WebDAV mount answers none)."""
        user = self.user(request)
        found = self._discovery.get(user)  # built once per user, like _live: only read
        if found is not None:
            return found
        table = self._live(user)
        found = {name: table[name] for name in DISCOVERY}
        principal = href(self.prefix, f"{PRINCIPALS}/{user}", True)
        owner = f"<D:owner><D:href>{principal}</D:href></D:owner>"
        found[dav("owner")] = lambda r, res: owner
        found[dav("supported-report-set")] = lambda r, res: supported_reports(())
        if len(self._discovery) < MAX_TABLES:
            self._discovery[user] = found
        return found

    async def annotate(self, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Fill in ctag and sync-token of the calendars in ``batch`` from the index."""
        wanted = renderer.request.names
        if not any(name in INDEXED for name in wanted):
            return
        for res in batch:
            where = place(res.path)
            if where.kind == "calendar" and res.is_collection and where.calendar:
                await self.storage.refresh(where.calendar)
                seq = await self.storage.index.token(where.calendar)
                epoch = await self.storage.index.epoch()
                renderer.values.update(indexed_values(res.path, seq, epoch))
